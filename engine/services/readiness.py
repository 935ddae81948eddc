"""Readiness: a 0-100 score from live checks, each with its evidence and time, and the go/no-go table that the
phase gates use. Nothing here is typed by hand: break a check and the score and the gate respond."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import col, func, select

from engine.adapters import audit
from engine.core.clock import as_utc, duration_text, iso
from engine.core.config import PHASES
from engine.adapters.breakers import Breakers
from engine.adapters.db import Store
from engine.adapters.ports import Configured
from engine.adapters.models import GENESIS_HASH, AuditEntry, AuditHead, CheckRun, DomainHealth, ShadowRun, VerifyRun
from engine.services.control import (ControlPlane, Evidence, Gate, GateCheck, GateContext, gate_agreement,
                                     gate_breakers_closed, gate_config_allows_sending, gate_kill_switch_off,
                                     gate_no_reconciliation)

FRESH = timedelta(days=7)
VERIFY_FRESH = timedelta(hours=24)
# The audit chain: walked in full at most this often by readiness (checkpointed in check_run, kind audit_chain);
# in between, only the rows appended after the checkpoint are walked, linked to the checkpoint's hash.
AUDIT_FULL_FRESH = timedelta(hours=24)
AUDIT_KIND = "audit_chain"
CHECKPOINT_EVERY = 2000  # move the checkpoint forward once this many new rows were walked past it
CLOCK_SKEW = timedelta(minutes=5)  # a checkpoint from further in the future than this is not trusted


class Engine(Configured, Protocol):
    """What readiness reads of the engine (engine.app.App): the stores and settings, the control plane and the
    circuit breakers."""

    @property
    def control(self) -> ControlPlane: ...

    @property
    def breakers(self) -> Breakers: ...


@dataclass
class Check:
    name: str
    passed: bool
    points: int
    max: int
    evidence: str
    at: str | None = None


def _latest(s, kind: str):
    return s.exec(select(CheckRun).where(CheckRun.kind == kind)
                  .order_by(col(CheckRun.at).desc(), col(CheckRun.id).desc())).first()


def _walk_tail(s, seq: int, row_hash: str) -> tuple[bool, int, int, str]:
    """Walk the rows after row ``seq`` (whose hash must still be ``row_hash``) up to the head, with audit.verify's
    checks: (ok, rows walked, last seq, last hash). Not ok when anything does not link up (audit.verify then says
    what). The head is read first, so rows appended meanwhile are left for the next call."""
    head = s.get(AuditHead, 1)
    if head is None or head.last_seq < seq:
        return False, 0, seq, row_hash
    if seq:
        anchor = s.exec(select(AuditEntry).where(AuditEntry.seq == seq)).first()
        if anchor is None or anchor.row_hash != row_hash or audit.row_digest(anchor) != row_hash:
            return False, 0, seq, row_hash
    elif row_hash != GENESIS_HASH:
        return False, 0, seq, row_hash
    walked, prev, last = 0, row_hash, seq
    while last < head.last_seq:
        rows = s.exec(select(AuditEntry).where(AuditEntry.seq > last, AuditEntry.seq <= head.last_seq)
                      .order_by(col(AuditEntry.seq)).limit(5000)).all()
        if not rows:
            break
        for e in rows:
            if e.seq != last + 1 or e.prev_hash != prev or audit.row_digest(e) != e.row_hash:
                return False, walked, last, prev
            walked, prev, last = walked + 1, e.row_hash, e.seq
    return last == head.last_seq and prev == head.last_hash, walked, last, prev


def audit_chain_evidence(store: Store, s, now: datetime, full: bool = False) -> tuple[bool, str, str | None]:
    """(passed, evidence, when) for "audit chain verifies" without walking the whole chain on every call.

    The whole chain is walked (audit.verify) when no passing full walk younger than AUDIT_FULL_FRESH is
    recorded, when ``full`` is asked for, or when the rows after the checkpoint do not link up; the result is
    recorded as a check_run (kind audit_chain) with the last row's seq and hash. Otherwise only the rows after
    that checkpoint are walked, starting from its hash, so appended rows are verified now and a change to the
    checkpoint row itself is caught; an edit further back is caught by the next full walk (within
    AUDIT_FULL_FRESH, by ``alpha audit verify`` at any time, and by every phase change, which walks in full).
    ``when`` is the time of the last full walk: the evidence is as old as that."""
    from engine.core.clock import parse_iso

    cp = None if full else _latest(s, AUDIT_KIND)
    d = (cp.results or [{}])[0] if cp is not None and cp.ok else {}
    full_at = parse_iso(d["full_at"]) if d.get("full_at") else None
    if full_at is not None and -CLOCK_SKEW <= now - full_at <= AUDIT_FULL_FRESH and "head_seq" in d:
        ok, walked, last, last_hash = _walk_tail(s, d["head_seq"], d["head_hash"])
        if ok:
            rows = d["rows"] + walked
            if walked >= CHECKPOINT_EVERY:
                _record_chain(store, now, True, {"rows": rows, "head_seq": last, "head_hash": last_hash,
                                               "full_at": d["full_at"]})
            since = ("none added since" if not walked else
                     f"the {walked} row{'' if walked == 1 else 's'} added since verified now")
            return True, f"{rows} rows, walked in full {_ago(now - full_at)} ago; {since}", d["full_at"]
    r = audit.verify(s)
    _record_chain(store, now, r.ok, {**r.to_dict(), "full_at": iso(now)})
    return r.ok, (f"{r.rows} rows, walked in full now" if r.ok else r.problem or "the chain does not verify"), iso(now)


def _record_chain(store: Store, now: datetime, ok: bool, result: dict) -> None:
    try:
        with store.write_plain() as w:
            w.add(CheckRun(kind=AUDIT_KIND, at=now, ok=ok, results=[result]))
    except Exception:  # noqa: BLE001 - a checkpoint that cannot be saved only costs a full walk next time
        pass


def verify_audit_chain(app: Configured) -> tuple[bool, str, str | None]:
    """Walk the whole audit chain now and record the result as readiness evidence."""
    with app.store.read() as s:
        return audit_chain_evidence(app.store, s, app.clock(), full=True)


_ago = duration_text


def _latest_verify(s):
    return s.exec(select(VerifyRun).order_by(VerifyRun.at.desc(), VerifyRun.id.desc())).first()


def last_verify_run(app: Configured) -> dict | None:
    """The newest stored `alpha verify` result as run_verify returns it ({ok, at, checks}), or None."""
    with app.store.read() as s:
        v = _latest_verify(s)
    return None if v is None else {"ok": v.ok, "at": iso(v.at), "checks": list(v.results or [])}


def _failed_probes(run) -> str:
    bad = [str(r.get("name")) for r in (run.results or []) if isinstance(r, dict) and not r.get("passed", True)]
    return ", ".join(bad) or "see its results"


def _ahead(at: datetime | None, now: datetime) -> str | None:
    """Why evidence recorded at ``at`` proves nothing now when it is dated in the future (a host whose clock runs
    ahead, a row written by hand): a negative age would otherwise pass every "recent enough" test."""
    if at is None or as_utc(at) - now <= CLOCK_SKEW:
        return None
    return (f"recorded {_ago(as_utc(at) - now)} in the future (by a clock ahead of this one): not evidence; fix "
            "the clock (NTP) and run it again")


def _recent_pass(s, kind: str, now: datetime, label: str) -> tuple[bool, str, str | None]:
    run = _latest(s, kind)
    cmd = f"alpha {label.replace(' ', '-')}"
    if run is None:
        return False, f"no {label} has run ({cmd})", None
    ahead = _ahead(run.at, now)
    if ahead:
        return False, f"the last {label} was {ahead} ({cmd})", iso(run.at)
    age = now - as_utc(run.at)
    if not run.ok:
        return False, f"the last {label} FAILED: {_failed_probes(run)} (fix it and run {cmd} again)", iso(run.at)
    if age > FRESH:
        return False, f"the last {label} passed {age.days} days ago (must be within 7)", iso(run.at)
    return True, f"passed {age.total_seconds() / 3600:.1f} h ago", iso(run.at)


def _domain_health(s, domains: set[str], now: datetime) -> tuple[bool, str, str | None]:
    """"Domain health above 70" for every sending domain, on the provider's current score: no data, a score
    recorded more than FRESH ago (the playbook asks for the current reputation) or dated in the future is no
    evidence; "above" is strictly greater."""
    rows = {d.domain: d for d in s.exec(select(DomainHealth).where(col(DomainHealth.domain).in_(domains))).all()}
    fix = "record the provider's reputation score with `alpha domains set DOMAIN SCORE --reason ...`"
    problems: list[str] = []
    missing = [d for d in sorted(domains) if d not in rows]
    if missing:  # no data is not a healthy domain
        problems.append(f"no domain health data for {', '.join(missing)}")
    for d in sorted(set(domains) & set(rows)):
        at = rows[d].updated_at
        ahead = _ahead(at, now)
        if at is None:
            problems.append(f"{d} {rows[d].score:g} has no recorded time")
        elif ahead:
            problems.append(f"{d} {rows[d].score:g} was {ahead}")
        elif now - as_utc(at) > FRESH:
            problems.append(f"{d} {rows[d].score:g} was recorded {_ago(now - as_utc(at))} ago (must be within 7 "
                            "days)")
    low = [f"{d} {rows[d].score:g}" for d in sorted(domains) if d in rows and rows[d].score <= 70]
    when = max((t for t in (iso(rows[d].updated_at) for d in rows) if t), default=None)
    if problems:
        return False, "; ".join(problems) + f": {fix}" + ("; below: " + ", ".join(low) if low else ""), when
    return (not low, "below: " + ", ".join(low) if low else ", ".join(f"{d} {rows[d].score:g}" for d in
                                                                      sorted(domains)), when)


def evidence(app: Engine) -> Evidence:
    """Every live check: name -> (passed, evidence, when)."""
    from engine.services.approvals import load_roster
    from engine.rules.messaging import load_pack
    from engine.queries.outbox import reconciliation_items

    now = app.clock()
    out: dict[str, tuple[bool, str, str | None]] = {}
    with app.store.read() as s:
        ctl = app.control.state(s)
        out["audit chain verifies"] = audit_chain_evidence(app.store, s, now)
        cfg_phase = app.settings.production.rollout_phase.current
        eb = app.settings.production.email_behavior
        live = ctl.phase in ("assisted", "autonomous")
        flags_ok = (eb.actually_send and not eb.shadow_mode) if live else (not eb.actually_send and eb.shadow_mode)
        out["config matches phase"] = (
            cfg_phase == ctl.phase and flags_ok,
            f"control plane {ctl.phase}, production.json {cfg_phase}, actually_send={eb.actually_send}, "
            f"shadow_mode={eb.shadow_mode}", iso(ctl.phase_changed_at))
        v = _latest_verify(s)
        if v is None:
            out["integrations verified"] = (False, "alpha verify has never run", None)
        else:
            from engine.services.verify import assess

            ahead = _ahead(v.at, now)
            fresh = not ahead and now - as_utc(v.at) <= VERIFY_FRESH
            verdict = assess(list(v.results or []))  # live-ready, not merely "nothing failed"
            live = verdict["ready_for_live"]
            out["integrations verified"] = (live and fresh, (
                "ready for live phases: every integration configured, real and passing" if live else
                verdict["summary"]) + ("" if fresh else f" (the last alpha verify was {ahead})" if ahead else
                                       " (older than 24 h: run alpha verify)"), iso(v.at))
        out["canary passing"] = _recent_pass(s, "canary", now, "canary")
        last_canary = _latest(s, "canary")
        canary_ahead = None if last_canary is None else _ahead(last_canary.at, now)
        out["no failed canary"] = (
            (True, "no canary has run yet", None) if last_canary is None else
            (False, f"the last canary was {canary_ahead} (alpha canary)", iso(last_canary.at)) if canary_ahead else
            (True, "the last canary passed", iso(last_canary.at)) if last_canary.ok else
            (False, f"the last canary FAILED: {_failed_probes(last_canary)} (fix it and run alpha canary again)",
             iso(last_canary.at)))
        out["unsubscribe tested"] = _recent_pass(s, "unsubscribe_test", now, "unsubscribe test")
        kill = s.exec(select(AuditEntry).where(AuditEntry.event == "control.kill_switch", AuditEntry.status == "on")
                      .order_by(col(AuditEntry.seq).desc())).first()
        if kill is None:
            out["kill switch tested"] = (False, "the kill switch has never been flipped (drill: alpha kill on/off)",
                                         None)
        else:
            from engine.core.clock import parse_iso

            flipped = parse_iso(kill.at)
            age = now - flipped
            ahead = _ahead(flipped, now)
            out["kill switch tested"] = (
                (False, f"last flipped on by {kill.actor}, {ahead}", kill.at) if ahead else
                (age <= FRESH, f"last flipped on by {kill.actor} {age.days} days ago"
                 + ("" if age <= FRESH else " (must be within 7)"), kill.at))
        run = s.exec(select(ShadowRun).where(col(ShadowRun.finished_at).is_not(None))
                     .order_by(col(ShadowRun.id).desc())).first()
        out["shadow validation complete"] = (
            run is not None and run.contacts >= 20,
            f"shadow run {run.id}: {run.contacts} leads" if run else "no finished shadow run (alpha shadow run)",
            iso(run.finished_at) if run else None)
        domains = {a.split("@", 1)[1] for a in app.settings.production.sender.from_addresses}
        out["domain health above 70"] = _domain_health(s, domains, now)
        recon = len(reconciliation_items(s, app.settings, now))
        out["no sends awaiting reconciliation"] = (recon == 0, f"{recon} awaiting", iso(now))
        violations = s.exec(select(func.count()).select_from(AuditEntry).where(
            col(AuditEntry.event) == "permission.violation", col(AuditEntry.at) >= iso(now - timedelta(days=1)))).one()
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

# What each phase requires before it can be entered from below (the go/no-go table). Parallel sends nothing
# (AI drafts beside the humans), so it needs no live integration, but a canary that failed blocks any step up.
# Assisted is the first phase that sends for real: the integrations must be real and verified (a sandbox GHL
# or an unconfigured Slack is not ready) and the latest canary must have passed.
GO_NO_GO = {
    "parallel": ["shadow validation complete", "audit chain verifies", "no failed canary"],
    "assisted": ["shadow validation complete", "config matches phase", "AI vs human agreement",
                 "approver identified", "unsubscribe tested", "kill switch tested", "templates approved",
                 "domain health above 70", "canary passing", "integrations verified"],
    "autonomous": ["config matches phase", "AI vs human agreement", "approver identified", "unsubscribe tested",
                   "kill switch tested", "templates approved", "domain health above 70", "canary passing",
                   "integrations verified", "breakers closed", "no sends awaiting reconciliation"],
}


def readiness(app: Engine) -> dict:
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
        table.append({"criterion": crit, "required": nxt is not None and crit in GO_NO_GO.get(nxt, []),
                      "status": "pass" if ok else "fail", "evidence": why, "at": at})
    gate = _gate_for(app, nxt, ev) if nxt else []
    allowed = bool(nxt) and all(c.passed for c in gate)
    return {"score": min(100, total), "phase": phase, "categories": cats, "go_no_go": table, "next_phase": nxt,
            "next_phase_allowed": allowed,
            "blocking": [f"{c.name}: {c.detail}" for c in gate if not c.passed]}


def _gate_for(app: Engine, phase: str, ev: Evidence) -> list[GateCheck]:
    """What app.control.gate_for(phase) answers, reusing the evidence just gathered: the readiness gates read it
    instead of gathering it again, and the audit chain gate takes its (checkpointed) verdict instead of walking
    the whole chain once more. Phase changes still run app.control.gate_for, which walks it in full."""
    ctx = GateContext(app.settings, app.store, app.clock(), app.control.kill(), _evidence=ev)
    out = []
    for gate in app.control.gates.get(phase, ()):
        if gate is gate_audit_chain:
            ok, why, _ = ev["audit chain verifies"]
            out.append(GateCheck("audit chain verifies", ok, why))
            continue
        try:
            out.append(gate(ctx))
        except Exception as e:  # noqa: BLE001 - as control.evaluate_gate: a gate that cannot decide has not passed
            out.append(GateCheck(getattr(gate, "__name__", "gate"), False, f"check failed to run: {e}"))
    return out


# ------------------------------------------------------------------------------------------ the phase gates

def gate_audit_chain(ctx: GateContext) -> GateCheck:
    """A phase change walks the whole chain; a preview uses the readiness checkpoint (the rows added since the
    last full walk, which is at most a day old), so showing the gate stays fast at 100,000+ rows."""
    if ctx.preview:
        with ctx.store.read() as s:
            ok, why, _ = audit_chain_evidence(ctx.store, s, ctx.now)
        return GateCheck("audit chain verifies", ok, why)
    with ctx.store.read() as s:
        r = audit.verify(s)
    return GateCheck("audit chain verifies", r.ok,
                     f"{r.rows} rows verified" if r.ok else r.problem or "the chain does not verify")


def criterion_gate(criterion: str) -> Gate:
    """A gate that passes when the go/no-go ``criterion`` passes in the readiness evidence."""

    def gate(ctx: GateContext) -> GateCheck:
        ev = ctx.evidence()
        if ev is None:
            return GateCheck(criterion, False, "readiness evidence unavailable (no engine)")
        ok, why, _ = ev[criterion]
        return GateCheck(criterion, ok, why)

    gate.__name__ = "gate_" + criterion.replace(" ", "_")
    return gate


# Criteria that have a dedicated gate (engine/services/control.py, gate_audit_chain above): their checks differ in
# detail from the readiness evidence.
_COVERED = {"AI vs human agreement", "config matches phase", "audit chain verifies", "breakers closed",
            "no sends awaiting reconciliation"}
_DEDICATED: dict[str, tuple[Gate, ...]] = {
    "parallel": (gate_kill_switch_off, gate_audit_chain),
    "assisted": (gate_kill_switch_off, gate_audit_chain, gate_no_reconciliation, gate_config_allows_sending,
                 gate_agreement),
    "autonomous": (gate_kill_switch_off, gate_audit_chain, gate_no_reconciliation, gate_config_allows_sending,
                   gate_agreement, gate_breakers_closed),
}


def phase_gates() -> dict[str, tuple[Gate, ...]]:
    """The go/no-go gate of every phase, the control plane's to evaluate (engine/app.py gives it PHASE_GATES):
    the dedicated checks first, then every criterion of GO_NO_GO that has no dedicated check."""
    made: dict[str, Gate] = {}
    return {phase: _DEDICATED.get(phase, ()) + tuple(made.setdefault(c, criterion_gate(c))
                                                      for c in GO_NO_GO.get(phase, []) if c not in _COVERED)
            for phase in PHASES}


PHASE_GATES = phase_gates()
