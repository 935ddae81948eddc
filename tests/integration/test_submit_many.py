"""Gateway.submit_many gives exactly what one Gateway.submit after the other gives: the same results, the same
outbox rows, approvals, agent activity and sandbox sends, and the same audit chain row for row (hashes included,
the clock being fixed), on SQLite and PostgreSQL, in the shadow, assisted and autonomous phases, across batch
boundaries and with sends ending a batch."""
from __future__ import annotations

import itertools
import random
import uuid
from unittest import mock

import pytest
from sqlmodel import select

from engine.adapters import audit
from engine.adapters.models import AgentActivity, Approval, AuditEntry, OutboxItem, SandboxMessage
from tests.conftest import (LIVE, WORK_TIME, create_pg_database, deep_merge, drop_pg_database,
                            seed_configured_phase)
from tests.helpers import email

NO_WARMUP = {"enabled": False}
# small caps so that a mixed batch meets them: hourly 6, per domain 2, and the agent's per-minute rate 9
LIMITS = {"email_limits": {"hourly_limit": 6, "per_domain_hourly_limit": 2, "daily_limit": 1000}}
RATE = {"agents": {"GHL_MASTER": {"rate_limits": {"per_minute": 9, "per_hour": 600}}}}
PHASES = {
    "shadow": deep_merge(LIVE, {"rollout_phase": {"current": "shadow"}, **LIMITS}),
    "assisted": deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}, **LIMITS}),
    "autonomous": deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}, **LIMITS}),
}


def mixed_actions(seed: int, n: int = 60) -> list:
    """Valid sends over a few domains, repeats (same payload: duplicates; other payload: conflicts), invalid
    actions, unknown agents, suppressed and excluded recipients, spam, non-email actions."""
    rnd = random.Random(seed)
    out: list = []
    for i in range(n):
        kind = rnd.choices(["ok", "dup", "conflict", "invalid", "agent", "suppressed", "spam", "crm"],
                           [10, 2, 1, 1, 1, 1, 1, 1])[0]
        to = f"p{i}@d{rnd.randrange(4)}.example"
        if kind == "dup" and out:
            out.append(rnd.choice([a for a in out if isinstance(a, dict)] or [email("k0")]))
        elif kind == "conflict" and out:
            prev = rnd.choice([a for a in out if isinstance(a, dict) and "idempotency_key" in a] or [email("k0")])
            out.append(email(prev["idempotency_key"], to=to, body="Another body altogether."))
        elif kind == "invalid":
            out.append(rnd.choice([{"agent": "GHL_MASTER"}, "not an object", {**email(f"k{i}"), "to": 42}]))
        elif kind == "agent":
            out.append(email(f"k{i}", to=to, agent="NOBODY"))
        elif kind == "suppressed":
            out.append(email(f"k{i}", to="gone@d1.example"))
        elif kind == "spam":
            out.append(email(f"k{i}", to=to, subject="FREE MONEY guaranteed!!!"))
        elif kind == "crm":
            out.append({"agent": "GHL_MASTER", "action": "crm_add_tag", "idempotency_key": f"k{i}",
                        "contact_id": "c1", "tag": "hot"})
        else:
            out.append(email(f"k{i}", to=to))
    return out


def snapshot(app) -> dict:
    with app.store.read() as s:
        def rows(model, order):
            return [{c.name: getattr(r, c.name) for c in model.__table__.columns if c.name not in ("id",)}
                    | ({"id": r.id} if hasattr(r, "id") else {})
                    for r in s.exec(select(model).order_by(order)).all()]
        return {
            "outbox": rows(OutboxItem, OutboxItem.id),
            "approvals": rows(Approval, Approval.id),
            "activity": [(a.agent, a.action, a.at) for a in s.exec(select(AgentActivity).order_by(AgentActivity.id))],
            "sandbox": [(m.to_email, m.subject) for m in s.exec(select(SandboxMessage).order_by(SandboxMessage.id))],
            "audit": rows(AuditEntry, AuditEntry.seq),
        }


