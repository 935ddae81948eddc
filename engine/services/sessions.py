"""Console sessions kept on the server, and a growing lockout after failed logins. Headless (no streamlit).

A login creates a ``ConsoleSession`` row and hands back a random token (``secrets.token_urlsafe(32)``); the
browser keeps only that token (cookie ``alpha_session``), the database only its SHA-256. ``resume(token)`` accepts
it while ALL of these hold, checked on every console run:

- the row exists and was not revoked (logout, ``alpha users revoke``, a removal or a password change);
- it is younger than ``ABSOLUTE_LIFETIME`` (7 days) and was used within ``IDLE_TIMEOUT`` (12 hours);
- the user is still in the users file and their password hash is still the one they logged in with (the row keeps
  a fingerprint of it), so a new password, set by ``alpha users set-password`` or by editing the file, ends
  every session opened with the old one.

Failed logins are counted per typed username (``user:<name>``, known or unknown alike, so the lockout does not
reveal which names exist; the name read once by ``users.login_key`` and looked up exactly as counted, so no padding
or other spelling logs in as a user while counting elsewhere) in ``LoginAttempt``, in the database, so the count
holds across restarts and several console processes. After ``MAX_FAILURES`` (5) failures the name is locked for
``BASE_DELAY`` (30 s), doubling with each further failure up to ``MAX_DELAY`` (15 min); while locked even the right
password is refused with a message saying when to try again; a success resets the count; failures older than
``FAILURE_MEMORY`` (24 h) are forgotten; ``alpha users unlock NAME`` ends a lockout at once (anyone can lock a name,
only an admin can free it early).
Every attempt counts before its password is checked, so a burst of parallel guesses gets at most the allowed
number checked. Every attempt runs exactly one bcrypt check (an unknown name against a dummy hash of the same
cost, a locked name too), so timing tells nothing.

Logins, failures, lockouts, logouts and revocations go to the audit trail (never a password or a token).
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, ParamSpec, Sequence, TypeGuard, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import col, delete, select

from engine.adapters.ports import Stored
from engine.adapters import audit
from engine.adapters import users
from engine.core.clock import Clock, as_utc, system_clock
from engine.core.errors import AlphaError
from engine.adapters.db import DatabaseUnreachable, unreachable_message
from engine.adapters.models import ConsoleSession, LoginAttempt

COOKIE_NAME = "alpha_session"
IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_LIFETIME = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
MAX_FAILURES = 5
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
FAILURE_MEMORY = timedelta(hours=24)
KEEP_ENDED = timedelta(days=30)  # ended sessions are deleted this long after they expire
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
INCORRECT = "Username or password is incorrect."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_token(token: str | None) -> TypeGuard[str]:
    return isinstance(token, str) and bool(TOKEN_RE.match(token))


def shown_name(name: str) -> str:
    """A typed name as the audit trail records it: as typed when it could be a username, else escaped to printable
    ASCII and cut to 80 characters (a NUL or a lone surrogate is not storable text on PostgreSQL)."""
    return name if users.valid_username(name) else ascii(name)[1:-1][:80]


def attempt_key(name: str) -> str:
    """The LoginAttempt key of a name read by ``users.login_key``: ``user:<name>`` when it could be a username.
    Any other name can never log in (the login looks up exactly this name); it is counted under its escaped
    beginning and a digest of the whole, so the key is storable, fits its column and is never a user's key."""
    if users.valid_username(name):
        return f"user:{name}"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"user:{ascii(name)[1:-1][:64]}#{digest}"


def lock_delay(failures: int) -> timedelta:
    """How long a name is locked after its ``failures``-th failure (0 below MAX_FAILURES)."""
    if failures < MAX_FAILURES:
        return timedelta(0)
    return min(BASE_DELAY * (2 ** min(failures - MAX_FAILURES, 20)), MAX_DELAY)


def _wait_text(seconds: int, until: datetime) -> str:
    span = f"{seconds} second{'s' if seconds != 1 else ''}" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    return f"try again in {span} (after {as_utc(until).strftime('%H:%M:%S')} UTC)"


