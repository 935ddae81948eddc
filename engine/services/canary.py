"""Canary and unsubscribe tests: proof that the guardrails catch what they must, run on demand.

Both run the real pipeline and the real gateway (forced shadow: nothing leaves) against a throwaway SQLite
database built from the same configuration, so planted violations (a suppressed address, a full hourly
window, the kill switch) never touch production state; the throwaway database is deleted afterwards. The
result is stored in the real database (``check_run``) as evidence for the readiness score, and a failure
raises an alert.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

from engine.adapters.db import Store
from engine.adapters.executors import Executor
from engine.adapters.ports import Configured
from engine.core.clock import Clock, FixedClock, iso
from engine.adapters.models import CheckRun, Lead, OutboxItem
from engine.core.reasons import Code
from engine.services.suppressions import add_suppression


class Drillable(Configured, Protocol):
    """What a drill uses of the engine (engine.app.App): its settings, store and clock, its unsubscribe secret, its
    alerts, and a quiet twin of itself on a throwaway store (``scratch``) to plant violations in."""

    @property
    def secret(self) -> bytes: ...

    def alert_dict(self, alert: dict) -> None: ...

    def scratch(self, store: Store, clock: Clock, executors: dict[str, Executor]) -> Any: ...


@dataclass
class Probe:
    name: str
    passed: bool
    expected: str
    got: str


def _working_instant(app: Configured) -> datetime:
    """The next instant inside working hours in the default time zone (10:00 local on a working day)."""
    wh = app.settings.production.working_hours
    from engine.rules.guardrails.hours import next_opening

    opening = next_opening(app.clock(), wh, wh.default_timezone)
    return opening + timedelta(hours=2)


def _closed_instant(app: Configured, at: datetime, tz: str) -> datetime | None:
    """The first hour in the coming week when working hours are closed in ``tz``; None if they never close."""
    from engine.rules.guardrails.hours import is_open

    wh = app.settings.production.working_hours
    for h in range(1, 24 * 8):
        t = at + timedelta(hours=h)
        if not is_open(t.astimezone(ZoneInfo(tz)), wh):
            return t
    return None


class Scratch:
    """A throwaway engine on a temporary SQLite database with the same configuration."""

    def __init__(self, app: Drillable):
        from engine.adapters.executors import SandboxExecutor

        self.dir = tempfile.mkdtemp(prefix="alpha-check-")
        self.clock = FixedClock(_working_instant(app))
        store = Store(f"sqlite:///{self.dir}/check.db")
        sandbox = SandboxExecutor(store, self.clock)  # never a real provider, even if GHL is configured
        # the engine builds its own quiet twin (same settings, secret, ICP; no alerts: planted drills are not news)
        self.app = app.scratch(store, self.clock, {"email": sandbox, "crm": sandbox})
        self.app.init("check")

    def add_lead(self, lead: Lead) -> Lead:
        lead.created_at = lead.updated_at = self.clock()
        with self.app.store.write_plain() as s:
            s.add(lead)
            s.flush()
            s.refresh(lead)
        return lead

    def close(self):
        self.app.store.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)


def canary_lead(app: Configured) -> Lead:
    sender = app.settings.production.sender
    internal = (sender.internal_addresses or sender.from_addresses)[0]
    local, domain = internal.split("@", 1)
    return Lead(email=f"{local}+canary@{domain}", first_name="Canary", last_name="Test", title="VP Sales",
                company="Canary Test Co", company_domain="canary-test.example", employee_count=120,
                industry="B2B SaaS", country="US", timezone=app.settings.production.working_hours.default_timezone,
                source="canary")


def _record(app: Drillable, kind: str, probes: list[Probe]) -> dict:
    ok = all(p.passed for p in probes)
    now = app.clock()
    results = [asdict(p) for p in probes]
    with app.store.write_plain() as s:
        s.add(CheckRun(kind=kind, at=now, ok=ok, results=results))
    if not ok:
        failed = ", ".join(p.name for p in probes if not p.passed)
        app.alert_dict({"kind": f"{kind}_failed", "title": f"{kind.replace('_', ' ').title()} FAILED",
                        "text": f"failed checks: {failed}", "fields": {"failed": failed}})
    return {"kind": kind, "ok": ok, "at": iso(now), "checks": results}


def _expect(name: str, result, code: Code) -> Probe:
    return Probe(name, code.value in result.codes, code.value, f"{result.status} {result.codes}")


def run_canary(app: Drillable) -> dict:
    """A synthetic internal lead through the whole pipeline; planted violations must be caught."""
    from engine.services.pipeline import Pipeline

    sc = None
    probes: list[Probe] = []
    try:
        sc = Scratch(app)  # a canary that cannot even start has failed (recorded), never "still passing"
        a = sc.app
        lead = canary_lead(app)
        sc.add_lead(lead)
        pipe = Pipeline(a)
        outcome, plan, _ = pipe.prepare(lead, a.clock())
        if plan is None:
            probes.append(Probe("pipeline reaches the gateway", False, "a draft",
                                f"{outcome.status} {outcome.reasons}" if outcome is not None else "no outcome"))
            return _record(app, "canary", probes)
        base = dict(plan["action"])
        n = [0]

        def submit(**changes):
            n[0] += 1
            return a.gateway.submit({**base, "idempotency_key": f"canary-{n[0]}", **changes}, shadow=True)

        clean = submit()
        probes.append(Probe("clean email passes every rule", clean.status == "shadowed" and clean.codes == [
            Code.PHASE_BLOCKS_SEND.value], "shadowed [PHASE_BLOCKS_SEND]", f"{clean.status} {clean.codes}"))
        probes.append(_expect("spam word caught", submit(html=base["html"] + "<p>Act now!</p>"), Code.SPAM_CONTENT))
        unsub = app.settings.production.sender.unsubscribe_base_url
        stripped = base["html"].replace(unsub, "https://elsewhere.example/x")
        probes.append(_expect("missing unsubscribe caught", submit(html=stripped, text=None), Code.MISSING_UNSUBSCRIBE))
        with a.store.write() as s:  # the list only: a person's App.suppress would also stop the lead's sequence
            add_suppression(s, lead.email, "unsubscribed", "canary", "canary probe", a.clock(), "canary")
        probes.append(_expect("suppressed address caught", submit(), Code.SUPPRESSED_RECIPIENT))
        a.unsuppress(lead.email, "canary cleanup", "canary")
        cap = a.settings.limits.hourly_limit
        now = a.clock()
        with a.store.write_plain() as s:
            for i in range(cap):
                s.add(OutboxItem(idempotency_key=f"canary-fill-{i}", payload_hash="x", agent="GHL_MASTER",
                                 action="send_email", channel="email", to_email=f"fill{i}@fill{i}.example",
                                 to_domain=f"fill{i}.example", from_email="fill@fill.example", status="sent",
                                 reserved_at=now - timedelta(minutes=1), sent_at=now))
        over = submit()
        probes.append(Probe("over a limit caught", any(c.startswith("LIMIT_") or c == "WARMUP_CAP" for c in over.codes),
                            "LIMIT_*", f"{over.status} {over.codes}"))
        closed = _closed_instant(app, now, lead.timezone or app.settings.production.working_hours.default_timezone)
        if closed is None:
            probes.append(Probe("outside working hours caught", True, Code.OUTSIDE_WORKING_HOURS.value,
                                "not applicable: working_hours never close (every day, 00:00-24:00)"))
        else:
            sc.clock.now = closed
            probes.append(_expect("outside working hours caught", submit(), Code.OUTSIDE_WORKING_HOURS))
        a.control.set_kill(True, "canary", "canary")
        probes.append(_expect("kill switch obeyed", submit(), Code.KILL_SWITCH))
    except Exception as e:  # noqa: BLE001 - a canary that cannot run has failed
        probes.append(Probe("canary ran", False, "no error", f"{type(e).__name__}: {e}"))
    finally:
        if sc is not None:
            sc.close()
    if not probes:
        probes.append(Probe("canary ran", False, "at least one probe", "no probe ran"))
    return _record(app, "canary", probes)


# POST List-Unsubscribe=One-Click to the real receiver of an engine at a path; returns the HTTP response (anything
# with a status_code). The receiver is an entrypoint: engine.entrypoints.webhooks.one_click_post is the real one.
OneClick = Callable[[Any, str], Any]


def run_unsubscribe_test(app: Drillable, one_click: OneClick) -> dict:
    """Every active template shows the unsubscribe link and postal address; sends carry RFC 8058 headers; a
    suppressed address is refused; a one-click POST (``one_click``, to the real receiver) suppresses the
    address."""
    from engine.rules.guardrails.content import ContentRules, check_content
    from engine.rules.messaging import load_pack, render
    from engine.services.pipeline import Pipeline
    from engine.rules.unsubscribe import make_token, verify_token

    probes: list[Probe] = []
    sc = None
    try:
        sc = Scratch(app)
        a = sc.app
        pack = load_pack(app.settings.config_dir)
        lead = canary_lead(app)
        rules = ContentRules.from_settings(app.settings)
        sender = app.settings.production.sender
        for t in pack.templates:
            r = render(t, lead, sender, f"{sender.unsubscribe_base_url}/{make_token(lead.email, app.secret)}")
            codes = {x.code.value for x in check_content(r.subject, r.html, r.text, rules, first_touch=False,
                                                         recipient=lead.email, secret=app.secret)}
            bad = codes & {"MISSING_UNSUBSCRIBE", "MISSING_POSTAL_ADDRESS"}
            probes.append(Probe(f"template {t.id} v{t.version}: unsubscribe link and postal address", not bad,
                                "both present", ", ".join(sorted(bad)) or "both present"))
        sc.add_lead(lead)
        _, plan, _ = Pipeline(a).prepare(lead, a.clock())
        if plan is None:
            raise RuntimeError("the canary lead did not reach the gateway (no draft or it stopped before)")
        res = a.gateway.submit({**plan["action"], "idempotency_key": "unsub-test-1"}, shadow=True)
        with a.store.read() as s:
            row = s.get(OutboxItem, res.outbox_id)
        h = row.headers or {}
        url = h.get("List-Unsubscribe", "").strip("<>")
        token_ok = verify_token(url.rsplit("/", 1)[-1], app.secret) == lead.email if url else False
        probes.append(Probe("send carries RFC 8058 headers",
                            h.get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click" and token_ok,
                            "List-Unsubscribe <url with a token naming the recipient> + One-Click",
                            f"{h.get('List-Unsubscribe')} / {h.get('List-Unsubscribe-Post')}"))
        resp = one_click(a, f"/unsubscribe/{make_token(lead.email, app.secret)}")
        after = a.gateway.submit({**plan["action"], "idempotency_key": "unsub-test-2"}, shadow=True)
        probes.append(Probe("one-click POST suppresses the address", resp.status_code == 200 and
                            Code.SUPPRESSED_RECIPIENT.value in after.codes, "200 then SUPPRESSED_RECIPIENT",
                            f"{resp.status_code} then {after.status} {after.codes}"))
        a.suppress("already-gone@canary-test.example", "unsubscribed", "check", source="check")
        refused = a.gateway.submit({**plan["action"], "to": "already-gone@canary-test.example",
                                    "idempotency_key": "unsub-test-3"}, shadow=True)
        probes.append(_expect("suppressed address refused by the gateway", refused, Code.SUPPRESSED_RECIPIENT))
    except Exception as e:  # noqa: BLE001
        probes.append(Probe("unsubscribe test ran", False, "no error", f"{type(e).__name__}: {e}"))
    finally:
        if sc is not None:
            sc.close()
    return _record(app, "unsubscribe_test", probes)
