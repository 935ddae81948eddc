"""Prometheus metrics, read from the database at scrape time (``GET /metrics`` on the webhook receiver).

Every figure is derived from the shared database, so one scrape of any receiver describes the whole fleet (all
workers on all hosts), and a restart loses nothing. Exposition: the Prometheus text format 0.0.4 (``# HELP`` and
``# TYPE`` before each family's samples, label values escaped), written here without a client library.

Families:

- ``alpha_up`` (gauge): 1 when the database answers and its schema is at the code's head revision; otherwise 0
  and only the health families follow.
- ``alpha_component_healthy{component}`` and ``alpha_component_state{component,state}`` (gauges):
engine.queries.health's
  measured component health (database, schema, worker, webhook_receiver, scheduler, config, executor).
- ``alpha_workers_running`` (gauge): workers with a fresh heartbeat; ``alpha_heartbeat_age_seconds{component}``.
- ``alpha_gateway_decisions_total{status}`` and ``alpha_gateway_decision_reasons_total{status,reason}``
  (counters): the gateway's decisions, from the append-only audit trail (``gateway.decision`` rows). A decision
  with several reasons counts once under each of them in the second family; one without reasons counts under
  none of them.
- ``alpha_gateway_executions_total{status}`` (counter): provider calls and their outcome (``gateway.execution``).
- ``alpha_outbox_items{status}`` (gauge): outbox rows by status, every known status present (0 included): the
  queue depth (deferred, pending_approval, sending, reconcile) and the final states.
- ``alpha_outbox_due_items`` (gauge): deferred rows whose not_before has passed (what a worker takes next).
- ``alpha_approvals_pending{kind}`` (gauge): the approval queue.
- ``alpha_breaker_state{breaker,state}`` (gauge, 1 for the current state of each breaker, 0 for the others) and
  ``alpha_breaker_consecutive_failures{breaker}``.
- ``alpha_kill_switch`` and ``alpha_maintenance`` (gauges, 1 when on), ``alpha_rollout_phase{phase}`` (1 for the
  current phase).
- ``alpha_send_latency_seconds`` (histogram): per sent outbox row, from the gateway's first decision
  (``created_at``) to the provider's confirmation (``sent_at``): waits for approval, working hours and limits
  included. ``alpha_send_call_seconds`` (histogram): from the reservation committed just before the provider
  call (``reserved_at``) to ``sent_at``: the provider's own latency.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Protocol

from engine.adapters.breakers import Breakers
from engine.queries.health import Observed

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
KINDS = ("counter", "gauge", "histogram", "summary", "untyped")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass
class Family:
    """One metric family: its samples are (sample name suffix, labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self):
        if not _NAME.match(self.name) or self.kind not in KINDS:
            raise ValueError(f"bad metric family {self.name!r} ({self.kind})")

    def add(self, value: float, labels: dict[str, str] | None = None, suffix: str = "") -> "Family":
        labels = {k: str(v) for k, v in (labels or {}).items()}
        bad = [k for k in labels if not _LABEL.match(k) or k.startswith("__")]
        if bad:
            raise ValueError(f"bad label name(s) {bad} in {self.name}")
        self.samples.append((suffix, labels, float(value)))
        return self

    def histogram(self, buckets: Iterable[float], cumulative: list[int], total: float, count: int,
                  labels: dict[str, str] | None = None) -> "Family":
        """``cumulative[i]``: observations <= ``buckets[i]``; the +Inf bucket is ``count``."""
        for bound, n in zip(buckets, cumulative):
            self.add(n, {**(labels or {}), "le": _le(bound)}, "_bucket")
        self.add(count, {**(labels or {}), "le": "+Inf"}, "_bucket")
        self.add(total, labels, "_sum")
        self.add(count, labels, "_count")
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for suffix, labels, value in self.samples:
            lab = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{self.name}{suffix}{'{' + lab + '}' if lab else ''} {format_value(value)}")
        return "\n".join(lines) + "\n"


def render(families: Iterable[Family]) -> str:
    out, seen = [], set()
    for f in families:
        if f.name in seen:
            raise ValueError(f"metric family {f.name} twice")
        seen.add(f.name)
        out.append(f.render())
    return "".join(out)


# ---------------------------------------------------------------------------------------------- collection

