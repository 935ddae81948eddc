"""Control plane: kill switch, maintenance mode, rollout phase and warm-up phase, in the database.

Every process reads the same rows, so a flip from the CLI or the console stops every worker at its next
gateway decision. ``EMERGENCY_STOP=true`` in the environment or in ``.env`` forces the kill switch on
and nothing can turn it off while it is set; ``.env`` is re-read whenever it changes on disk.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping, Sequence

from dotenv import dotenv_values
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from engine.adapters import audit
from engine.core.clock import Clock, iso
from engine.core.config import PHASES, Settings
from engine.adapters.db import Store, control_row
from engine.core.errors import InvalidRequest, KillSwitchLocked, PhaseChangeRefused
from engine.adapters.models import BreakerState, ControlState, OutboxItem, Suppression
from engine.core.reasons import Code

from engine.core.envcheck import truthy as _truthy  # the one reading of a boolean setting


class EnvKillSwitch:
    """EMERGENCY_STOP from the process environment or the .env file (re-read when it changes)."""

    def __init__(self, env_file: str | Path | None = None):
        self.path = Path(env_file or os.environ.get("ALPHA_ENV_FILE") or Path.cwd() / ".env")
        self._stamp: tuple | None = None
        self._file_value = False

    def _read_file(self) -> bool:
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._file_value = None, False
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                self._file_value = _truthy(dotenv_values(self.path).get("EMERGENCY_STOP"))
            except Exception:  # an unreadable .env is not a reason to send: keep the last value
                pass
            self._stamp = stamp
        return self._file_value

    def state(self) -> tuple[bool, str | None]:
        if _truthy(os.environ.get("EMERGENCY_STOP")):
            return True, "EMERGENCY_STOP=true in the environment"
        if self._read_file():
            return True, f"EMERGENCY_STOP=true in {self.path}"
        return False, None


@dataclass(frozen=True)
class KillState:
    on: bool
    source: str | None  # "env" | "database" | None
    reason: str | None


def kill_state(ctl: ControlState, env: EnvKillSwitch) -> KillState:
    forced, why = env.state()
    if forced:
        return KillState(True, "env", why)
    if ctl.kill_switch:
        return KillState(True, "database", ctl.kill_reason)
    return KillState(False, None, None)


def live_sending_allowed(phase: str, settings: Settings) -> bool:
    """Nothing leaves unless the phase is assisted/autonomous AND the email flags agree (fail-closed)."""
    eb = settings.production.email_behavior
    return phase in ("assisted", "autonomous") and eb.actually_send and not eb.shadow_mode


# ------------------------------------------------------------------------------------------ phase gates

@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


# The readiness evidence (engine/services/readiness.py): criterion -> (passed, evidence, when).
Evidence = dict[str, tuple[bool, str, str | None]]


@dataclass
class GateContext:
    """What one evaluation of a gate sees. ``source`` gathers the readiness evidence (the live checks) that the
    go/no-go criterion gates read; ``evidence()`` gathers it at most once per evaluation."""
    settings: Settings
    store: Store
    now: datetime
    kill: KillState
    source: Callable[[], Evidence] | None = None
    _evidence: Evidence | None = None
    preview: bool = False  # showing the gate (a page, `phase show`), not deciding a phase change

    def evidence(self) -> Evidence | None:
        if self._evidence is None and self.source is not None:
            self._evidence = self.source()
        return self._evidence


Gate = Callable[[GateContext], GateCheck]
# phase -> the checks that must pass before it can be entered from below. The table is a plain value that the
# control plane is given (engine/services/readiness.py builds the engine's, engine/app.py passes it): nothing is
# registered anywhere when a module is imported.
Gates = Mapping[str, Sequence[Gate]]


def gate_kill_switch_off(ctx: GateContext) -> GateCheck:
    return GateCheck("kill switch off", not ctx.kill.on,
                     "kill switch is off" if not ctx.kill.on else f"kill switch is on ({ctx.kill.reason})")


def gate_no_reconciliation(ctx: GateContext) -> GateCheck:
    from engine.queries.outbox import reconciliation_items

    with ctx.store.read() as s:
        n = len(reconciliation_items(s, ctx.settings, ctx.now))
    return GateCheck("no sends awaiting reconciliation", n == 0, f"{n} sends await reconciliation")


def gate_config_allows_sending(ctx: GateContext) -> GateCheck:
    eb = ctx.settings.production.email_behavior
    ok = eb.actually_send and not eb.shadow_mode
    return GateCheck("config matches phase", ok,
                     f"email_behavior.actually_send={str(eb.actually_send).lower()}, "
                     f"shadow_mode={str(eb.shadow_mode).lower()} (live phases need true/false)")


def gate_agreement(ctx: GateContext) -> GateCheck:
    """AI-vs-human blind agreement above the threshold over enough labels (production.json: comparison)."""
    from engine.services.blind_review import analyze, latest_set

    if latest_set(ctx) is None:
        return GateCheck("AI vs human agreement", False,
                         "no blind review yet: `alpha compare generate 50`, have an AE label it, then analyze")
    r = analyze(ctx)
    ag = "-" if r["agreement"] is None else f"{r['agreement']:.1%}"
    return GateCheck("AI vs human agreement", bool(r["passed"]),
                     f"set {r['set_id']}: {ag} over {r['n']} labels" + ("" if r["passed"] else
                                                                         "; " + "; ".join(r["reasons"])))


def gate_breakers_closed(ctx: GateContext) -> GateCheck:
    with ctx.store.read() as s:
        bad = [b.name for b in s.exec(select(BreakerState)).all() if b.state != "CLOSED"]
    return GateCheck("circuit breakers closed", not bad, "all closed" if not bad else f"not closed: {', '.join(bad)}")


def evaluate_gate(phase: str, ctx: GateContext, gates: Gates) -> list[GateCheck]:
    """Every check of ``phase`` in ``gates``, in order; a check that raises has not passed."""
    out = []
    for gate in gates.get(phase, ()):
        try:
            out.append(gate(ctx))
        except Exception as e:  # a gate that cannot decide has not passed
            out.append(GateCheck(getattr(gate, "__name__", "gate"), False, f"check failed to run: {e}"))
    return out


# ------------------------------------------------------------------------------------------ service

@dataclass
class ControlPlane:
    store: Store
    settings: Settings
    clock: Clock
    env: EnvKillSwitch = field(default_factory=EnvKillSwitch)
    on_change: Callable[[dict], None] | None = None
    # the go/no-go gate of each phase (required: a control plane without gates would let every phase change pass)
    gates: Gates = field(kw_only=True)
    # the readiness evidence the criterion gates read (engine/services/readiness.py: evidence)
    evidence: Callable[[], Evidence] | None = field(default=None, kw_only=True)

    def _notify(self, kind: str, title: str, text: str, **fields) -> None:
        if self.on_change is not None:
            try:
                self.on_change({"kind": kind, "title": title, "text": text, "fields": fields})
            except Exception:  # noqa: BLE001 - reporting never blocks a control change
                pass

    def state(self, s: Session | None = None) -> ControlState:
        if s is not None:
            return control_row(s)
        with self.store.read() as rs:
            return control_row(rs)

    def kill(self, s: Session | None = None) -> KillState:
        return kill_state(self.state(s), self.env)

    # -- kill switch
    def set_kill(self, on: bool, reason: str, actor: str) -> ControlState:
        _require(reason, actor)
        if not on:
            forced, why = self.env.state()
            if forced:
                raise KillSwitchLocked(f"the kill switch cannot be turned off while {why}; unset it first")
        now = self.clock()
        with self.store.write() as s:
            ctl = control_row(s)
            before = {"kill_switch": ctl.kill_switch, "reason": ctl.kill_reason}
            ctl.kill_switch, ctl.kill_reason, ctl.kill_actor, ctl.kill_changed_at = on, reason, actor, now
            s.add(ctl)
            audit.append(s, event="control.kill_switch", actor=actor, now=now, status="on" if on else "off",
                         data={"reason": reason, "before": before, "after": {"kill_switch": on, "reason": reason}})
        self._notify("kill_switch", f"Kill switch {'ON' if on else 'off'}", reason, actor=actor)
        return ctl

    # -- maintenance
    def set_maintenance(self, on: bool, reason: str, actor: str) -> ControlState:
        _require(reason, actor)
        now = self.clock()
        with self.store.write() as s:
            ctl = control_row(s)
            before = {"maintenance": ctl.maintenance, "reason": ctl.maintenance_reason}
            ctl.maintenance, ctl.maintenance_reason, ctl.maintenance_actor = on, reason, actor
            ctl.maintenance_changed_at = now
            s.add(ctl)
            audit.append(s, event="control.maintenance", actor=actor, now=now, status="on" if on else "off",
                         data={"reason": reason, "before": before, "after": {"maintenance": on, "reason": reason}})
            return ctl

    # -- rollout phase
    def gate_for(self, phase: str, preview: bool = True) -> list[GateCheck]:
        """The gate's checks as they stand (``preview``: cheap evidence where a full check is expensive; a phase
        change itself always evaluates with preview=False)."""
        ctx = GateContext(self.settings, self.store, self.clock(), self.kill(), source=self.evidence, preview=preview)
        return evaluate_gate(phase, ctx, self.gates)

    def set_phase(self, target: str, reason: str, actor: str, force: bool = False) -> dict:
        _require(reason, actor)
        if target not in PHASES:
            raise PhaseChangeRefused(f"unknown phase {target!r}; allowed: {', '.join(PHASES)}")
        current = self.state().phase
        cur_i, tgt_i = PHASES.index(current), PHASES.index(target)
        if tgt_i == cur_i:
            raise PhaseChangeRefused(f"the phase is already {current}")
        checks: list[GateCheck] = []
        if tgt_i > cur_i:
            if tgt_i != cur_i + 1:
                raise PhaseChangeRefused(
                    f"up goes one step at a time: from {current} the next phase is {PHASES[cur_i + 1]}, not {target}")
            checks = self.gate_for(target, preview=False)
            failed = [c for c in checks if not c.passed]
            if failed and not force:
                raise PhaseChangeRefused(
                    f"the go/no-go gate for {target} fails: "
                    + "; ".join(f"{c.name}: {c.detail}" for c in failed)
                    + " (fix these, or use --force with a reason to record a break-glass override)")
        now = self.clock()
        direction = "up" if tgt_i > cur_i else "down"
        with self.store.write() as s:
            ctl = control_row(s)
            if ctl.phase != current:
                raise PhaseChangeRefused(f"the phase changed to {ctl.phase} meanwhile; try again")
            ctl.phase, ctl.phase_reason, ctl.phase_actor, ctl.phase_changed_at = target, reason, actor, now
            ctl.phase_seeded = True
            s.add(ctl)
            forced = bool(force and any(not c.passed for c in checks))
            queue = self._phase_queue(s, target, direction, now)
            audit.append(s, event="control.phase", actor=actor, now=now, status=target,
                         data={"reason": reason, "before": {"phase": current}, "after": {"phase": target},
                               "direction": direction, "forced": forced,
                               "gate": [c.__dict__ for c in checks], "queue": queue})
        held, released = queue["held"], queue["released"]
        self._notify("phase_changed", f"Rollout phase {current} -> {target}" + (" (FORCED)" if forced else ""),
                     reason + (f" ({held} queued sends held)" if held else "")
                     + (f" ({released} held sends released)" if released else ""), actor=actor)
        return {"before": current, "after": target, "forced": forced, "gate": [c.__dict__ for c in checks],
                "queue": {"held": held, "released": released}}

    def _phase_queue(self, s: Session, target: str, direction: str, now: datetime) -> dict:
        """What a phase change does to the queue, inside its transaction.

        Into a phase where nothing may leave, queued sends (deferred, pending approval) are held: the gateway
        defers them with PHASE_HELD when they come due, never shadows them, so they can still go later. Up into a
        phase that sends, the held rows are released at once (not_before = now) instead of waiting out their
        hold."""
        held, released = 0, []
        if live_sending_allowed(target, self.settings):
            if direction == "up":
                rows = s.exec(select(OutboxItem.id, OutboxItem.reasons).where(OutboxItem.status == "deferred")).all()
                released = sorted(i for i, reasons in rows
                                  if i is not None and _has_code(reasons, Code.PHASE_HELD.value))
                for k in range(0, len(released), 500):
                    s.exec(update(OutboxItem).where(col(OutboxItem.id).in_(released[k:k + 500]),
                                                    col(OutboxItem.status) == "deferred")
                           .values(not_before=now, updated_at=now))
        else:
            held = s.exec(select(func.count()).select_from(OutboxItem).where(
                col(OutboxItem.status).in_(("deferred", "pending_approval")))).one()
        return {"held": held, "released": len(released), "released_ids": released[:1000]}

    def seed_phase_from_config(self, actor: str = "alpha init", force: bool = False,
                               reason: str | None = None) -> dict | None:
        """At init, the control plane takes rollout_phase.current from config unless a human set it already, but
        only through the go/no-go gates: the gate of every phase above shadow up to the configured one must pass,
        in order, as `alpha phase set` would require. When one fails the phase is seeded as ``shadow`` and the
        failing gate is recorded (``force`` with a ``reason`` seeds the configured phase anyway, recorded as a
        break-glass override). None when the phase was seeded before; otherwise what was seeded and why."""
        if force and not (reason or "").strip():
            raise InvalidRequest("a reason is required to force the seeded phase (--reason)")
        if self.state().phase_seeded:
            return None
        configured = self.settings.production.rollout_phase.current
        gate: dict[str, list[dict]] = {}
        failed: dict | None = None
        for phase in PHASES[1:PHASES.index(configured) + 1]:
            checks = self.gate_for(phase, preview=False)
            gate[phase] = [c.__dict__ for c in checks]
            bad = [c for c in checks if not c.passed]
            if bad:
                failed = {"phase": phase, "checks": [c.__dict__ for c in bad]}
                break
        target = configured if failed is None or force else "shadow"
        forced = bool(force and failed)
        now = self.clock()
        with self.store.write() as s:
            ctl = control_row(s)
            if ctl.phase_seeded:
                return None
            before = ctl.phase
            ctl.phase, ctl.phase_seeded, ctl.phase_actor = target, True, actor
            ctl.phase_reason = ("seeded from config/production.json" + (f" (forced: {reason})" if forced else "")
                                if failed is None or target == configured else
                                f"seeded as shadow: config/production.json asks for {configured} but the go/no-go "
                                f"gate for {failed['phase']} fails")[:2000]
            ctl.phase_changed_at = now
            ctl.warmup_phase_started_at = ctl.warmup_phase_started_at or now
            s.add(ctl)
            audit.append(s, event="control.phase", actor=actor, now=now, status=target,
                         data={"reason": "seeded from config" + (f" (forced: {reason})" if forced else ""),
                               "before": {"phase": before}, "after": {"phase": target}, "configured": configured,
                               "forced": forced, "failed": failed, "gate": gate})
        return {"phase": target, "configured": configured, "forced": forced, "failed": failed, "gate": gate}

    # -- warm-up
    def warmup_status(self) -> dict:
        now = self.clock()
        with self.store.read() as s:
            ctl = control_row(s)
            started = ctl.warmup_phase_started_at or now
            plan = self.settings.warmup
            phase = min(ctl.warmup_phase, len(plan.phases))
            sends = s.exec(select(func.count()).select_from(OutboxItem).where(
                col(OutboxItem.status) == "sent", col(OutboxItem.reserved_at) >= started)).one()
            bounces = s.exec(select(func.count()).select_from(Suppression).where(
                col(Suppression.reason) == "bounced", col(Suppression.created_at) >= started)).one()
            complaints = s.exec(select(func.count()).select_from(Suppression).where(
                col(Suppression.reason) == "complained", col(Suppression.created_at) >= started)).one()
        crit = plan.phases[phase - 1].criteria
        days = (now - started).total_seconds() / 86400
        br = bounces / sends if sends else 0.0
        cr = complaints / sends if sends else 0.0
        checks = [
            GateCheck("days in phase", days >= crit.min_days, f"{days:.1f} of {crit.min_days} days"),
            GateCheck("sends in phase", sends >= crit.min_sends, f"{sends} of {crit.min_sends} sends"),
            GateCheck("bounce rate", br <= crit.max_bounce_rate, f"{br:.2%} (max {crit.max_bounce_rate:.2%})"),
            GateCheck("complaint rate", cr <= crit.max_complaint_rate,
                      f"{cr:.3%} (max {crit.max_complaint_rate:.3%})"),
        ]
        cap, binding = self.settings.effective_daily_cap(phase)
        return {"enabled": plan.enabled, "phase": phase, "phases": len(plan.phases),
                "daily_cap": plan.cap_for(phase), "effective_daily_cap": cap, "binding": binding,
                "started_at": iso(started), "last_phase": phase >= len(plan.phases),
                "criteria": [c.__dict__ for c in checks], "can_advance": all(c.passed for c in checks)}

    def set_warmup_phase(self, target: int, reason: str, actor: str, force: bool = False) -> dict:
        _require(reason, actor)
        st = self.warmup_status()
        n = st["phases"]
        if not 1 <= target <= n:
            raise PhaseChangeRefused(f"warm-up phase must be 1..{n}")
        if target > st["phase"]:
            if target != st["phase"] + 1:
                raise PhaseChangeRefused("warm-up advances one phase at a time")
            failed = [c for c in st["criteria"] if not c["passed"]]
            if failed and not force:
                raise PhaseChangeRefused("warm-up criteria not met: " + "; ".join(
                    f"{c['name']}: {c['detail']}" for c in failed) + " (or --force with a reason)")
        now = self.clock()
        with self.store.write() as s:
            ctl = control_row(s)
            before = ctl.warmup_phase
            ctl.warmup_phase, ctl.warmup_phase_started_at = target, now
            s.add(ctl)
            audit.append(s, event="control.warmup", actor=actor, now=now, status=str(target),
                         data={"reason": reason, "before": {"warmup_phase": before},
                               "after": {"warmup_phase": target}, "forced": force})
        return self.warmup_status()


def _has_code(reasons, code: str) -> bool:
    """Whether a stored reasons list (JSON: [{"code", "detail", ...}]) carries ``code``."""
    if isinstance(reasons, str):  # a driver that hands JSON back as text
        import json

        try:
            reasons = json.loads(reasons)
        except ValueError:
            return False
    return any(isinstance(r, dict) and r.get("code") == code for r in (reasons or []))


def _require(reason: str, actor: str) -> None:
    if not (reason or "").strip():
        raise InvalidRequest("a reason is required (--reason)")
    if not (actor or "").strip():
        raise InvalidRequest("an actor is required (--actor)")

