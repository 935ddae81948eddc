"""RFC 8058 one-click unsubscribe: signed per-recipient tokens and the List-Unsubscribe headers."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


SECRET_ENV = "ALPHA_UNSUBSCRIBE_SECRET"


def load_secret(data_dir: str | Path = ".data") -> bytes:
    """ALPHA_UNSUBSCRIBE_SECRET, or a key generated once into .data/unsubscribe.key (kept out of git).

    Several hosts must share one secret: set the variable on each of them (``require_shared_secret`` refuses
    to start a long-running process on PostgreSQL, the multi-host storage, without it).
    """
    env = os.environ.get(SECRET_ENV, "")
    if env:
        return env.encode()
    from engine.adapters.keyfile import generated_key

    return generated_key(Path(data_dir) / "unsubscribe.key").encode()


def require_shared_secret(dialect: str, what: str = "this process") -> None:
    """Refuse (EnvError, exit code 2) to run ``what`` on a multi-host database (anything but SQLite) unless
    ALPHA_UNSUBSCRIBE_SECRET is set: a key generated per host would make each host mint and verify different
    unsubscribe tokens, so a link sent by one host would be refused by another host's receiver or worker."""
    if dialect == "sqlite" or os.environ.get(SECRET_ENV, ""):
        return
    from engine.core.envcheck import SECRET_COMMAND, EnvError, Problem

    raise EnvError([Problem(
        SECRET_ENV, None,
        f"not set, and {what} runs on {dialect}, the storage shared by several hosts: a key generated per host "
        "would make each host sign unsubscribe links differently, so a link sent by one host would be refused by "
        "another",
        f"generate one with `{SECRET_COMMAND}` and set the SAME value on every host (worker, webhook receiver, "
        "console, scheduler); a generated key file is only used on SQLite (one host)")])


def make_token(email: str, secret: bytes) -> str:
    e = email.strip().lower().encode()
    sig = hmac.new(secret, b"unsubscribe:" + e, hashlib.sha256).digest()[:18]
    return f"{_b64(e)}.{_b64(sig)}"


def verify_token(token: str, secret: bytes) -> str | None:
    """The recipient named by a valid token, or None."""
    try:
        e64, s64 = token.split(".", 1)
        email = _unb64(e64)
        sig = _unb64(s64)
    except (ValueError, TypeError):
        return None
    good = hmac.new(secret, b"unsubscribe:" + email, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(sig, good):
        return None
    try:
        return email.decode()
    except UnicodeDecodeError:
        return None


def unsubscribe_url(base: str, email: str, secret: bytes) -> str:
    return f"{base.rstrip('/')}/{make_token(email, secret)}"


def one_click_headers(base: str, email: str, secret: bytes) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(base, email, secret)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
