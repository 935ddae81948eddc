"""The environment variables the engine reads, validated like the configuration files.

``VARIABLES`` is the table of every variable: its kind (bool, int, float, url, path, secret, enum, text, ...), its
default and its constraints. ``check_env(environ)`` returns one ``Problem`` per bad variable, each naming the
variable, what is wrong and how to fix it; an unknown ``ALPHA_*`` name close to a known one is reported as a
probable typo. ``require_valid_env()`` raises ``EnvError`` (a ``ConfigError``: exit code 2, every problem listed)
and is called where engines start (``App()``), so a bad environment is refused before anything runs.

Empty values mean "unset" (``.env.example`` lists every variable with an empty value), except for secrets,
which are used exactly as given. Secret values are never shown in a message, only their length.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from engine.core.errors import ConfigError

BOOL_TRUE = ("1", "true", "yes", "on")
BOOL_FALSE = ("0", "false", "no", "off")
SECRET_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class EnvError(ConfigError):
    """One or more environment variables are invalid: the engine refuses to run (exit code 2)."""

    def __init__(self, problems: list):
        self.problems = [str(p) for p in problems]
        Exception.__init__(self, "invalid environment:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Problem:
    name: str
    shown: str | None     # the value as it may be shown (secrets: only their length), None when not set
    what: str             # what is wrong
    fix: str = ""         # how to fix it

    def __str__(self) -> str:
        where = f"environment variable {self.name}" + (f"={self.shown}" if self.shown is not None else "")
        return f"{where}: {self.what}" + (f"; {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class Var:
    """One environment variable. ``kind`` is bool, int, float, url, path, secret, enum, text, database_url, key,
    destination or ignored."""

    name: str
    kind: str
    default: str = ""
    help: str = ""
    lo: float | None = None          # numbers: the smallest allowed value
    hi: float | None = None          # numbers: the largest allowed value
    lo_open: bool = False            # numbers: ``lo`` itself is not allowed
    choices: tuple[str, ...] = ()    # enum (compared case-insensitively)
    min_length: int = 0              # secret
    path: str = ""                   # path: "dir" or "file" (if it exists it must be one), "existing-file"
    key: str = ""                    # key: "rsa" (PEM of an RSA key) or "ed25519" (PEM or base64 of 32 bytes)
    secret: bool = False             # never show the value
    messages: dict = field(default_factory=dict, hash=False, compare=False)  # custom texts: "nan", "neg"


def _v(*a, **kw) -> Var:
    return Var(*a, **kw)


VARIABLES: dict[str, Var] = {v.name: v for v in (
    # kill switch and locations
    _v("EMERGENCY_STOP", "bool", "false", "true forces the kill switch ON in every process"),
    _v("DATABASE_URL", "database_url", "sqlite:///.data/alpha.db", "the database (SQLite, or PostgreSQL for "
       "several workers or hosts)"),
    _v("ALPHA_CONFIG_DIR", "path", "./config", "the configuration folder", path="dir"),
    _v("ALPHA_DATA_DIR", "path", "./.data", "local state (SQLite file, generated keys)", path="dir"),
    _v("ALPHA_ENV_FILE", "path", "./.env", "the .env file", path="file"),
    _v("ALPHA_ACTOR", "text", "the OS user", "who CLI changes are recorded as"),
    _v("ALPHA_DEBUG", "bool", "false", "1 shows the traceback of an internal error"),
    # secrets
    _v("ALPHA_UNSUBSCRIBE_SECRET", "secret", "generated into $ALPHA_DATA_DIR/unsubscribe.key (SQLite only)",
       "signs the one-click unsubscribe tokens; the same value on every host", min_length=32, secret=True),
    _v("ALPHA_COOKIE_KEY", "ignored", "", "no longer read: console sessions are kept on the server"),
    # GoHighLevel
    _v("GHL_API_KEY", "secret", "", "GoHighLevel private integration token", secret=True),
    _v("GHL_LOCATION_ID", "text", "", "GoHighLevel location (sub-account) id"),
    _v("GHL_BASE_URL", "url", "https://services.leadconnectorhq.com", "the GHL API"),
    _v("GHL_TIMEOUT_SECONDS", "float", "15", "GHL request timeout", lo=0, lo_open=True, hi=600),
    # webhooks
    _v("GHL_WEBHOOK_PUBLIC_KEY", "key", "", "GHL's RSA public key (PEM text or file)", key="rsa"),
    _v("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "key", "", "GHL's Ed25519 public key (PEM, base64 or file)",
       key="ed25519"),
    _v("RB2B_WEBHOOK_SECRET", "secret", "", "shared secret of RB2B visitor webhooks", secret=True),
    _v("ALPHA_WEBHOOK_URL", "url", "http://127.0.0.1:8787", "where `alpha verify` finds the webhook receiver"),
    # Slack
    _v("SLACK_WEBHOOK_URL", "url", "", "Slack incoming webhook (a secret)", secret=True),
    # LLM providers
    _v("ANTHROPIC_API_KEY", "secret", "", "Anthropic API key", secret=True),
    _v("ANTHROPIC_MODEL", "text", "the provider's default", "Anthropic model"),
    _v("ANTHROPIC_BASE_URL", "url", "https://api.anthropic.com", "Anthropic API"),
    _v("ANTHROPIC_RPM", "int", "no client-side limit", "requests per minute", lo=1, hi=1_000_000),
    _v("OPENAI_API_KEY", "secret", "", "OpenAI API key", secret=True),
    _v("OPENAI_MODEL", "text", "the provider's default", "OpenAI model"),
    _v("OPENAI_BASE_URL", "url", "https://api.openai.com", "OpenAI API"),
    _v("OPENAI_RPM", "int", "no client-side limit", "requests per minute", lo=1, hi=1_000_000),
    _v("ALPHA_LLM_CONCURRENCY", "int", "8", "drafting calls in flight at once", lo=1, hi=256),
    _v("ALPHA_REPLY_SECOND_OPINION", "bool", "false", "ask the LLM for a second opinion on reply classes"),
    # console
    _v("ALPHA_USERS_FILE", "path", "config/users.yaml", "the console users file", path="file"),
    _v("ALPHA_DEMO", "bool", "false", "seed the demo users (never in production)"),
    _v("ALPHA_DEMO_PASSWORD", "secret", "generated", "the demo users' password", secret=True),
    # audit anchoring
    _v("ALPHA_AUDIT_SIGNING_KEY_FILE", "path", "$ALPHA_DATA_DIR/audit-signing.key", "Ed25519 private key file",
       path="existing-file"),
    _v("ALPHA_AUDIT_CHECKPOINTS", "destination", "$ALPHA_DATA_DIR/audit-checkpoints.jsonl",
       "where signed checkpoints go (a file or an http(s) URL)"),
    _v("ALPHA_AUDIT_CHECKPOINT_SECONDS", "float", "600", "seconds between checkpoints (0: off)", lo=0,
       messages={"nan": "not a number of seconds (0 turns this trigger off)",
                 "neg": "must be 0 (off) or positive"}),
    _v("ALPHA_AUDIT_CHECKPOINT_ROWS", "int", "1000", "new audit rows between checkpoints (0: off)", lo=0,
       messages={"nan": "not a whole number (0 turns this trigger off)", "neg": "must be 0 (off) or positive"}),
    # logs and metrics
    _v("ALPHA_LOG_FORMAT", "enum", "text", "log line format", choices=("json", "text")),
    _v("ALPHA_LOG_LEVEL", "enum", "INFO", "root log level",
       choices=("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")),
    _v("ALPHA_METRICS_TOKEN", "secret", "", "bearer token of /metrics", secret=True),
)}

# ALPHA_* names read by the deployment (compose.yaml, deploy/) and the test suite, not by the engine: known, so
# never reported as a typo, but not validated here.
TOOL_VARIABLES = ("ALPHA_WORKERS", "ALPHA_DAILY_AT", "ALPHA_DAILY_TZ", "ALPHA_TEST_PG_URL", "ALPHA_FAULT_SEED",
                  "ALPHA_CHROMIUM")


def register(var: Var) -> None:
    """Add (or replace) a variable, for a module that reads one of its own."""
    VARIABLES[var.name] = var


# ---------------------------------------------------------------------------------------------- display

def _short(value: str, limit: int = 60) -> str:
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def safe_url(value: str) -> str:
    """A URL as it may be shown: no password, no query or fragment (either may hold a token)."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(value)
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
        user = f"{u.username}@" if u.username else ""
        return f"{u.scheme}://{user}{host}{port}{u.path}" if u.scheme else "<not a URL>"
    except ValueError:
        return "<not a URL>"


