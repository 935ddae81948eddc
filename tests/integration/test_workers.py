"""Several worker processes drain approved sends: each sent exactly once, every item final, the kill switch
obeyed mid-drain (what is left stays queued). PostgreSQL claims with FOR UPDATE SKIP LOCKED; SQLite serializes."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session, create_engine, select

from engine.adapters.models import AuditEntry, OutboxItem, SandboxMessage
from tests.conftest import LIVE, deep_merge
from tests.helpers import ROOT, alpha, alpha_env, email

pytestmark = pytest.mark.slow

PROD = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"},
                         "email_limits": {"hourly_limit": 100000, "per_domain_hourly_limit": 100000,
                                          "daily_limit": 100000, "monthly_limit": 100000}})
PERMS = {"agents": {"GHL_MASTER": {"rate_limits": {"per_minute": 100000, "per_hour": 100000}}}}


def _queue(app_factory, n):
    from engine.core.clock import system_clock

    app = app_factory(production=PROD, warmup={"enabled": False}, permissions=PERMS, clock=system_clock)
    for i in range(n):
        assert app.gateway.submit(email(f"w{i}", to=f"lead{i}@d{i % 40}.io")).status == "pending_approval"
    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE approval SET status = 'approved', decided_by = 'bob'"))
    return app


def _rows(url, model):
    eng = create_engine(url)
    with Session(eng) as s:
        rows = list(s.exec(select(model)).all())
    eng.dispose()
    return rows


def _workers(env, k, limit=100000):
    return [subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "approvals", "process", "--limit",
    str(limit),
                              "--json"], env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(k)]


def _env(app, config_factory, tmp_path):
    cfg = config_factory(production=PROD, warmup={"enabled": False}, permissions=PERMS)
    return alpha_env(app.store.url, cfg, tmp_path)


def test_four_workers_drain_approved_sends_exactly_once(app_factory, db_url, config_factory, tmp_path):
    n = 1000 if db_url.startswith("postgresql") else 300
    app = _queue(app_factory, n)
    env = _env(app, config_factory, tmp_path)
    procs = _workers(env, 4)
    per_worker = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        per_worker.append(sum(r["status"] == "sent" for r in json.loads(out)["results"]))
    msgs = _rows(db_url, SandboxMessage)
    assert len(msgs) == n and len({m.outbox_id for m in msgs}) == n  # each exactly once
    assert sum(per_worker) == n
    if db_url.startswith("postgresql"):
        assert sum(1 for k in per_worker if k > 0) >= 2, per_worker  # the work was shared
    assert {r.status for r in _rows(db_url, OutboxItem)} == {"sent"}  # every item final
    assert alpha(env, "audit", "verify").returncode == 0


def test_kill_switch_mid_drain_stops_execution_and_leaves_the_rest_queued(app_factory, db_url, config_factory,
                                                                         tmp_path):
    n = 400
    app = _queue(app_factory, n)
    env = _env(app, config_factory, tmp_path)
    procs = _workers(env, 4)
    deadline = time.time() + 120
    while time.time() < deadline and len(_rows(db_url, SandboxMessage)) < 40:
        time.sleep(0.1)
    alpha(env, "kill", "on", "--reason", "mid-drain drill", "--actor", "ops", check=True)
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    sent_before = len(_rows(db_url, SandboxMessage))
    assert 40 <= sent_before < n
    rows = _rows(db_url, OutboxItem)
    queued = [r for r in rows if r.status != "sent"]
    assert queued and {r.status for r in queued} == {"pending_approval"}  # nothing lost, nothing denied
    audit = sorted(_rows(db_url, AuditEntry), key=lambda e: e.seq)
    flip = next(e.seq for e in audit if e.event == "control.kill_switch" and e.status == "on")
    assert all(e.seq < flip for e in audit if e.event == "gateway.decision" and e.status == "sending")
    alpha(env, "kill", "off", "--reason", "drill over", "--actor", "ops", check=True)
    alpha(env, "approvals", "process", "--limit", "100000", check=True)
    msgs = _rows(db_url, SandboxMessage)
    assert len(msgs) == n and len({m.outbox_id for m in msgs}) == n


def test_a_worker_retakes_its_own_claims_but_not_anothers_live_lease(app_factory):
    """After a database outage a worker cannot release what it claimed; it must not wait out its own lease,
    and another worker must still respect that lease."""
    app = _queue(app_factory, 3)
    first = app.gateway.due(10, worker="w1")
    assert len(first) == 3
    assert app.gateway.due(10, worker="w2") == []  # w1's lease holds against others
    assert sorted(app.gateway.due(10, worker="w1")) == sorted(first)  # w1 takes its own back at once
    assert app.gateway.due(10, worker="w1", exclude=set(first)) == []  # but never twice in one pass
