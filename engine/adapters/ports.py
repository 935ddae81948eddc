"""What the layers below the composition root use of the engine, as Protocols the App satisfies structurally.

Queries, adapters and services take the engine (``app``) as a parameter but may not import engine.app (it sits
above them). Each annotates its ``app`` with the smallest of these that covers what it reads, so the type says
what a function needs and a test can pass anything that has it. They live here, in adapters, because the
smallest one already names the Store.
"""
from __future__ import annotations

from typing import Protocol

from engine.adapters.db import Store
from engine.core.clock import Clock
from engine.core.config import Settings


class Readable(Protocol):
    """The database alone."""

    @property
    def store(self) -> Store: ...


class ReadableConfigured(Readable, Protocol):
    """The database and the configuration (an engine's, or a phase gate's context)."""

    @property
    def settings(self) -> Settings: ...


class Stored(Readable, Protocol):
    """The database and the clock: enough for most reads and for appending audited rows."""

    @property
    def clock(self) -> Clock: ...


class Configured(Stored, Protocol):
    """The database, the clock and the configuration: what a query or a report reads."""

    @property
    def settings(self) -> Settings: ...


class Alerting(Stored, Protocol):
    """The database and the clock, and a way to raise an alert ({kind, title, text, fields?}) that never blocks."""

    def alert_dict(self, alert: dict) -> None: ...


class Suppressing(Protocol):
    """Adds an address to the suppression list (engine.app.App.suppress)."""

    def suppress(self, email: str, reason: str, actor: str, source: str = "manual", detail: str = "") -> bool: ...
