"""Structured logs for the long-running commands (`alpha worker`, `alpha webhooks serve`, `alpha daily run`).

One line per record on standard error, chosen by ``ALPHA_LOG_FORMAT``:

- ``json``: one JSON object per line: ``{"time": "2026-12-06T15:11:56.123Z", "level": "INFO", "logger":
  "alpha.worker", "message": "...", ...}`` plus every ``extra={...}`` field of the call and, for an exception,
  ``"exc"`` (the traceback as text). For log shippers (Loki, ELK, CloudWatch, journald).
- ``text`` (the default): the same fields as logfmt: ``time=2026-12-06T15:11:56.123Z level=INFO
  logger=alpha.worker message="..." key=value``: readable at a terminal, still parseable.

``ALPHA_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR, CRITICAL; default INFO) is the root level. Times are UTC.
Known secret values (engine.adapters.audit.SECRET_ENV_VARS, and ALPHA_METRICS_TOKEN) are redacted from every line.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import datetime, timezone
from typing import IO, Any

from engine.core.errors import ConfigError

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_FORMAT, DEFAULT_LEVEL = "text", "INFO"

# attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime",
                                                                                       "taskName"}
_RESERVED = ("time", "level", "logger", "message", "exc")
_MARK = "_alpha_structured"


def log_format(env: dict | None = None) -> str:
    """ALPHA_LOG_FORMAT, checked: json or text (default text)."""
    raw = (env if env is not None else os.environ).get("ALPHA_LOG_FORMAT", "")
    value = raw.strip().lower() or DEFAULT_FORMAT
    if value not in FORMATS:
        raise ConfigError([f"environment variable ALPHA_LOG_FORMAT={raw!r}: expected one of {', '.join(FORMATS)}"])
    return value


def log_level(env: dict | None = None) -> int:
    """ALPHA_LOG_LEVEL, checked: DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)."""
    raw = (env if env is not None else os.environ).get("ALPHA_LOG_LEVEL", "")
    value = raw.strip().upper() or DEFAULT_LEVEL
    if value == "WARN":
        value = "WARNING"
    if value not in LEVELS:
        raise ConfigError([f"environment variable ALPHA_LOG_LEVEL={raw!r}: expected one of {', '.join(LEVELS)}"])
    return getattr(logging, value)


def _secrets() -> list[str]:
    from engine.adapters.audit import _secret_values

    vals = _secret_values()
    token = os.environ.get("ALPHA_METRICS_TOKEN", "")
    if len(token) >= 8:
        vals.append(token)
    return vals


def _redact(value: Any, secrets: list[str]) -> Any:
    from engine.adapters.audit import redact

    return redact(value, secrets)


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """time, level, logger, message, the record's extra fields and exc, redacted. Never raises."""
    try:
        message = record.getMessage()
    except Exception as e:  # noqa: BLE001 - a bad format string must not lose the line
        message = f"{record.msg!r} (could not format the arguments: {type(e).__name__})"
    out: dict[str, Any] = {"time": _utc(record.created), "level": record.levelname, "logger": record.name,
                           "message": message}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[f"{key}_" if key in _RESERVED else key] = value
    if record.exc_info and record.exc_info[0] is not None:
        out["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = record.stack_info
    secrets = _secrets()
    # a key that looks secret (token, password, ...) keeps its name, its value is replaced
    return {k: (_redact({k: v}, secrets)[k] if k not in ("time", "level", "logger") else v) for k, v in out.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (no newline inside: json.dumps escapes them)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_jsonable(record_fields(record)), ensure_ascii=False, separators=(",", ":"))


def _logfmt_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        value = json.dumps(_jsonable(value), ensure_ascii=False) if isinstance(value, (dict, list, tuple)) \
            else str(value)
    if value and not any(c in value for c in ' ="\\') and value.isprintable():
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t")
    return f'"{escaped}"'


def _logfmt_key(key: str) -> str:
    clean = "".join(c if (c.isalnum() or c in "_.-") else "_" for c in key)
    return clean or "_"


class TextFormatter(logging.Formatter):
    """logfmt: ``key=value`` pairs, values quoted (with \\ escapes) when they hold a space, = or quote."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{_logfmt_key(k)}={_logfmt_value(v)}" for k, v in record_fields(record).items())


def configure_logging(stream: IO[str] | None = None, env: dict | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (default standard error) in ALPHA_LOG_FORMAT at ALPHA_LOG_LEVEL.

    Idempotent: a second call replaces the handler the first installed (handlers others added stay). Raises
    ConfigError naming the variable when a value is not one of the allowed ones. The variables may also be set in
    .env (read here first, as App() reads it, without overriding the environment)."""
    if env is None:
        from engine.core.envfile import load_env_file

        load_env_file()
    fmt, level = log_format(env), log_level(env)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _MARK, fmt)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, None):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler


def configured() -> bool:
    """Whether configure_logging() installed its handler in this process (servers then route their own loggers,
    e.g. uvicorn's, through it instead of configuring their own)."""
    return any(getattr(h, _MARK, None) for h in logging.getLogger().handlers)