def _shown(var: Var, raw: str) -> str:
    if var.secret:
        return f"<secret, {len(raw)} characters>"
    if var.kind in ("url", "destination") and "://" in raw:
        return repr(safe_url(raw.strip()))
    if var.kind == "database_url":
        return repr(_safe_db_url(raw.strip()))
    if var.kind == "key":
        return f"<{len(raw)} characters>"
    return _short(raw)


def _safe_db_url(raw: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(raw).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can read: hide whatever sits where a password would
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", raw)


# ---------------------------------------------------------------------------------------------- checks

def _check_bool(var: Var, v: str) -> tuple[str, str] | None:
    if v.strip().lower() in BOOL_TRUE + BOOL_FALSE:
        return None
    return "not a boolean", f"use 1/0, true/false, yes/no or on/off (unset means {var.default})"


def _range_text(var: Var) -> str:
    lo = None if var.lo is None else (f"greater than {var.lo:g}" if var.lo_open else f"at least {var.lo:g}")
    hi = None if var.hi is None else f"at most {var.hi:g}"
    return " and ".join(x for x in (lo, hi) if x)


def _check_number(var: Var, v: str) -> tuple[str, str] | None:
    text = v.strip()
    try:
        x = int(text) if var.kind == "int" else float(text)
    except ValueError:
        what = var.messages.get("nan") or ("not a whole number" if var.kind == "int" else "not a number")
        return what, f"give a number that is {_range_text(var)}" if _range_text(var) else "give a number"
    if isinstance(x, float) and not math.isfinite(x):
        return var.messages.get("nan") or "not a finite number", f"give a number that is {_range_text(var)}"
    low = var.lo is not None and (x <= var.lo if var.lo_open else x < var.lo)
    if low and "neg" in var.messages:
        return var.messages["neg"], ""
    if low or (var.hi is not None and x > var.hi):
        return "out of range", f"must be {_range_text(var)}"
    return None


def _check_url(var: Var, v: str) -> tuple[str, str] | None:
    from urllib.parse import urlsplit

    text = v.strip()
    example = var.default if var.default.startswith("http") else "https://host.example/path"
    try:
        u = urlsplit(text)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        return f"not a valid URL ({e})", f"give an http(s) URL such as {example}"
    if u.scheme.lower() not in ("http", "https"):
        what = f"unsupported scheme {u.scheme!r}" if u.scheme and "://" in text else "not an http(s) URL"
        return what, f"give an http(s) URL such as {example}"
    if not u.hostname:
        return "the URL has no host", f"give an http(s) URL such as {example}"
    return None


def _check_path(var: Var, v: str) -> tuple[str, str] | None:
    if "\x00" in v:
        return "contains a NUL byte", "give a file system path"
    p = Path(v.strip()).expanduser()
    if var.path == "dir" and p.exists() and not p.is_dir():
        return "is not a folder", f"give a folder (default {var.default})"
    if var.path in ("file", "existing-file") and p.is_dir():
        return "is a directory", "give the path of a file"
    if var.path == "existing-file" and not p.exists():
        return ("no such file (create one with `openssl genpkey -algorithm ed25519 -out FILE`)",
                f"or unset it to use the default {var.default}")
    return None


def _check_secret(var: Var, v: str) -> tuple[str, str] | None:
    if v != v.strip():
        return ("has leading or trailing white space (a copy-paste accident?)",
                "remove it: the value is used exactly as given")
    if len(v) < var.min_length:
        return (f"too short: at least {var.min_length} characters are needed",
                f"generate one with `{SECRET_COMMAND}` and set the same value on every host")
    return None


def _check_text(var: Var, v: str) -> tuple[str, str] | None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
        return "contains control characters", "give plain text"
    if len(v) > 500:
        return "too long (more than 500 characters)", "give a shorter value"
    return None


def _check_enum(var: Var, v: str) -> tuple[str, str] | None:
    if v.strip().lower() in {c.lower() for c in var.choices}:
        return None
    return "not an allowed value", f"use one of {', '.join(var.choices)} (default {var.default})"


def _check_database_url(var: Var, v: str) -> tuple[str, str] | None:
    from sqlalchemy.engine import make_url

    text = v.strip()
    fix = ("use sqlite:///path/to/alpha.db (one host) or postgresql+psycopg://user:password@host:5432/dbname "
           "(several workers or hosts)")
    if text.startswith(("postgresql://", "postgres://")):
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    try:
        u = make_url(text)
    except Exception as e:  # noqa: BLE001 - ArgumentError, ValueError (a bad port)
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if text and text in why:  # never echo the URL (it may hold the password)
            why = "not a database URL"
        return f"not a valid database URL ({why})", fix
    if u.drivername not in DATABASE_DRIVERS:
        return f"unsupported database driver {u.drivername!r}", fix
    if u.port is not None and not 0 < u.port < 65536:
        return f"port {u.port} is out of range", "give a port from 1 to 65535 (PostgreSQL listens on 5432)"
    if u.drivername.startswith("postgresql") and not u.database:
        return "names no database", "add the database name after the host: ...@host:5432/dbname"
    return None


def _check_destination(var: Var, v: str) -> tuple[str, str] | None:
    text = v.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return _check_url(var, text)
    if scheme:
        return f"unsupported scheme {scheme!r}", "give a file path or an http(s) URL"
    p = Path(text).expanduser()
    if p.is_dir():
        return "is a directory", "give the path of a file (one JSON line is appended per checkpoint)"
    return None


KEY_KINDS = {"rsa": "RSA", "ed25519": "Ed25519"}


def key_kind(key: object) -> str:
    """The kind of a loaded public key as people name it: RSA, EC, Ed25519, ..."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519

    kinds = ((rsa.RSAPublicKey, "RSA"), (ec.EllipticCurvePublicKey, "EC"), (ed25519.Ed25519PublicKey, "Ed25519"),
             (ed448.Ed448PublicKey, "Ed448"), (x25519.X25519PublicKey, "X25519"), (x448.X448PublicKey, "X448"))
    return next((name for cls, name in kinds if isinstance(key, cls)), type(key).__name__.replace("PublicKey", ""))


def wrong_key_kind(var_key: str, key: object) -> tuple[str, str] | None:
    """(what, fix) when a loaded public key is not of the kind ``var_key`` ("rsa", "ed25519") needs: its verify()
    would take other arguments, so every signed webhook would fail instead of being checked."""
    want, got = KEY_KINDS[var_key], key_kind(key)
    if got == want:
        return None
    return (f"an {got} public key where an {want} key is needed (GHL signs this header with {want})",
            "give GHL's RSA key in GHL_WEBHOOK_PUBLIC_KEY and its Ed25519 key in GHL_WEBHOOK_ED25519_PUBLIC_KEY")


def _check_key(var: Var, v: str) -> tuple[str, str] | None:
    import base64
    import binascii

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    value = v.strip()
    if not value.startswith("-----") and "\n" not in value and Path(value).is_file():
        try:
            material = Path(value).read_bytes()
        except OSError as e:
            return f"cannot read the key file ({e.strerror})", "check the path and its permissions"
    else:
        material = value.replace("\\n", "\n").encode()
    try:
        if material.startswith(b"-----"):
            wrong = wrong_key_kind(var.key, serialization.load_pem_public_key(material))
            if wrong is not None:
                return wrong
        elif var.key == "ed25519":
            Ed25519PublicKey.from_public_bytes(base64.b64decode(material, validate=True))
        else:
            raise ValueError("not PEM")
    except (ValueError, TypeError, binascii.Error):
        what = ("not a PEM public key, nor base64 of a 32-byte Ed25519 key, nor a file holding one"
                if var.key == "ed25519" else "not a PEM public key, nor a file holding one")
        return what, "paste the key GHL publishes (\\n allowed for line breaks) or give the path of a PEM file"
    return None


CHECKS: dict[str, Callable[[Var, str], tuple[str, str] | None]] = {
    "bool": _check_bool, "int": _check_number, "float": _check_number, "url": _check_url, "path": _check_path,
    "secret": _check_secret, "text": _check_text, "enum": _check_enum, "database_url": _check_database_url,
    "destination": _check_destination, "key": _check_key,
}


def _is_unset(var: Var, raw: str) -> bool:
    return raw == "" if var.kind == "secret" else raw.strip() == ""


def suggest(name: str) -> str | None:
    """The known ALPHA_* name ``name`` most probably misspells, or None."""
    known = [n for n in list(VARIABLES) + list(TOOL_VARIABLES) if n.startswith("ALPHA_")]
    tails = {n[len("ALPHA_"):]: n for n in known}
    hit = difflib.get_close_matches(name[len("ALPHA_"):], list(tails), n=1, cutoff=0.8)
    return tails[hit[0]] if hit else None


def check_env(environ: Mapping[str, str] | None = None, env_file: str | Path | None = None) -> list[Problem]:
    """Every problem with the environment, one per variable, each naming the variable, what is wrong and how to
    fix it; [] when it is valid. ``env_file``: also check the EMERGENCY_STOP of that .env file (it is read from the
    file, never copied into the environment). Never raises."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    if env_file is not None:
        problems += _check_env_file(Path(env_file))
    for name, var in VARIABLES.items():
        raw = env.get(name)
        if raw is None or var.kind == "ignored" or _is_unset(var, raw):
            continue
        try:
            bad = CHECKS[var.kind](var, raw)
        except Exception as e:  # noqa: BLE001 - a check must never stop the others
            bad = (f"cannot be checked ({type(e).__name__})", "")
        if bad:
            problems.append(Problem(name, _shown(var, raw), *bad))
    for name in sorted(env):
        if name.startswith("ALPHA_") and name not in VARIABLES and name not in TOOL_VARIABLES:
            near = suggest(name)
            if near:
                problems.append(Problem(name, None, f"not a variable the engine reads; probably a typo of {near}",
                                        f"rename it to {near}"))
    return problems


def _check_env_file(path: Path) -> list[Problem]:
    try:
        if not path.is_file():
            return []
        from dotenv import dotenv_values

        raw = dotenv_values(path).get("EMERGENCY_STOP")
    except (OSError, UnicodeDecodeError):
        return []  # unreadable: the kill switch reports it itself
    var = VARIABLES["EMERGENCY_STOP"]
    if raw is None or _is_unset(var, raw):
        return []
    bad = _check_bool(var, raw)
    return [Problem(f"EMERGENCY_STOP (in {path})", _shown(var, raw), *bad)] if bad else []


def require_valid_env(environ: Mapping[str, str] | None = None, env_file: str | Path | None = None) -> None:
    """Raise ``EnvError`` listing every problem unless the environment (and ``env_file``'s EMERGENCY_STOP) is
    valid."""
    problems = check_env(environ, env_file)
    if problems:
        raise EnvError(problems)


def truthy(value: str | None) -> bool:
    """The one reading of a boolean setting (environment variable, .env value): 1/true/yes/on, case-insensitive
    and trimmed, are true; None, empty and anything else are false. ``check_env`` accepts exactly ``BOOL_TRUE`` and
    ``BOOL_FALSE``, so a value it lets through means the same thing here."""
    return (value or "").strip().lower() in BOOL_TRUE


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean variable's value, read with ``truthy`` (unset is false); ``environ`` defaults to ``os.environ``."""
    env = os.environ if environ is None else environ
    return truthy(env.get(name))
