"""The gateway's steps end to end on a real database (SQLite and PostgreSQL), clock injected."""
from __future__ import annotations

import pytest
from sqlmodel import select

from engine.adapters.executors import AmbiguousFailure, DefiniteFailure, SandboxExecutor
from engine.adapters.models import Approval, AuditEntry, OutboxItem, SandboxMessage
from tests.conftest import LIVE, deep_merge
from tests.helpers import email

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})
NO_WARMUP = {"enabled": False}


def sandbox_count(app) -> int:
    with app.store.read() as s:
        return len(s.exec(select(SandboxMessage)).all())


def audit_events(app, event: str) -> list[AuditEntry]:
    with app.store.read() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.event == event)).all())


@pytest.fixture
def live(app_factory):
    return app_factory(production=AUTONOMOUS, warmup=NO_WARMUP)


def test_allowed_send_is_sent_with_one_click_headers(live):
    r = live.gateway.submit(email("k1"))
    assert r.status == "sent" and r.reasons == []
    with live.store.read() as s:
        msg = s.exec(select(SandboxMessage)).one()
        row = s.get(OutboxItem, r.outbox_id)
    assert row.status == "sent" and row.provider == "sandbox" and row.provider_message_id
    assert msg.headers["List-Unsubscribe"].startswith("<https://alphaswarm.example/unsubscribe/")
    assert msg.headers["List-Unsubscribe"].endswith(">")
    assert msg.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_kill_switch_denies_everything_and_keeps_the_key_free(live):
    live.control.set_kill(True, "incident 42", "ops")
    r = live.gateway.submit(email("k1"))
    assert (r.status, r.codes) == ("denied", ["KILL_SWITCH"])
    assert sandbox_count(live) == 0
    live.control.set_kill(False, "resolved", "ops")
    assert live.gateway.submit(email("k1")).status == "sent"


def test_emergency_stop_in_env_file_is_reread_and_cannot_be_overridden(live, tmp_path, monkeypatch):
    env_file = live.env_kill.path
    env_file.write_text("EMERGENCY_STOP=true\n")
    r = live.gateway.submit(email("k1"))
    assert r.codes == ["KILL_SWITCH"] and "EMERGENCY_STOP" in r.reasons[0].detail
    from engine.core.errors import KillSwitchLocked

    with pytest.raises(KillSwitchLocked):
        live.control.set_kill(False, "try", "ops")
    env_file.write_text("EMERGENCY_STOP=false\n# edited\n")
    assert live.gateway.submit(email("k1")).status == "sent"
    monkeypatch.setenv("EMERGENCY_STOP", "true")
    assert live.gateway.submit(email("k2")).codes == ["KILL_SWITCH"]


def test_maintenance(live):
    live.control.set_maintenance(True, "db upgrade", "ops")
    assert live.gateway.submit(email("k1")).codes == ["MAINTENANCE"]


@pytest.mark.parametrize("phase", ["shadow", "parallel"])
def test_shadow_phases_store_the_would_be_send_and_send_nothing(app_factory, phase):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": phase}}), warmup=NO_WARMUP)
    r = app.gateway.submit(email("k1"))
    assert r.status == "shadowed" and r.codes == ["PHASE_BLOCKS_SEND"]
    with app.store.read() as s:
        row = s.get(OutboxItem, r.outbox_id)
    assert row.subject and row.html and row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert row.decision["phase"] == phase and row.decision["live"] is False
    assert sandbox_count(app) == 0
    # a rule violation is still denied in shadow, so reviewers see it
    assert app.gateway.submit(email("k2", body="Act now for free money")).codes == ["SPAM_CONTENT"]


def test_flags_off_in_a_live_phase_still_send_nothing(app_factory):
    prod = deep_merge(AUTONOMOUS, {"email_behavior": {"actually_send": False}})
    app = app_factory(production=prod, warmup=NO_WARMUP)
    r = app.gateway.submit(email("k1"))
    assert r.status == "shadowed" and r.codes == ["PHASE_BLOCKS_SEND"]
    assert sandbox_count(app) == 0


