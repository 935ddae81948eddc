"""Circuit breakers per external API, with their state in the database so every worker sees the same.

CLOSED -> OPEN after ``failure_threshold`` consecutive failures -> HALF_OPEN once ``recovery_timeout_seconds``
have passed (one trial call at a time, under a lease) -> CLOSED after ``success_threshold`` successes; a
failure in HALF_OPEN opens it again. Forced states (``alpha breakers open|close``) are audited; a forced
OPEN stays open until closed by a person.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable

from sqlmodel import Session, select

from engine.adapters import audit
from engine.core.clock import Clock, iso
from engine.core.config import EXTERNAL_APIS, BreakerSettings, Settings
from engine.adapters.db import Store
from engine.core.errors import BreakerOpenError, InvalidRequest
from engine.adapters.models import BreakerState

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"
TRIAL_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Snapshot:
    state: str = CLOSED
    failures: int = 0
    successes: int = 0
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    trial_started_at: datetime | None = None
    forced: bool = False
    last_error: str | None = None


# ------------------------------------------------------------------------------------- pure transitions

def admit(b: Snapshot, cfg: BreakerSettings, now: datetime) -> tuple[bool, Snapshot, datetime | None]:
    """May a call go now? Returns (allowed, new snapshot, retry_at when refused)."""
    if b.state == CLOSED:
        return True, b, None
    if b.state == OPEN:
        if b.forced:
            return False, b, now + timedelta(seconds=cfg.recovery_timeout_seconds)
        if b.retry_at is not None and now < b.retry_at:
            return False, b, b.retry_at
        return True, replace(b, state=HALF_OPEN, successes=0, trial_started_at=now), None
    # HALF_OPEN: one trial at a time
    if b.trial_started_at is not None and now - b.trial_started_at < TRIAL_LEASE:
        return False, b, b.trial_started_at + TRIAL_LEASE
    return True, replace(b, trial_started_at=now), None


def on_success(b: Snapshot, cfg: BreakerSettings, now: datetime) -> Snapshot:
    if b.state == HALF_OPEN:
        n = b.successes + 1
        if n >= cfg.success_threshold:
            return Snapshot(state=CLOSED, last_error=b.last_error)
        return replace(b, successes=n, trial_started_at=None)
    if b.state == CLOSED:
        return replace(b, failures=0)
    return b  # a late success while OPEN changes nothing


def on_failure(b: Snapshot, cfg: BreakerSettings, now: datetime, error: str) -> Snapshot:
    err = (error or "")[:500]
    if b.state == HALF_OPEN:
        return replace(b, state=OPEN, successes=0, failures=b.failures + 1, opened_at=now,
                       retry_at=now + timedelta(seconds=cfg.recovery_timeout_seconds), trial_started_at=None,
                       last_error=err)
    if b.state == CLOSED:
        n = b.failures + 1
        if n >= cfg.failure_threshold:
            return replace(b, state=OPEN, failures=n, opened_at=now,
                           retry_at=now + timedelta(seconds=cfg.recovery_timeout_seconds), last_error=err)
        return replace(b, failures=n, last_error=err)
    return replace(b, failures=b.failures + 1, last_error=err)


# ------------------------------------------------------------------------------------- database service

def _snap(row: BreakerState) -> Snapshot:
    return Snapshot(row.state, row.consecutive_failures, row.consecutive_successes, row.opened_at, row.retry_at,
                    row.trial_started_at, row.forced, row.last_error)


def _apply(row: BreakerState, b: Snapshot, now: datetime) -> None:
    row.state, row.consecutive_failures, row.consecutive_successes = b.state, b.failures, b.successes
    row.opened_at, row.retry_at, row.trial_started_at = b.opened_at, b.retry_at, b.trial_started_at
    row.forced, row.last_error, row.updated_at = b.forced, b.last_error, now


class Breakers:
    def __init__(self, store: Store, settings: Settings, clock: Clock,
                 on_transition: Callable[[str, str, str, str | None], None] | None = None):
        self.store, self.settings, self.clock = store, settings, clock
        self.on_transition = on_transition  # told (name, before, after, detail) of every committed transition
        self._local = threading.local()

    def _pending(self) -> list:
        if not hasattr(self._local, "pending"):
            self._local.pending = []
        return self._local.pending

    def flush_transitions(self) -> None:
        """Report transitions committed by this thread (call after the transaction that made them)."""
        pending, self._local.pending = self._pending(), []
        if self.on_transition is None:
            return
        for t in pending:
            try:
                self.on_transition(*t)
            except Exception:  # noqa: BLE001 - reporting never breaks a caller
                pass

    def cfg(self, name: str) -> BreakerSettings:
        return self.settings.production.circuit_breakers.for_api(name)

    @staticmethod
    def check_name(name: str) -> str:
        if name not in EXTERNAL_APIS:
            raise InvalidRequest(f"unknown circuit breaker {name!r}; known: {', '.join(EXTERNAL_APIS)}")
        return name

    def _row(self, s: Session, name: str) -> BreakerState:
        row = s.get(BreakerState, name)
        if row is None:
            row = BreakerState(name=name, updated_at=self.clock())
            s.add(row)
            s.flush()
        return row

    def _transition(self, s: Session, row: BreakerState, new: Snapshot, now: datetime, actor: str,
                    reason: str | None = None) -> None:
        old = row.state
        _apply(row, new, now)
        s.add(row)
        if new.state != old:
            self._pending().append((row.name, old, new.state, reason or new.last_error))
            audit.append(s, event="breaker.transition", actor=actor, now=now, ref=row.name, status=new.state,
                         data={"breaker": row.name, "before": old, "after": new.state, "reason": reason,
                               "last_error": new.last_error, "retry_at": iso(new.retry_at), "forced": new.forced})

    # Used inside the gateway's own transaction, or alone.
    def admit_in(self, s: Session, name: str, now: datetime) -> tuple[bool, datetime | None]:
        row = self._row(s, name)
        ok, new, retry_at = admit(_snap(row), self.cfg(name), now)
        if new != _snap(row):
            self._transition(s, row, new, now, actor=f"breaker:{name}", reason="recovery timeout elapsed")
        return ok, retry_at

    def admit(self, name: str) -> tuple[bool, datetime | None]:
        with self.store.write() as s:
            out = self.admit_in(s, name, self.clock())
        self.flush_transitions()
        return out

    def record_in(self, s: Session, name: str, ok: bool, now: datetime, error: str | None = None) -> str:
        row = self._row(s, name)
        b = _snap(row)
        new = on_success(b, self.cfg(name), now) if ok else on_failure(b, self.cfg(name), now, error or "error")
        if new != b:
            self._transition(s, row, new, now, actor=f"breaker:{name}",
                             reason=None if ok else f"failure: {(error or '')[:200]}")
        row.last_success_at = now if ok else row.last_success_at
        row.last_failure_at = row.last_failure_at if ok else now
        s.add(row)
        return new.state

    def record(self, name: str, ok: bool, error: str | None = None) -> str:
        with self.store.write() as s:
            out = self.record_in(s, name, ok, self.clock(), error)
        self.flush_transitions()
        return out

    def force(self, name: str, state: str, reason: str, actor: str) -> BreakerState:
        self.check_name(name)
        if not reason.strip() or not actor.strip():
            raise InvalidRequest("a reason (--reason) and an actor (--actor) are required")
        now = self.clock()
        with self.store.write() as s:
            row = self._row(s, name)
            if state == OPEN:
                new = Snapshot(state=OPEN, failures=row.consecutive_failures, opened_at=now, retry_at=None,
                               forced=True, last_error=row.last_error)
            else:
                new = Snapshot(state=CLOSED, last_error=row.last_error)
            old = row.state
            _apply(row, new, now)
            s.add(row)
            audit.append(s, event="breaker.forced", actor=actor, now=now, ref=name, status=state,
                         data={"breaker": name, "before": old, "after": state, "reason": reason})
            if old != state:
                self._pending().append((name, old, state, f"forced by {actor}: {reason}"))
        self.flush_transitions()
        return row

    def list(self) -> list[BreakerState]:
        with self.store.read() as s:
            rows = {r.name: r for r in s.exec(select(BreakerState)).all()}
        return [rows.get(n) or BreakerState(name=n) for n in EXTERNAL_APIS]

    def guard(self, name: str, *, ignore: tuple[type[BaseException], ...] = ()) -> Callable:
        """Decorator: refuse calls while the breaker is open, and count the call's outcome.

        Exceptions listed in ``ignore`` (e.g. a 4xx caused by our own bad input) neither open nor close it.
        """
        self.check_name(name)

        def deco(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                ok, retry_at = self.admit(name)
                if not ok:
                    raise BreakerOpenError(name, retry_at)
                try:
                    result = fn(*args, **kwargs)
                except ignore:
                    self.record(name, True)
                    raise
                except Exception as e:
                    self.record(name, False, f"{type(e).__name__}: {e}")
                    raise
                self.record(name, True)
                return result

            return wrapper

        return deco