def _seconds_between(dialect: str, start, end):
    """An SQL expression: seconds from column ``start`` to column ``end``."""
    from sqlalchemy import Float, cast, func

    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _latency(s, dialect: str, start_col, buckets: tuple[float, ...]) -> tuple[list[int], float, int]:
    from sqlalchemy import case, func
    from sqlmodel import col, select

    from engine.adapters.models import OutboxItem

    secs = _seconds_between(dialect, start_col, OutboxItem.sent_at)
    cols = [func.count(), func.coalesce(func.sum(secs), 0.0)]
    cols += [func.coalesce(func.sum(case((secs <= b, 1), else_=0)), 0) for b in buckets]
    row = s.exec(select(*cols).where(OutboxItem.status == "sent", col(OutboxItem.sent_at).is_not(None),
                                     start_col.is_not(None))).one()
    count, total, cumulative = int(row[0] or 0), float(row[1] or 0.0), [int(x or 0) for x in row[2:]]
    return cumulative, total, count


def _reason_codes(raw) -> list[str]:
    try:
        codes = json.loads(raw) if isinstance(raw, str) else (raw or [])
    except ValueError:
        return ["UNPARSEABLE"]
    out = []
    for c in codes if isinstance(codes, list) else []:
        code = c.get("code") if isinstance(c, dict) else c
        if code:
            out.append(str(code))
    return out


def _health_families(health: dict[str, dict], now: datetime) -> list[Family]:
    from engine.core.clock import as_utc, parse_iso
    from engine.queries.health import STATES

    healthy = Family("alpha_component_healthy", "gauge", "1 when the component's measured health is ok, else 0 (engine"
                     ".queries.health: database, schema, worker, webhook_receiver, scheduler, config, executor).")
    state = Family("alpha_component_state", "gauge", "1 for the component's current health state "
                   "(ok, stale, down, not_configured, sandbox, unknown), 0 for the others.")
    age = Family("alpha_heartbeat_age_seconds", "gauge", "Seconds since the newest heartbeat of a component "
                 "(worker, webhook_receiver) or the last daily run (scheduler); absent when none was ever seen.")
    workers = Family("alpha_workers_running", "gauge", "Workers with a fresh heartbeat (`alpha worker` processes, "
                     "all hosts).")
    for name, entry in health.items():
        healthy.add(1 if entry.get("ok") else 0, {"component": name})
        for st in STATES:
            state.add(1 if entry.get("state") == st else 0, {"component": name, "state": st})
        if name in ("worker", "webhook_receiver", "scheduler") and entry.get("seen_at"):
            try:
                age.add(max(0.0, (now - as_utc(parse_iso(entry["seen_at"]))).total_seconds()), {"component": name})
            except (TypeError, ValueError):
                pass
    w = health.get("worker") or {}
    workers.add(int(w.get("workers") or 0) if w.get("ok") else 0)
    return [healthy, state, workers, age]


class _ControlReader(Protocol):
    def state(self) -> Any: ...  # the control_state row (engine.services.control.ControlPlane.state)

    def kill(self) -> Any: ...  # the kill switch as it stands (.on)


class Measured(Observed, Protocol):
    """What the metrics read of the engine (engine.app.App): what the health view reads, the circuit breakers and
    the control plane (which a query cannot import: services sit above queries)."""

    @property
    def breakers(self) -> Breakers: ...

    @property
    def control(self) -> _ControlReader: ...


