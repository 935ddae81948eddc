"""RFC 8058 one-click unsubscribe: signed per-recipient tokens and the List-Unsubscribe headers.

Pure: the secret is given. Where it comes from (the environment or a generated key file) is
engine.adapters.keyfile.load_secret."""
from __future__ import annotations

import base64
import hashlib
import hmac


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


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