def test_crm_writes_blocked_by_config(app_factory):
    app = app_factory(production=deep_merge(AUTONOMOUS, {"block_production_writes": True}), warmup=NO_WARMUP)
    r = app.gateway.submit({"agent": "GHL_MASTER", "action": "crm_add_tag", "idempotency_key": "t1",
                            "to": "jane@acme.io", "tags": ["hot"]})
    assert r.codes == ["PRODUCTION_WRITES_BLOCKED"]


@pytest.mark.parametrize("agent,action,code", [
    ("NOBODY", "send_email", "UNKNOWN_AGENT"),
    ("GHL_MASTER", "launch_rocket", "UNMAPPED_ACTION"),
    ("HUNTER", "send_email", "PERMISSION_DENIED"),
])
def test_permission_failures_are_denied_and_recorded_as_violations(live, agent, action, code):
    r = live.gateway.submit(email("k1", agent=agent, action=action))
    assert (r.status, r.codes) == ("denied", [code])
    v = audit_events(live, "permission.violation")
    assert len(v) == 1 and v[0].agent == agent and code in v[0].reasons


def test_platform_denied(app_factory):
    perms = {"agents": {"GHL_MASTER": {"platforms": ["linkedin"]}}}
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP, permissions=perms)
    assert app.gateway.submit(email("k1")).codes == ["PLATFORM_DENIED"]


def test_idempotency_replays_and_conflicts(live):
    first = live.gateway.submit(email("k1"))
    again = live.gateway.submit(email("k1"))
    assert first.status == "sent"
    assert again.status == "duplicate" and again.outbox_id == first.outbox_id
    conflict = live.gateway.submit(email("k1", to="other@acme.io"))
    assert conflict.codes == ["IDEMPOTENCY_CONFLICT"]
    assert sandbox_count(live) == 1


def test_invalid_action_names_the_field(live):
    r = live.gateway.submit({"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": "x",
                             "to": "a@acme.io", "from": "sales@alphaswarm.example", "html": "<p>x</p>"})
    assert r.codes == ["INVALID_ACTION"] and "subject" in r.reasons[0].detail


def test_hourly_and_domain_limits_defer_then_process_due_sends(app_factory):
    prod = deep_merge(AUTONOMOUS, {"email_limits": {"hourly_limit": 3, "per_domain_hourly_limit": 2}})
    app = app_factory(production=prod, warmup=NO_WARMUP)
    rs = [app.gateway.submit(email(f"a{i}", to=f"p{i}@acme.io")) for i in range(3)]
    assert [r.status for r in rs] == ["sent", "sent", "deferred"]
    assert rs[2].codes == ["LIMIT_DOMAIN_HOURLY"]
    r = app.gateway.submit(email("b1", to="x@beta.io"))
    assert r.status == "sent"
    r = app.gateway.submit(email("b2", to="y@gamma.io"))
    assert r.status == "deferred" and r.codes == ["LIMIT_HOURLY"]
    assert r.not_before == app.clock() + __import__("datetime").timedelta(hours=1)
    assert app.gateway.process_due() == []  # nothing due yet
    app.clock.advance(hours=1, seconds=1)
    results = app.gateway.process_due()
    assert sorted(x.status for x in results) == ["sent", "sent"]
    assert sandbox_count(app) == 5


def test_min_delay_per_mailbox(app_factory):
    app = app_factory(production=deep_merge(AUTONOMOUS, {"email_limits": {"min_delay_seconds": 30}}), warmup=NO_WARMUP)
    assert app.gateway.submit(email("a", to="a@x.io")).status == "sent"
    r = app.gateway.submit(email("b", to="b@y.io"))
    assert r.codes == ["MIN_DELAY"]
    assert app.gateway.submit(email("c", to="c@z.io", sender="hello@alphaswarm.example")).status == "sent"
    app.clock.advance(30)
    assert app.gateway.submit(email("b", to="b@y.io")).status == "sent"  # deferred key re-evaluated


