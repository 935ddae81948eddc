"""The daily cycle (idempotent within a day) and internal-only first sends."""
from __future__ import annotations

import pytest
from sqlmodel import func, select

from engine.core.errors import InvalidRequest
from engine.adapters.models import Approval, Draft, Lead, OutboxItem, SandboxMessage
from engine.services.pipeline import daily_run, send_internal, set_draft_status
from tests.conftest import LIVE, deep_merge

FIT = dict(title="VP Sales", company="Fitco", company_domain="fitco.example", employee_count=120,
           industry="B2B SaaS", country="US", timezone="America/New_York", source="test")


def seed(app, n=3):
    with app.store.write_plain() as s:
        for i in range(n):
            s.add(Lead(email=f"vp{i}@fit{i}.example", first_name=f"Pat{i}", created_at=app.clock(), **FIT))
        s.add(Lead(email="ceo@customer-one.example", title="CEO", company="Customer One", employee_count=100,
                   created_at=app.clock()))


def n(app, model, *where):
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def test_daily_run_twice_the_same_day_sends_each_step_once(app_factory):
    # no high-risk tiers here, so autonomous sends need no approval (tier 1 approval is tested elsewhere)
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"},
                                                   "approval": {"high_risk_tiers": []}}),
                      warmup={"enabled": False})
    seed(app)
    first = daily_run(app)
    assert first["by_status"] == {"sent": 3, "disqualified": 1}
    second = daily_run(app)
    assert second["by_status"] == {"waiting": 3, "disqualified": 1}  # follow-ups are days away
    assert n(app, SandboxMessage) == 3
    app.clock.advance(days=3, seconds=1)  # cold follow-up 1 is due after 3 days
    third = daily_run(app)
    assert third["by_status"].get("sent") == 3 and n(app, SandboxMessage) == 6
    assert daily_run(app)["by_status"].get("sent", 0) == 0 and n(app, SandboxMessage) == 6


def test_daily_run_in_shadow_sends_nothing_and_replays(app_factory):
    app = app_factory()
    seed(app, 2)
    assert daily_run(app)["by_status"] == {"shadowed": 2, "disqualified": 1}
    assert daily_run(app)["by_status"] == {"duplicate": 2, "disqualified": 1}
    assert n(app, SandboxMessage) == 0


def test_internal_only_sends_go_to_internal_addresses_in_assisted(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}}),
                      warmup={"enabled": False})
    seed(app, 2)
    daily_run(app)  # assisted: lead sends wait for approval
    assert n(app, OutboxItem, OutboxItem.status == "pending_approval") == 2
    with app.store.read() as s:
        drafts = s.exec(select(Draft)).all()
    set_draft_status(app, drafts[0].id, "approved", "approver")
    with pytest.raises(InvalidRequest, match="reason"):
        set_draft_status(app, drafts[1].id, "rejected", "approver")
    out = send_internal(app, 5)
    internal = app.settings.production.sender.internal_addresses
    assert [o["to"] for o in out] == [internal[0]] and out[0]["status"] == "pending_approval"
    with app.store.write() as s:
        for a in s.exec(select(Approval)).all():
            a.status = "approved"
            s.add(a)
    app.gateway.process_due()
    with app.store.read() as s:
        sent_to = sorted(m.to_email for m in s.exec(select(SandboxMessage)).all())
    assert internal[0] in sent_to
    app.control.set_phase("parallel", "back", "ops")
    with pytest.raises(InvalidRequest, match="assisted"):
        send_internal(app, 1)