@pytest.fixture
def pair(db_url, config_factory, tmp_path):
    """Make two initialised Apps with the same configuration and clock, each on a database of its own (the
    test's database and a second one on the same backend)."""
    from engine.app import App
    from engine.core.clock import FixedClock
    from engine.core.config import load_settings
    from engine.adapters.db import Store

    if db_url.startswith("sqlite"):
        urls, drop = [db_url, f"sqlite:///{tmp_path / 'second.db'}"], None
    else:
        drop, second = create_pg_database()
        urls = [db_url, second]
    made = []

    def make(production):
        cfg = config_factory(production, NO_WARMUP, RATE)
        for url in urls:
            app = App(settings=load_settings(cfg), store=Store(url), clock=FixedClock(WORK_TIME))
            app.init("test")
            seed_configured_phase(app)
            made.append(app)
        return made[-2:]

    yield make
    for a in made:
        a.store.dispose()
    if drop:
        drop_pg_database(drop)


def run_both(pair, production, actions, batch, shadow=False):
    one, many = pair(production)
    ids = itertools.count()
    # the sandbox names each message with a random uuid: numbered here, so both runs' rows and hashes can match
    uuid4 = lambda: uuid.UUID(int=next(ids))  # noqa: E731
    for app in (one, many):
        app.suppress("gone@d1.example", "unsubscribed", "test")
    with mock.patch("engine.adapters.executors.uuid.uuid4", uuid4):
        singles = [one.gateway.submit(a, shadow=shadow) for a in actions]
        ids = itertools.count()
        batched = many.gateway.submit_many(actions, shadow=shadow, batch=batch)
    return one, many, singles, batched


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("seed,batch", [(1, 200), (2, 7), (3, 1)])
def test_submit_many_is_submit_one_after_the_other(pair, phase, seed, batch):
    actions = mixed_actions(seed)
    one, many, singles, batched = run_both(pair, PHASES[phase], actions, batch)
    assert [r.to_dict(details=True) for r in batched] == [r.to_dict(details=True) for r in singles]
    statuses = {r.status for r in singles}
    assert {"denied", "duplicate"} <= statuses  # the mix exercised refusals and repeats
    if phase == "autonomous":
        assert {"sent", "deferred"} <= statuses  # sends ended batches, limits were met
    if phase == "assisted":
        assert "pending_approval" in statuses
    if phase == "shadow":
        assert "shadowed" in statuses
    a, b = snapshot(one), snapshot(many)
    for part in a:
        assert b[part] == a[part], part
    with many.store.read() as s:
        assert audit.verify(s).ok


def test_forced_shadow_batches_match_and_send_nothing(pair):
    actions = mixed_actions(4, 80)
    one, many, singles, batched = run_both(pair, PHASES["autonomous"], actions, 25, shadow=True)
    assert [r.to_dict(details=True) for r in batched] == [r.to_dict(details=True) for r in singles]
    assert "sent" not in {r.status for r in batched}
    assert snapshot(one) == snapshot(many)
    assert snapshot(many)["sandbox"] == []


def test_a_batch_sees_the_kill_switch_flipped_by_its_own_sends(app_factory, monkeypatch):
    """The kill switch flipped while a batch is being executed stops every decision after the flip."""
    app = app_factory(production=PHASES["autonomous"], warmup=NO_WARMUP)
    executor = app.gateway.executors["email"]
    real = executor.execute
    calls = []

    def execute_then_kill(msg):
        calls.append(msg.to)
        out = real(msg)
        if len(calls) == 2:
            app.control.set_kill(True, "incident", "ops")
        return out

    monkeypatch.setattr(executor, "execute", execute_then_kill)
    res = app.gateway.submit_many([email(f"x{i}", to=f"p{i}@d{i}.example") for i in range(5)])
    assert [r.status for r in res] == ["sent", "sent", "denied", "denied", "denied"]
    assert all(r.codes == ["KILL_SWITCH"] for r in res[2:])
    assert len(calls) == 2