def test_warmup_cap_binds_before_daily_limit(app_factory):
    app = app_factory(production=AUTONOMOUS)  # warm-up phase 1: 10/day
    st = [app.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io")).status for i in range(11)]
    assert st.count("sent") == 10
    assert app.gateway.submit(email("k99", to="z@zz.io")).codes == ["WARMUP_CAP"]


def test_outside_working_hours_in_recipient_timezone(app_factory):
    from datetime import datetime, timezone

    from engine.core.clock import FixedClock

    prod = deep_merge(AUTONOMOUS, {"working_hours": {"start": "08:00", "end": "18:00",
                                                     "days": ["mon", "tue", "wed", "thu", "fri"]}})
    # 15:00 UTC on a Tuesday: 10:00 in New York, 00:00 in Tokyo
    app = app_factory(production=prod, warmup=NO_WARMUP,
                      clock=FixedClock(datetime(2026, 11, 24, 15, tzinfo=timezone.utc)))
    assert app.gateway.submit(email("ny", to="a@a.io", timezone="America/New_York")).status == "sent"
    r = app.gateway.submit(email("tk", to="b@b.io", timezone="Asia/Tokyo"))
    assert r.codes == ["OUTSIDE_WORKING_HOURS"]
    assert r.not_before == datetime(2026, 11, 24, 23, tzinfo=timezone.utc)  # 08:00 Wed in Tokyo


def test_suppressed_and_excluded_recipients(live):
    live.suppress("gone@acme.io", "unsubscribed", "test", source="one-click")
    assert live.gateway.submit(email("s", to="gone@acme.io")).codes == ["SUPPRESSED_RECIPIENT"]
    assert live.gateway.submit(email("c", to="ceo@customer-one.example")).codes == ["EXCLUDED_RECIPIENT"]
    assert live.gateway.submit(email("i", to="not-an-email")).codes[0] == "INVALID_RECIPIENT"


def test_domain_cooling_defers_until_recovered(live):
    live.set_domain_health("alphaswarm.example", 45, "bounce spike", "ops")
    r = live.gateway.submit(email("k1"))
    assert r.codes == ["DOMAIN_COOLING"] and r.status == "deferred"
    live.set_domain_health("alphaswarm.example", 55, "improving", "ops")  # above 50, below recovery 60
    assert live.gateway.submit(email("k1")).codes == ["DOMAIN_COOLING"]
    live.set_domain_health("alphaswarm.example", 65, "recovered", "ops")
    assert live.gateway.submit(email("k1")).status == "sent"


def test_assisted_needs_approval_then_executes_once(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}}), warmup=NO_WARMUP)
    r = app.gateway.submit(email("k1"))
    assert r.status == "pending_approval" and r.codes == ["APPROVAL_REQUIRED"]
    assert sandbox_count(app) == 0
    assert app.gateway.submit(email("k1")).status == "duplicate"
    with app.store.write() as s:
        appr = s.exec(select(Approval)).one()
        appr.status, appr.decided_by = "approved", "approver"
        s.add(appr)
    results = app.gateway.process_due()
    assert [x.status for x in results] == ["sent"]
    assert app.gateway.process_due() == [] and sandbox_count(app) == 1


def test_autonomous_high_risk_needs_grounding_and_approval(live):
    assert live.gateway.submit(email("t1", tier=1)).codes == ["UNGROUNDED"]
    ev = [{"source": "https://acme.io/about", "retrieved_at": "2026-11-20T00:00:00Z"}]
    r = live.gateway.submit(email("t1b", to="b@acme.io", tier=1, evidence=ev))
    assert r.status == "pending_approval"
    assert live.gateway.submit(email("t2", to="c@acme2.io", tier=2)).status == "sent"


