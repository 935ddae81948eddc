"""Executors: one per action kind, the only code that makes something leave the building.

The gateway calls an executor only after it has committed the outbox row as ``sending``. An executor
either returns a Delivery, raises DefiniteFailure (it certainly did not go out) or raises AmbiguousFailure
(it may have gone out: never retried automatically, listed for reconciliation).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from engine.core.clock import Clock
from engine.adapters.db import Store
from engine.adapters.models import SandboxMessage


@dataclass(frozen=True)
class Message:
    outbox_id: int
    action: str
    to: str | None
    from_: str | None
    subject: str | None
    html: str | None
    text: str | None
    headers: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    provider: str
    message_id: str | None = None
    detail: str = ""


class DefiniteFailure(Exception):
    """The provider refused the request: nothing went out. ``counts_against_breaker`` for 5xx/transport."""

    def __init__(self, message: str, counts_against_breaker: bool = True):
        super().__init__(message)
        self.counts_against_breaker = counts_against_breaker


class AmbiguousFailure(Exception):
    """The request may have reached the provider (timeout, dropped connection after sending)."""


class Executor(Protocol):
    name: str   # shown in status and stored on the outbox row (e.g. "sandbox", "ghl")
    api: str    # the circuit breaker that guards it
    live: bool  # False: nothing reaches a real recipient

    def execute(self, msg: Message) -> Delivery: ...


class SandboxExecutor:
    """Records every message locally in ``sandbox_message``; used while no GHL credentials are configured."""

    name = "sandbox"
    api = "ghl"
    live = False

    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock

    def execute(self, msg: Message) -> Delivery:
        mid = f"sandbox-{uuid.uuid4().hex[:16]}"
        with self.store.write_plain() as s:
            s.add(SandboxMessage(outbox_id=msg.outbox_id, action=msg.action, to_email=msg.to, from_email=msg.from_,
                                 subject=msg.subject, html=msg.html, text=msg.text, headers=msg.headers,
                                 payload={**msg.record, "provider_message_id": mid}, created_at=self.clock()))
        return Delivery(self.name, mid, "recorded in the local sandbox; not delivered")