@dataclass
class LoginResult:
    ok: bool
    message: str = ""
    token: str | None = None
    username: str | None = None
    name: str | None = None
    roles: tuple[str, ...] = ()
    retry_after: int | None = None  # seconds until the name may try again, when locked
    locked: bool = False


@dataclass
class Resumed:
    """What ``check`` found: the user when the session is valid, else why not (``reason``, ``message``)."""
    username: str | None
    name: str | None = None
    roles: tuple[str, ...] = ()
    reason: str | None = None
    message: str | None = None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _database_named(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """A database that cannot be reached (down, restarting, a cut connection) is DatabaseUnreachable naming it
    (never its password) and what to check, not the driver's error: the console shows it and changes nothing."""
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as e:
            store = getattr(args[0], "store", None)
            url = getattr(store, "url", None)
            if not isinstance(url, str):
                raise
            raise DatabaseUnreachable(unreachable_message(url, e)) from None
    return wrapper


class SessionService:
    def __init__(self, store, clock: Clock = system_clock, users_path: str | Path | None = None):
        self.store = store
        self.clock = clock
        self.users_path = users_path  # None: users.users_file() at each call

    @classmethod
    def for_app(cls, app: Stored, users_path: str | Path | None = None) -> "SessionService":
        return cls(app.store, app.clock, users_path)

    def _path(self) -> Path:
        return Path(self.users_path) if self.users_path else users.users_file()

    # ------------------------------------------------------------------------------------ login

    @_database_named
    def login(self, username: str | None, password: str | None, client: str | None = None) -> LoginResult:
        typed = users.login_key(username)  # the lockout counts under exactly the name the login looks up
        key, name = attempt_key(typed), shown_name(typed)
        client = (client or "")[:200] or None
        now = self.clock()
        attempt, locked_until = self._reserve(key, now)
        user = users.verify_login(typed, password or "", self._path())  # one bcrypt check, whatever happened above
        if locked_until is not None:
            wait = max(1, math.ceil((locked_until - now).total_seconds()))
            return LoginResult(False, f"Too many failed logins for this username: {_wait_text(wait, locked_until)}.",
                               retry_after=wait, locked=True)
        if user is None:
            return self._failed(key, name, attempt, client, now)
        token = secrets.token_urlsafe(32)
        with self.store.write() as s:
            s.exec(delete(LoginAttempt).where(col(LoginAttempt.key) == key))
            s.exec(delete(ConsoleSession).where(col(ConsoleSession.expires_at) < now - KEEP_ENDED))
            row = ConsoleSession(token_hash=token_hash(token), username=user["username"],
                                 password_stamp=users.password_stamp(user["password"]), created_at=now,
                                 last_seen_at=now, expires_at=now + ABSOLUTE_LIFETIME, client=client)
            s.add(row)
            s.flush()
            audit.append(s, event="console_login", actor=f"console:{user['username']}", now=now, status="ok",
                         ref=f"session:{row.id}", data={"username": user["username"], "client": client})
        return LoginResult(True, "", token=token, username=user["username"], name=user["name"],
                           roles=tuple(user["roles"]))

    def _reserve(self, key: str, now: datetime) -> tuple[int, datetime | None]:
        """Count this attempt as a failure before the password is checked (a success clears it). Returns
        (this attempt's failure number, None) or (0, locked_until) when the name is locked."""
        with self.store.write() as s:
            row = s.get(LoginAttempt, key)
            if row is not None and row.locked_until is not None and as_utc(row.locked_until) > now:
                return 0, as_utc(row.locked_until)
            if row is None:
                row = LoginAttempt(key=key, failures=0, first_failed_at=now)
            elif row.last_failed_at is None or now - as_utc(row.last_failed_at) > FAILURE_MEMORY:
                row.failures, row.first_failed_at = 0, now
            row.failures += 1
            row.last_failed_at = now
            delay = lock_delay(row.failures)
            row.locked_until = now + delay if delay else None
            s.add(row)
            return row.failures, None

    def _failed(self, key: str, name: str, attempt: int, client: str | None, now: datetime) -> LoginResult:
        with self.store.write() as s:
            s.exec(delete(LoginAttempt).where(col(LoginAttempt.last_failed_at) < now - FAILURE_MEMORY,
                                              col(LoginAttempt.key) != key))
            row = s.get(LoginAttempt, key)
            failures = row.failures if row is not None else attempt
            locked_until = as_utc(row.locked_until) if row is not None and row.locked_until else None
            audit.append(s, event="console_login_failed", actor="console", now=now, status="refused",
                         data={"username": name, "failures": failures, "client": client})
            if locked_until is not None and locked_until > now:
                audit.append(s, event="console_lockout", actor="console", now=now, status="locked",
                             data={"username": name, "failures": failures,
                                   "locked_seconds": int((locked_until - now).total_seconds()),
                                   "locked_until": locked_until.isoformat(), "client": client})
        if locked_until is not None and locked_until > now:
            wait = max(1, math.ceil((locked_until - now).total_seconds()))
            return LoginResult(False, f"{INCORRECT} Too many failed logins for this username: "
                                      f"{_wait_text(wait, locked_until)}.", retry_after=wait, locked=True)
        return LoginResult(False, INCORRECT)

    @_database_named
    def unlock(self, username: str, actor: str = "system") -> int:
        """Forget the failed logins of ``username`` (its lockout ends now), audited; returns how many failures were
        forgotten. The lockout is per name, so anyone who can reach the login page can keep a name locked: this
        is how an admin lets that user in again (``alpha users unlock``)."""
        key = attempt_key(users.login_key(username))
        now = self.clock()
        with self.store.write() as s:
            row = s.get(LoginAttempt, key)
            if row is None:
                return 0
            n = row.failures
            s.delete(row)
            audit.append(s, event="console_unlock", actor=(actor or "system")[:200], now=now, status="ok",
                         data={"username": shown_name(users.login_key(username)), "failures": n})
        return n

    @_database_named
    def attempts(self, username: str) -> LoginAttempt | None:
        with self.store.read() as s:
            return s.get(LoginAttempt, attempt_key(users.login_key(username)))

    # ------------------------------------------------------------------------------------ sessions

    def _row(self, token: str | None) -> ConsoleSession | None:
        if not valid_token(token):
            return None
        with self.store.read() as s:
            return s.exec(select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token))).first()

    @_database_named
    def check(self, token: str | None) -> Resumed:
        """The session behind ``token``: its user when valid (and last_seen_at refreshed, at most once a minute),
        else why not."""
        row = self._row(token)
        if row is None:
            return Resumed(None, reason="unknown", message="Log in to continue.")
        now = self.clock()
        if row.revoked_at is not None:
            why = {"logout": "you logged out", "password_changed": "the password was changed",
                   "user_removed": "the user was removed"}.get(row.revoked_reason or "", "it was revoked")
            return Resumed(None, reason="revoked", message=f"Your session has ended ({why}). Log in again.")
        if row.expires_at is None or now >= as_utc(row.expires_at):  # no expiry: not a valid session
            return Resumed(None, reason="expired", message="Your session has expired (7 days). Log in again.")
        if row.last_seen_at is None or now - as_utc(row.last_seen_at) > IDLE_TIMEOUT:
            return Resumed(None, reason="idle", message="Your session has expired after 12 hours without use. "
                                                        "Log in again.")
        try:
            user = users.find_user(row.username, self._path())
        except AlphaError as e:  # the file is missing or being edited: refuse, revoke nothing
            return Resumed(None, reason="users_file", message=f"Cannot check your session: {e}")
        # Refused either way; revoked (bookkeeping: `alpha users sessions`) only outside demo mode. A demo console
        # on the same database reads another users file: a production session shown to it (same host, another
        # port: the browser sends the cookie) has no user or another password there, and must not be ended by it.
        revoke = not users.demo_mode()
        if user is None:
            if revoke:
                self._revoke_rows([row.id], "user_removed", "system", now)
            return Resumed(None, reason="user_removed",
                           message=f"User {row.username!r} no longer exists in the users file. Ask an admin.")
        if users.password_stamp(user["password"]) != row.password_stamp:
            if revoke:
                self._revoke_rows([row.id], "password_changed", "system", now)
            return Resumed(None, reason="password_changed",
                           message="Your password was changed, so this session has ended. Log in again.")
        if now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
            with self.store.write_plain() as s:
                r = s.get(ConsoleSession, row.id)
                if r is not None:
                    r.last_seen_at = now
                    s.add(r)
        return Resumed(row.username, name=user["name"], roles=tuple(user["roles"]))

    def resume(self, token: str | None) -> str | None:
        """The username of a valid session, else None."""
        return self.check(token).username

    @_database_named
    def logout(self, token: str | None) -> bool:
        row = self._row(token)
        if row is None or row.revoked_at is not None:
            return False
        return self._revoke_rows([row.id], "logout", f"console:{row.username}", self.clock()) == 1

    @_database_named
    def revoke_user(self, username: str, reason: str, actor: str = "system", stamp: str | None = None) -> int:
        """End every open session of ``username`` (e.g. ``password_changed``, ``user_removed``); returns how many.
        With ``stamp`` (``users.password_stamp`` of the hash a users file holds), only the sessions opened with that
        password: the ones that file's user holds. Two users files on one database (demo mode's and production's)
        may both have an ``admin``; a change to one must not end the other's sessions."""
        key = (username or "").strip().lower()
        now = self.clock()
        with self.store.read() as s:
            q = select(ConsoleSession.id).where(ConsoleSession.username == key,
                                                col(ConsoleSession.revoked_at).is_(None),
                                                col(ConsoleSession.expires_at) > now)
            if stamp is not None:
                q = q.where(ConsoleSession.password_stamp == stamp)
            ids = list(s.exec(q).all())
        return self._revoke_rows(ids, reason, actor, now) if ids else 0

    def _revoke_rows(self, ids: Sequence[int | None], reason: str, actor: str, now: datetime) -> int:
        """``ids`` of stored rows (a row's id is None only before it is first stored)."""
        n = 0
        with self.store.write() as s:
            for sid in ids:
                r = s.get(ConsoleSession, sid) if sid is not None else None
                if r is None or r.revoked_at is not None:
                    continue
                r.revoked_at, r.revoked_reason = now, (reason or "revoked")[:64]
                s.add(r)
                n += 1
                audit.append(s, event="console_logout" if reason == "logout" else "console_session_revoked",
                             actor=(actor or "system")[:200], now=now, status=r.revoked_reason,
                             ref=f"session:{r.id}", data={"username": r.username, "reason": r.revoked_reason})
        return n

    @_database_named
    def sessions(self, username: str | None = None, include_ended: bool = False) -> list[dict]:
        """Sessions (newest first): open ones, or all with ``include_ended``. Never the token or its hash."""
        now = self.clock()
        with self.store.read() as s:
            q = select(ConsoleSession).order_by(col(ConsoleSession.id).desc())
            if username:
                q = q.where(ConsoleSession.username == username.strip().lower())
            rows = s.exec(q).all()
        out = []
        for r in rows:
            if r.revoked_at is not None:
                state = f"revoked ({r.revoked_reason})"
            elif now >= as_utc(r.expires_at):
                state = "expired"
            elif now - as_utc(r.last_seen_at) > IDLE_TIMEOUT:
                state = "idle"
            else:
                state = "open"
            if state != "open" and not include_ended:
                continue
            out.append({"id": r.id, "username": r.username, "state": state, "created_at": r.created_at,
                        "last_seen_at": r.last_seen_at, "expires_at": r.expires_at, "client": r.client})
        return out