def test_breaker_opens_after_failures_and_recovers_through_half_open(app_factory):
    class Flaky:
        name, api, live = "flaky", "ghl", False

        def __init__(self):
            self.fail = True
            self.calls = 0

        def execute(self, msg):
            self.calls += 1
            if self.fail:
                raise DefiniteFailure("503 Service Unavailable")
            return SandboxExecutor(app.store, app.clock).execute(msg)

    flaky = Flaky()
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP, executors={"email": flaky, "crm": flaky})
    results = [app.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io")) for i in range(7)]
    assert [r.codes for r in results[:5]] == [["PROVIDER_ERROR"]] * 5
    assert results[5].codes == ["BREAKER_OPEN"] and results[6].codes == ["BREAKER_OPEN"]
    assert flaky.calls == 5
    assert {b.name: b.state for b in app.breakers.list()}["ghl"] == "OPEN"
    flaky.fail = False
    app.clock.advance(301)
    out = app.gateway.process_due()
    assert [r.status for r in out].count("sent") >= 2  # half-open trial, then closed
    assert {b.name: b.state for b in app.breakers.list()}["ghl"] == "CLOSED"
    transitions = [(e.data) for e in audit_events(app, "breaker.transition")]
    assert any('"after":"OPEN"' in t for t in transitions) and any('"after":"HALF_OPEN"' in t for t in transitions)
    assert any('"after":"CLOSED"' in t for t in transitions)


def test_forced_open_breaker_defers_and_is_audited(live):
    live.breakers.force("ghl", "OPEN", "vendor incident", "ops")
    r = live.gateway.submit(email("k1"))
    assert r.status == "deferred" and r.codes == ["BREAKER_OPEN"]
    ev = audit_events(live, "breaker.forced")
    assert ev and ev[0].actor == "ops" and "vendor incident" in ev[0].data


def test_ambiguous_send_goes_to_reconciliation_and_is_never_retried(app_factory, monkeypatch):
    class Timeout:
        name, api, live = "timeout", "ghl", False

        def __init__(self):
            self.calls = 0

        def execute(self, msg):
            self.calls += 1
            raise AmbiguousFailure("read timeout after the request was sent; secret sk-live-ABCDEFGH1234")

    monkeypatch.setenv("GHL_API_KEY", "sk-live-ABCDEFGH1234")
    ex = Timeout()
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP, executors={"email": ex, "crm": ex})
    r = app.gateway.submit(email("k1"))
    assert r.status == "reconcile"
    assert [x.id for x in app.reconciliation()] == [r.outbox_id]
    assert app.gateway.submit(email("k1")).status == "duplicate"
    app.clock.advance(hours=2)
    assert app.gateway.process_due() == []
    assert ex.calls == 1
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry)).all()
        row = s.get(OutboxItem, r.outbox_id)
    assert "sk-live-ABCDEFGH1234" not in row.last_error
    assert not any("sk-live-ABCDEFGH1234" in (e.data + e.reasons) for e in rows)
    app.resolve(r.outbox_id, "sent", "GHL log shows delivery", "ops")
    assert app.reconciliation() == []


def test_phase_moves_down_at_once_up_only_through_gate(live):
    from engine.core.errors import PhaseChangeRefused
    from engine.adapters.models import ControlState

    live.control.set_phase("shadow", "back to shadow", "ops")  # down from autonomous: always allowed
    with pytest.raises(PhaseChangeRefused, match="shadow validation complete"):
        live.control.set_phase("parallel", "no shadow run yet", "ops")
    from engine.adapters.models import ShadowRun

    with live.store.write_plain() as s:
        s.add(ShadowRun(started_at=live.clock(), finished_at=live.clock(), contacts=25))
    live.control.set_phase("parallel", "shadow validated", "ops")
    with pytest.raises(PhaseChangeRefused, match="one step"):
        live.control.set_phase("autonomous", "skip", "ops")
    live.control.set_kill(True, "drill", "ops")
    with pytest.raises(PhaseChangeRefused, match="kill switch"):
        live.control.set_phase("assisted", "go", "ops")
    r = live.control.set_phase("assisted", "break glass for drill", "cto", force=True)
    assert r["forced"] is True
    ev = audit_events(live, "control.phase")[-1]
    assert ev.actor == "cto" and '"forced":true' in ev.data and '"before":{"phase":"parallel"}' in ev.data
    with live.store.read() as s:
        assert s.get(ControlState, 1).phase == "assisted"
