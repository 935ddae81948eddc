"""Readiness: a 0-100 score from live checks, each with its evidence and time, and the go/no-go table that the
phase gates use. Nothing here is typed by hand: break a check and the score and the gate respond."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlmodel import func, select

from .clock import iso
from .config import PHASES
from .models import AuditEntry, CheckRun, DomainHealth, ShadowRun, VerifyRun

FRESH = timedelta(days=7)
VERIFY_FRESH = timedelta(hours=24)


@dataclass
class Check:
    name: str
    passed: bool
    points: int
    max: int
    evidence: str
    at: str | None = None


def _latest(s, kind: str):
    return s.exec(select(CheckRun).where(CheckRun.kind == kind).order_by(CheckRun.at.desc(), CheckRun.id.desc())
                  ).first()


def _recent_pass(s, kind: str, now: datetime, label: str) -> tuple[bool, str, str | None]:
    run = _latest(s, kind)
    if run is None:
        return False, f"no {label} has run (alpha {label.replace(' ', '-')})", None
    age = now - run.at
    if not run.ok:
        return False, f"the last {label} FAILED", iso(run.at)
    if age > FRESH:
        return False, f"the last {label} passed {age.days} days ago (must be within 7)", iso(run.at)
    return True, f"passed {age.total_seconds() / 3600:.1f} h ago", iso(run.at)


def evidence(app) -> dict[str, tuple[bool, str, str | None]]:
    """Every live check: name -> (passed, evidence, when)."""
    from . import audit
    from .approvals import load_roster
    from .control import gate_agreement, GateContext
    from .messaging import load_pack
    from .outbox import reconciliation_items

    now = app.clock()
    out: dict[str, tuple[bool, str, str | None]] = {}
    with app.store.read() as s:
        ctl = app.control.state(s)
        r = audit.verify(s)
        out["audit chain verifies"] = (r.ok, f"{r.rows} rows" if r.ok else r.problem, iso(now))
        cfg_phase = app.settings.production.rollout_phase.current
        eb = app.settings.production.email_behavior
        live = ctl.phase in ("assisted", "autonomous")
        flags_ok = (eb.actually_send and not eb.shadow_mode) if live else (not eb.actually_send and eb.shadow_mode)
        out["config matches phase"] = (
            cfg_phase == ctl.phase and flags_ok,
            f"control plane {ctl.phase}, production.json {cfg_phase}, actually_send={eb.actually_send}, "
            f"shadow_mode={eb.shadow_mode}", iso(ctl.phase_changed_at))
        v = s.exec(select(VerifyRun).order_by(VerifyRun.at.desc(), VerifyRun.id.desc())).first()
        if v is None:
            out["integrations verified"] = (False, "alpha verify has never run", None)
        else:
            fresh = now - v.at <= VERIFY_FRESH
            bad = [c["name"] for c in (v.results or []) if c["status"] == "fail"]
            out["integrations verified"] = (v.ok and fresh, ("green" if v.ok else "failed: " + ", ".join(bad)) + (
                "" if fresh else " (older than 24 h: run alpha verify)"), iso(v.at))
        out["canary passing"] = _recent_pass(s, "canary", now, "canary")
        out["unsubscribe tested"] = _recent_pass(s, "unsubscribe_test", now, "unsubscribe test")
        kill = s.exec(select(AuditEntry).where(AuditEntry.event == "control.kill_switch", AuditEntry.status == "on")
                      .order_by(AuditEntry.seq.desc())).first()
        if kill is None:
            out["kill switch tested"] = (False, "the kill switch has never been flipped (drill: alpha kill on/off)",
                                         None)
        else:
            from .clock import parse_iso

            age = now - parse_iso(kill.at)
            out["kill switch tested"] = (age <= FRESH, f"last flipped on by {kill.actor} {age.days} days ago"
                                         + ("" if age <= FRESH else " (must be within 7)"), kill.at)
        run = s.exec(select(ShadowRun).where(ShadowRun.finished_at.is_not(None))
                     .order_by(ShadowRun.id.desc())).first()
        out["shadow validation complete"] = (
            run is not None and run.contacts >= 20,
            f"shadow run {run.id}: {run.contacts} leads" if run else "no finished shadow run (alpha shadow run)",
            iso(run.finished_at) if run else None)
        domains = {a.split("@", 1)[1] for a in app.settings.production.sender.from_addresses}
        rows = {d.domain: d for d in s.exec(select(DomainHealth).where(DomainHealth.domain.in_(domains))).all()}
        low = [f"{d} {rows[d].score:g}" for d in sorted(domains) if d in rows and rows[d].score <= 70]
        out["domain health above 70"] = (not low, "below: " + ", ".join(low) if low else
                                         ", ".join(f"{d} {rows[d].score:g}" if d in rows else f"{d} (no data)"
                                                   for d in sorted(domains)), iso(now))
        recon = len(reconciliation_items(s, app.settings, now))
        out["no sends awaiting reconciliation"] = (recon == 0, f"{recon} awaiting", iso(now))
        violations = s.exec(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.event == "permission.violation", AuditEntry.at >= iso(now - timedelta(days=1)))).one()
        out["no permission violations (24 h)"] = (violations == 0, f"{violations} in the last 24 h", iso(now))
    bad = [b.name for b in app.breakers.list() if b.state != "CLOSED"]
    out["breakers closed"] = (not bad, "not closed: " + ", ".join(bad) if bad else "all closed", iso(now))
    try:
        load_roster(app.settings.config_dir)
        out["approver identified"] = (True, "primary and backup for every action type, with coverage hours",
                                      iso(now))
    except Exception as e:  # noqa: BLE001 - a roster that does not load is not ready
        out["approver identified"] = (False, str(e).splitlines()[-1].strip(" -"), iso(now))
    try:
        pack = load_pack(app.settings.config_dir)
        drafts = [t.id for t in pack.templates if t.status != "approved"]
        out["templates approved"] = (not drafts, "all approved" if not drafts else "not approved: " + ", ".join(
            drafts), iso(now))
    except Exception as e:  # noqa: BLE001
        out["templates approved"] = (False, str(e).splitlines()[-1].strip(" -"), iso(now))
    g = gate_agreement(GateContext(app.settings, app.store, now, app.control.kill()))
    out["AI vs human agreement"] = (g.passed, g.detail, iso(now))
    return out


CATEGORIES = {
    "core architecture": (15, ["audit chain verifies", "no permission violations (24 h)"]),
    "configuration": (15, ["config matches phase"]),
    "API connections": (15, ["integrations verified"]),
    "security and guardrails": (20, ["canary passing", "unsubscribe tested", "kill switch tested"]),
    "human-in-the-loop": (20, ["approver identified", "templates approved", "AI vs human agreement"]),
    "operational readiness": (15, ["domain health above 70", "breakers closed", "no sends awaiting reconciliation",
                                   "shadow validation complete"]),
}

# What each phase requires before it can be entered from below (the go/no-go table).
GO_NO_GO = {
    "parallel": ["shadow validation complete", "audit chain verifies"],
    "assisted": ["shadow validation complete", "config matches phase", "AI vs human agreement",
                 "approver identified", "unsubscribe tested", "kill switch tested", "templates approved",
                 "domain health above 70"],
    "autonomous": ["config matches phase", "AI vs human agreement", "approver identified", "unsubscribe tested",
                   "kill switch tested", "templates approved", "domain health above 70", "canary passing",
                   "integrations verified", "breakers closed", "no sends awaiting reconciliation"],
}


def readiness(app) -> dict:
    ev = evidence(app)
    cats = []
    total = 0
    for name, (weight, checks) in CATEGORIES.items():
        per = weight / len(checks)
        items = []
        for c in checks:
            ok, why, at = ev[c]
            items.append(Check(c, ok, round(per) if ok else 0, round(per), why, at))
        score = min(weight, sum(i.points for i in items))
        total += score
        cats.append({"name": name, "score": score, "max": weight, "checks": [asdict(i) for i in items]})
    phase = app.control.state().phase
    i = PHASES.index(phase)
    nxt = PHASES[i + 1] if i + 1 < len(PHASES) else None
    table = []
    for crit in sorted({c for cs in GO_NO_GO.values() for c in cs}, key=lambda c: list(ev).index(c)):
        ok, why, at = ev[crit]
        table.append({"criterion": crit, "required": bool(nxt) and crit in GO_NO_GO.get(nxt, []),
                      "status": "pass" if ok else "fail", "evidence": why, "at": at})
    gate = app.control.gate_for(nxt) if nxt else []
    allowed = bool(nxt) and all(c.passed for c in gate)
    return {"score": min(100, total), "phase": phase, "categories": cats, "go_no_go": table, "next_phase": nxt,
            "next_phase_allowed": allowed,
            "blocking": [f"{c.name}: {c.detail}" for c in gate if not c.passed]}


# Criteria that already have a dedicated gate in engine/control.py (their checks differ in detail).
_COVERED = {"AI vs human agreement", "config matches phase", "audit chain verifies", "breakers closed",
            "no sends awaiting reconciliation"}


def install_gates() -> None:
    """Register each go/no-go criterion as a gate of the phases that require it."""
    from .control import GateCheck, register_gate

    def make(criterion: str):
        def gate(ctx) -> GateCheck:
            app = getattr(ctx, "app", None)
            if app is None:
                return GateCheck(criterion, False, "readiness evidence unavailable (no engine)")
            if getattr(ctx, "_evidence", None) is None:
                ctx._evidence = evidence(app)
            ok, why, _ = ctx._evidence[criterion]
            return GateCheck(criterion, ok, why)

        gate.__name__ = "gate_" + criterion.replace(" ", "_")
        return gate

    gates: dict[str, object] = {}
    for phase, criteria in GO_NO_GO.items():
        for c in criteria:
            if c in _COVERED:
                continue
            register_gate(phase)(gates.setdefault(c, make(c)))
