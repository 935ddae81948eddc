"""The `alpha` command-line contract, through real subprocesses."""
from __future__ import annotations

import json

import pytest

from tests.conftest import FORCE_INIT, LIVE, deep_merge
from tests.helpers import alpha, alpha_env, email, jsonl


@pytest.fixture
def env(db_url, config_factory, tmp_path):
    cfg = config_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                         warmup={"enabled": False})
    e = alpha_env(db_url, cfg, tmp_path)
    alpha(e, "init", *FORCE_INIT, check=True)
    return e


def test_submit_contract_same_order_and_malformed_lines(env):
    lines = [json.dumps(email("a1", to="a@a.io")), "{not json", json.dumps({"agent": "GHL_MASTER"}),
             json.dumps(email("a2", to="b@b.io", body="Act now!")), json.dumps(email("a1", to="a@a.io"))]
    p = alpha(env, "submit", "-", input="\n".join(lines) + "\n")
    assert p.returncode == 0, p.stderr
    out = jsonl(p.stdout)
    assert [o["status"] for o in out] == ["sent", "denied", "denied", "denied", "duplicate"]
    assert out[1]["reasons"] == ["INVALID_ACTION"] and out[2]["reasons"] == ["INVALID_ACTION"]
    assert out[3]["reasons"] == ["SPAM_CONTENT"]
    assert set(out[0]) == {"idempotency_key", "status", "reasons", "outbox_id"}
    assert out[0]["idempotency_key"] == "a1" and out[4]["outbox_id"] == out[0]["outbox_id"]


def test_check_email_contract(env, tmp_path):
    good = {k: v for k, v in email("x").items() if k in ("to", "from", "subject", "html")}
    p = alpha(env, "check-email", "-", input=json.dumps(good))
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["decision"] == "allow" and out["reasons"] == []
    assert out["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    bad = {"to": "a@acme.io", "from": "sales@alphaswarm.example", "subject": "Re: hello", "text": "Click here",
           "first_touch": True}
    p = alpha(env, "check-email", "-", input=json.dumps(bad))
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["decision"] == "deny"
    assert {r["code"] for r in out["reasons"]} == {"SPAM_CONTENT", "MISSING_UNSUBSCRIBE", "MISSING_POSTAL_ADDRESS",
                                                   "DECEPTIVE_SUBJECT"}
    assert all(r["detail"] for r in out["reasons"])
    # no quota consumed, nothing stored
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["outbox"] == {}


def test_status_kill_phase_breakers_audit_commands(env):
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["phase"] == "autonomous" and st["kill_switch"]["on"] is False
    assert set(st["usage"]) == {"monthly", "daily", "hourly", "per_domain_hourly", "min_delay_seconds"}
    alpha(env, "kill", "on", "--reason", "drill", "--actor", "ops", check=True)
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["kill_switch"]["on"] and st["kill_switch"]["changed_by"] == "ops"
    p = alpha(env, "submit", "-", input=json.dumps(email("z")) + "\n")
    assert jsonl(p.stdout)[0]["reasons"] == ["KILL_SWITCH"]
    alpha(env, "kill", "off", "--reason", "drill over", "--actor", "ops", check=True)
    p = alpha(env, "kill", "on")  # reason is required
    assert p.returncode == 2 and "--reason" in p.stderr and "Traceback" not in p.stderr
    alpha(env, "breakers", "open", "ghl", "--reason", "vendor down", "--actor", "ops", check=True)
    assert "ghl       OPEN" in alpha(env, "breakers", "list", check=True).stdout
    p = alpha(env, "breakers", "open", "nosuch", "--reason", "x")
    assert p.returncode == 1 and "unknown circuit breaker 'nosuch'" in p.stderr and "Traceback" not in p.stderr
    p = alpha(env, "phase", "set", "parallel", "--reason", "down", "--actor", "ops")
    assert p.returncode == 0 and "autonomous -> parallel" in p.stdout
    p = alpha(env, "phase", "set", "autonomous", "--reason", "skip")
    assert p.returncode == 1 and "one step at a time" in p.stderr
    p = alpha(env, "audit", "verify")
    assert p.returncode == 0 and "audit chain OK" in p.stdout


def test_bad_config_gives_one_clear_message_and_refuses_to_run(db_url, config_factory, tmp_path):
    cfg = config_factory(production={"email_limits": {"daily_limit": -5}, "rollout_phase": {"current": "live"}})
    e = alpha_env(db_url, cfg, tmp_path)
    p = alpha(e, "status")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"{cfg}/production.json: key 'email_limits.daily_limit' = -5" in p.stderr
    assert "rollout_phase.current' = \"live\"" in p.stderr and "shadow" in p.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_config_check_lists_every_problem_in_every_file(db_url, config_factory, tmp_path):
    from pathlib import Path

    cfg = Path(config_factory(production={"email_limits": {"daily_limit": -5}}))
    roster = json.loads((cfg / "approvers.json").read_text())
    roster["action_types"]["hot_lead"]["sla_minutes"] = "soon"
    (cfg / "approvers.json").write_text(json.dumps(roster))
    e = alpha_env(db_url, cfg, tmp_path)
    p = alpha(e, "config-check")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "production.json: key 'email_limits.daily_limit' = -5" in p.stderr
    assert "approvers.json: key 'action_types.hot_lead.sla_minutes' = \"soon\"" in p.stderr
    ok = alpha(alpha_env(db_url, config_factory(), tmp_path), "config-check", check=True).stdout
    assert "roster: 6 action types" in ok and "templates" in ok


def test_uninitialised_database_is_refused(db_url, config_factory, tmp_path):
    e = alpha_env(db_url, config_factory(), tmp_path)
    p = alpha(e, "submit", "-", input=json.dumps(email("a")) + "\n")
    assert p.returncode == 3 and "alpha init" in p.stderr and "Traceback" not in p.stderr
