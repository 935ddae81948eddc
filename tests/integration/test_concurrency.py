"""Several real processes against one database (SQLite file and PostgreSQL): nothing lost, nothing sent
twice, nothing sent that a rule forbids, no limit overshot, the kill switch obeyed at once."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlmodel import Session, create_engine, select

from engine.adapters.models import AuditEntry, OutboxItem, SandboxMessage
from tests.conftest import FORCE_INIT, LIVE, deep_merge
from tests.helpers import ROOT, alpha, alpha_env, email, jsonl

pytestmark = pytest.mark.slow

PROD = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"},
                         "email_limits": {"hourly_limit": 20, "per_domain_hourly_limit": 5, "daily_limit": 150,
                                          "monthly_limit": 3000, "min_delay_seconds": 0}})


def _rows(db_url: str, model):
    eng = create_engine(db_url)
    try:
        with Session(eng) as s:
            return list(s.exec(select(model)).all())
    finally:
        eng.dispose()


def _spawn(env, path):
    return subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "submit", str(path)], env=env,
    cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _setup(db_url, config_factory, tmp_path, production=PROD):
    cfg = config_factory(production=production, warmup={"enabled": False},
                         permissions={"agents": {"GHL_MASTER": {"rate_limits": {"per_minute": 100000,
                                                                                "per_hour": 100000}}}})
    env = alpha_env(db_url, cfg, tmp_path)
    alpha(env, "init", *FORCE_INIT, check=True)
    return env


def test_eight_processes_2000_sends_hold_every_limit(db_url, config_factory, tmp_path):
    env = _setup(db_url, config_factory, tmp_path)
    procs, n_proc, per_proc = [], 8, 250
    for p in range(n_proc):
        lines = []
        for i in range(per_proc):
            n = p * per_proc + i
            body = "Act now, free money!" if n % 10 == 7 else f"Note {n} about pipeline reviews."
            lines.append(json.dumps(email(f"p{p}-{i}", to=f"lead{n}@domain{n % 10}.io", body=body)))
        path = tmp_path / f"in{p}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        procs.append(_spawn(env, path))
    results = []
    for pr in procs:
        out, err = pr.communicate(timeout=600)
        assert pr.returncode == 0, err
        results += jsonl(out)

    assert len(results) == n_proc * per_proc == 2000
    statuses = Counter(r["status"] for r in results)
    binding_cap = min(20, 150, 3000, 10 * 5)
    assert statuses["sent"] == binding_cap, statuses
    assert statuses["sent"] + statuses["deferred"] + statuses["denied"] == 2000, statuses
    assert statuses["denied"] == 200  # exactly the spam-laden ones
    assert all(r["reasons"] == ["SPAM_CONTENT"] for r in results if r["status"] == "denied")

    rows = _rows(db_url, OutboxItem)
    assert len(rows) == 2000  # nothing lost: every action stored with its decision
    sent = [r for r in rows if r.status == "sent"]
    assert len(sent) == binding_cap
    by_domain = defaultdict(list)
    for r in sent:
        by_domain[r.to_domain].append(r.reserved_at)
    for dom, times in by_domain.items():
        times.sort()
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u - t < timedelta(hours=1)) <= 5, dom
    msgs = _rows(db_url, SandboxMessage)
    assert len(msgs) == binding_cap
    assert len({m.outbox_id for m in msgs}) == len(msgs)  # no key executed twice
    assert {m.outbox_id for m in msgs} == {r.id for r in sent}
    assert alpha(env, "audit", "verify").returncode == 0


def test_same_keys_from_eight_processes_execute_once(db_url, config_factory, tmp_path):
    prod = deep_merge(PROD, {"email_limits": {"hourly_limit": 1000, "per_domain_hourly_limit": 1000,
                                              "daily_limit": 1000}})
    env = _setup(db_url, config_factory, tmp_path, prod)
    lines = "\n".join(json.dumps(email(f"shared-{i}", to=f"x{i}@d{i}.io")) for i in range(40)) + "\n"
    path = tmp_path / "shared.jsonl"
    path.write_text(lines)
    procs = [_spawn(env, path) for _ in range(8)]
    results = []
    for pr in procs:
        out, err = pr.communicate(timeout=600)
        assert pr.returncode == 0, err
        results += jsonl(out)
    per_key = defaultdict(Counter)
    for r in results:
        per_key[r["idempotency_key"]][r["status"]] += 1
    assert len(per_key) == 40
    for key, c in per_key.items():
        assert c == Counter({"sent": 1, "duplicate": 7}), (key, c)
    msgs = _rows(db_url, SandboxMessage)
    assert len(msgs) == 40 and len({m.outbox_id for m in msgs}) == 40


def test_kill_switch_flipped_from_another_process_stops_sends_at_once(db_url, config_factory, tmp_path):
    prod = deep_merge(PROD, {"email_limits": {"hourly_limit": 100000, "per_domain_hourly_limit": 100000,
                                              "daily_limit": 100000, "monthly_limit": 100000}})
    env = _setup(db_url, config_factory, tmp_path, prod)
    procs = []
    for p in range(4):
        path = tmp_path / f"k{p}.jsonl"
        path.write_text("\n".join(json.dumps(email(f"k{p}-{i}", to=f"l{p}-{i}@d{i % 50}.io"))
                                  for i in range(400)) + "\n")
        procs.append(_spawn(env, path))
    deadline = time.time() + 120
    while time.time() < deadline and len(_rows(db_url, SandboxMessage)) < 30:
        time.sleep(0.2)
    assert len(_rows(db_url, SandboxMessage)) >= 30, "submitters did not get going"
    alpha(env, "kill", "on", "--reason", "mid-run drill", "--actor", "ops", check=True)
    results = []
    for pr in procs:
        out, err = pr.communicate(timeout=600)
        assert pr.returncode == 0, err
        results += jsonl(out)

    audit_rows = sorted(_rows(db_url, AuditEntry), key=lambda e: e.seq)
    flip = next(e.seq for e in audit_rows if e.event == "control.kill_switch" and e.status == "on")
    decided_sending = {e.outbox_id: e.seq for e in audit_rows
                       if e.event == "gateway.decision" and e.status == "sending"}
    executed = {e.outbox_id: e.seq for e in audit_rows if e.event == "gateway.execution" and e.status == "sent"}
    assert executed, "some sends happened before the flip"
    # every send that went out was decided before the flip; every decision after it is a KILL_SWITCH denial
    assert all(decided_sending[oid] < flip for oid in executed)
    after = [e for e in audit_rows if e.seq > flip and e.event == "gateway.decision"]
    assert after and all(e.status == "denied" and e.reasons == '["KILL_SWITCH"]' for e in after)
    msgs = _rows(db_url, SandboxMessage)
    assert {m.outbox_id for m in msgs} == set(executed)
    assert len(results) == 1600
    assert sum(r["status"] == "sent" for r in results) == len(executed)
    assert alpha(env, "audit", "verify").returncode == 0


def test_process_killed_between_api_call_and_commit_never_sends_twice(db_url, config_factory, tmp_path):
    prod = deep_merge(PROD, {"reconciliation": {"sending_stale_seconds": 1}})
    env = _setup(db_url, config_factory, tmp_path, prod)
    action = json.dumps(email("crash-1", to="victim@acme.io"))
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "crash_submit.py")], input=action, env=env,
                       cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, (p.returncode, p.stderr)  # SIGKILL
    (row,) = _rows(db_url, OutboxItem)
    assert row.status == "sending"
    assert len(_rows(db_url, SandboxMessage)) == 1

    # restart: the same action again, and a worker pass over due items
    again = jsonl(alpha(env, "submit", "-", input=action + "\n", check=True).stdout)
    assert again[0]["status"] == "duplicate"
    time.sleep(1.2)  # past sending_stale_seconds (1 s in this config)
    assert alpha(env, "outbox", "process", check=True).stdout.strip() == ""
    assert len(_rows(db_url, SandboxMessage)) == 1  # never sent twice
    listed = json.loads(alpha(env, "outbox", "reconcile", "--json", check=True).stdout)
    assert [x["id"] for x in listed] == [row.id] and listed[0]["to"] == "victim@acme.io"
    alpha(env, "outbox", "resolve", str(row.id), "--outcome", "sent", "--reason", "provider log shows it",
          "--actor", "ops", check=True)
    assert json.loads(alpha(env, "outbox", "reconcile", "--json", check=True).stdout) == []
    assert alpha(env, "audit", "verify").returncode == 0
