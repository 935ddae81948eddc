"""Bypass attempts on every CLI command that changes state.

Trust model: the CLI runs on a host that holds the database credentials, so it is an operator's tool, not a
login (the console is where people authenticate and roles are enforced per page). What the CLI must never allow
is getting around a RULE: turning the kill switch off under EMERGENCY_STOP, skipping a phase or a failing gate
without a recorded --force, approving your own request or an item outside your roster group, changing anything
without a reason, or smuggling bad values in. Each attempt below is refused with one clear line (no traceback),
and the state is unchanged afterwards.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import LIVE, deep_merge
from tests.helpers import alpha, alpha_env, email
from tests.integration.test_approvals import add_users

SHADOW = deep_merge(LIVE, {"rollout_phase": {"current": "shadow"}})  # live flags on; the phase decides
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # rules, not storage


@pytest.fixture
def env(db_url, config_factory, tmp_path):
    cfg = config_factory(production=SHADOW, warmup={"enabled": False})
    add_users(cfg)
    e = alpha_env(db_url, cfg, tmp_path)
    alpha(e, "init", check=True)
    return e


def refused(env, *args, match: str, code: int | None = None, **kw):
    p = alpha(env, *args, **kw)
    assert p.returncode != 0, f"alpha {' '.join(args)} was allowed:\n{p.stdout}"
    if code is not None:
        assert p.returncode == code, (p.returncode, p.stderr)
    assert match.lower() in p.stderr.lower(), p.stderr
    assert "Traceback" not in p.stderr
    return p


def status(env) -> dict:
    return json.loads(alpha(env, "status", "--json", check=True).stdout)


def test_kill_switch_and_phase_rules(env):
    refused({**env, "EMERGENCY_STOP": "true"}, "kill", "off", "--reason", "let me send", match="EMERGENCY_STOP")
    assert status({**env, "EMERGENCY_STOP": "true"})["kill_switch"]["on"] is True
    refused(env, "kill", "on", match="--reason", code=2)  # no reason, no change
    refused(env, "kill", "on", "--reason", "   ", match="reason")
    assert status(env)["kill_switch"]["on"] is False
    refused(env, "phase", "set", "autonomous", "--reason", "skip ahead", match="one step at a time")
    refused(env, "phase", "set", "parallel", "--reason", "gate? what gate", match="gate")
    assert status(env)["phase"] == "shadow"
    alpha(env, "phase", "set", "parallel", "--reason", "break glass drill", "--force", "--actor", "olga",
          check=True)
    from sqlalchemy import create_engine, text

    eng = create_engine(env["DATABASE_URL"])
    with eng.connect() as c:
        data = c.execute(text("SELECT data FROM audit_log WHERE event = 'control.phase' ORDER BY seq DESC")).first()[0]
    eng.dispose()
    assert json.loads(data).get("forced") is True  # the override is on the record


def test_approval_rules(env):
    for phase in ("parallel", "assisted"):
        alpha(env, "phase", "set", phase, "--reason", "test", "--force", check=True)
    alpha(env, "submit", "-", input=json.dumps(email("a1", tier=2)) + "\n", check=True)
    [item] = json.loads(alpha(env, "approvals", "list", "--json", check=True).stdout)
    i = str(item["id"])
    refused(env, "approvals", "approve", i, "--actor", "GHL_MASTER", match="four-eyes")
    refused(env, "approvals", "approve", i, "--actor", "eve", match="needs the group 'approver'")
    refused(env, "approvals", "approve", i, "--actor", "nobody-at-all", match="not a user")
    refused(env, "approvals", "reject", i, "--reason", " ", "--actor", "bob", match="reason")
    alpha(env, "approvals", "edit", i, "--subject", "Edited", "--actor", "alice", check=True)
    refused(env, "approvals", "approve", i, "--actor", "cli:alice", match="four-eyes")
    [still] = json.loads(alpha(env, "approvals", "list", "--json", check=True).stdout)
    assert still["id"] == item["id"] and still["status"] == "pending"


def test_every_other_state_change_needs_a_reason_and_valid_values(env):
    refused(env, "breakers", "open", "ghl", match="--reason", code=2)
    refused(env, "breakers", "open", "ghl", "--reason", "", match="reason")
    refused(env, "breakers", "open", "not-an-api", "--reason", "x", match="not-an-api")
    refused(env, "maintenance", "on", "--reason", "", match="reason")
    refused(env, "domains", "set", "alphaswarm.example", "150", "--reason", "trust me", match="150")
    refused(env, "suppress", "remove", "someone@acme.io", match="--reason", code=2)
    refused(env, "suppress", "add", "not-an-email", match="not an email")
    refused(env, "outbox", "resolve", "999", "--outcome", "sent", match="--reason", code=2)
    refused(env, "outbox", "resolve", "999", "--outcome", "maybe", "--reason", "x", match="maybe")
    refused(env, "warmup", "set", "4", "--reason", "faster", match="warm")
    s = status(env)
    assert s["maintenance"]["on"] is False and all(b["state"] == "CLOSED" for b in s["breakers"])