def collect(app: Measured, now: datetime | None = None) -> list[Family]:
    """Every family, read from ``app``'s database now. Never raises for an unreachable or empty database: it
    answers alpha_up 0 then."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from engine.core.clock import as_utc
    from engine.core.config import PHASES
    from engine.queries.health import component_health
    from engine.adapters.models import Approval, AuditEntry, OutboxItem
    from engine.queries.outbox import STATUSES

    now = as_utc(now or app.clock())
    health = component_health(app, now)
    ready = bool(health.get("database", {}).get("ok") and health.get("schema", {}).get("ok"))
    up = Family("alpha_up", "gauge", "1 when the database answers and its schema is at the code's revision.")
    up.add(1 if ready else 0)
    families = [up, *_health_families(health, now)]
    if not ready:
        return families

    store = app.store
    decisions = Family("alpha_gateway_decisions_total", "counter",
                       "Gateway decisions by status, from the audit trail (every decision is audited).")
    reasons = Family("alpha_gateway_decision_reasons_total", "counter",
                     "Gateway decisions by status and reason code; a decision with several reasons counts under "
                     "each of them.")
    executions = Family("alpha_gateway_executions_total", "counter",
                        "Provider calls by outcome status (sent, deferred, failed, reconcile), from the audit trail.")
    outbox = Family("alpha_outbox_items", "gauge", "Outbox rows by status: the queue depth (deferred, "
                    "pending_approval, sending, reconcile) and the final states.")
    due = Family("alpha_outbox_due_items", "gauge", "Deferred outbox rows whose not_before has passed: what the "
                 "workers take next.")
    approvals = Family("alpha_approvals_pending", "gauge", "Approval requests waiting for a person, by kind.")
    breaker = Family("alpha_breaker_state", "gauge", "1 for the circuit breaker's current state (CLOSED, OPEN, "
                     "HALF_OPEN), 0 for the others.")
    failures = Family("alpha_breaker_consecutive_failures", "gauge", "Consecutive failures counted by the breaker.")
    kill = Family("alpha_kill_switch", "gauge", "1 while the kill switch is on (database or EMERGENCY_STOP).")
    maint = Family("alpha_maintenance", "gauge", "1 while maintenance mode is on.")
    phase = Family("alpha_rollout_phase", "gauge", "1 for the current rollout phase, 0 for the others.")
    latency = Family("alpha_send_latency_seconds", "histogram",
                     "Per sent outbox row, seconds from the gateway's first decision (created_at) to the provider's "
                     "confirmation (sent_at), waits for approval, working hours and limits included.")
    call = Family("alpha_send_call_seconds", "histogram",
                  "Per sent outbox row, seconds from the reservation committed before the provider call "
                  "(reserved_at) to the provider's confirmation (sent_at).")

    with store.read() as s:
        by_status: dict[str, int] = {}
        by_reason: dict[tuple[str, str], int] = {}
        by_exec: dict[str, int] = {}
        rows = s.exec(select(AuditEntry.event, AuditEntry.status, AuditEntry.reasons, func.count())
                      .where(col(AuditEntry.event).in_(("gateway.decision", "gateway.execution")))
                      .group_by(col(AuditEntry.event), col(AuditEntry.status), col(AuditEntry.reasons))).all()
        for event, status, raw, n in rows:
            status = status or "unknown"
            if event == "gateway.execution":
                by_exec[status] = by_exec.get(status, 0) + int(n)
                continue
            by_status[status] = by_status.get(status, 0) + int(n)
            for code in set(_reason_codes(raw)):
                by_reason[(status, code)] = by_reason.get((status, code), 0) + int(n)
        for st, n in sorted(by_status.items()):
            decisions.add(n, {"status": st})
        for (st, code), n in sorted(by_reason.items()):
            reasons.add(n, {"status": st, "reason": code})
        for st, n in sorted(by_exec.items()):
            executions.add(n, {"status": st})

        counts = dict(s.exec(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
        for st in sorted(set(STATUSES) | set(counts)):
            outbox.add(int(counts.get(st, 0)), {"status": st})
        due.add(int(s.exec(select(func.count()).where(OutboxItem.status == "deferred",
                                                       col(OutboxItem.not_before) <= now)).one() or 0))
        pend = dict(s.exec(select(Approval.kind, func.count()).where(Approval.status == "pending")
                           .group_by(Approval.kind)).all())
        for kind in sorted({"send", "hot_lead"} | set(pend)):
            approvals.add(int(pend.get(kind, 0)), {"kind": kind})

        latency.histogram(LATENCY_BUCKETS, *_latency(s, store.dialect, OutboxItem.created_at, LATENCY_BUCKETS))
        call.histogram(CALL_BUCKETS, *_latency(s, store.dialect, OutboxItem.reserved_at, CALL_BUCKETS))

    for b in app.breakers.list():
        for st in sorted(set(BREAKER_STATES) | {b.state}):
            breaker.add(1 if b.state == st else 0, {"breaker": b.name, "state": st})
        failures.add(b.consecutive_failures or 0, {"breaker": b.name})

    ctl = app.control.state()
    k = app.control.kill()
    kill.add(1 if k.on else 0)
    maint.add(1 if ctl is not None and ctl.maintenance else 0)
    current = ctl.phase if ctl is not None else None
    for p in list(PHASES) + ([current] if current and current not in PHASES else []):
        phase.add(1 if p == current else 0, {"phase": p})

    return families + [decisions, reasons, executions, outbox, due, approvals, breaker, failures, kill, maint,
                       phase, latency, call]


def metrics_text(app: Measured, now: datetime | None = None) -> str:
    """The exposition text for ``app`` (Prometheus text format 0.0.4)."""
    return render(collect(app, now))
