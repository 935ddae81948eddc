"""Errors a person can act on. Each names what is wrong and where."""
from __future__ import annotations


class AlphaError(Exception):
    """Base class: the CLI prints these as one clear message (never a traceback)."""

    exit_code = 1


class ConfigError(AlphaError):
    """A configuration file is missing or invalid. The engine refuses to run (fail-closed)."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class DatabaseNotReady(AlphaError):
    exit_code = 3


class PermissionDenied(AlphaError):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


class BreakerOpenError(AlphaError):
    def __init__(self, name: str, retry_at):
        self.name = name
        self.retry_at = retry_at
        super().__init__(f"circuit breaker '{name}' is open; retry after {retry_at}")


class PhaseChangeRefused(AlphaError):
    pass


class KillSwitchLocked(AlphaError):
    """EMERGENCY_STOP=true is set: the kill switch cannot be turned off."""


class NotFound(AlphaError):
    pass


class InvalidRequest(AlphaError):
    """A command was given something it cannot act on (missing reason, unknown name, ...)."""
