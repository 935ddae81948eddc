"""`alpha verify` against local counterparts: it says whether the local sandbox loop works and, separately, whether
every integration a live phase needs is configured, real and passing; it exits 0 only for the latter (or, with
--sandbox, for the former)."""
from __future__ import annotations

import json

import pytest

from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
from engine.entrypoints.webhooks import SignatureKeys, create_app
from tests.conftest import LIVE, deep_merge
from tests.fake_servers import SlackWebhookFake
from tests.helpers import alpha, alpha_env
from tests.integration.test_webhooks import ServerThread

UNSET = {"GHL_API_KEY": "", "GHL_LOCATION_ID": "", "GHL_BASE_URL": "", "SLACK_WEBHOOK_URL": "",
         "ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""}


@pytest.fixture
def counterparts(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}))
    sandbox, ghl_url = start_sandbox()
    receiver = ServerThread(create_app(app, keys=SignatureKeys()))
    slack = SlackWebhookFake().start()
    yield app, sandbox, ghl_url, receiver, slack
    slack.stop()
    receiver.stop()
    sandbox.shutdown()


def _env(db_url, config_factory, tmp_path, ghl_url, receiver, slack):
    cfg = config_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}))
    return alpha_env(db_url, cfg, tmp_path, **{**UNSET, "GHL_API_KEY": "sandbox-token-123456",
                                               "GHL_LOCATION_ID": DEFAULT_LOCATION, "GHL_BASE_URL": ghl_url,
                                               "ALPHA_WEBHOOK_URL": receiver.url, "SLACK_WEBHOOK_URL": slack.url})


def test_nothing_configured_is_not_ready_for_live_phases(counterparts, db_url, config_factory, tmp_path):
    """Seen: `alpha verify` passed with GHL, Slack and the LLM all unconfigured."""
    app, _sandbox, _ghl_url, receiver, _slack = counterparts
    env = alpha_env(db_url, config_factory(), tmp_path, **UNSET, ALPHA_WEBHOOK_URL=receiver.url)
    p = alpha(env, "verify")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert "ready for live phases: NO (ghl not configured; slack not configured)" in p.stdout
    assert "ready for sandbox: YES" in p.stdout
    llm = next(x for x in p.stdout.splitlines() if x.startswith("llm"))
    assert "NOT_CONFIGURED" in llm and "not required" in llm  # drafting falls back to templates by design
    assert "verify: FAIL" in p.stdout and "--sandbox" in p.stdout
    # the local loop works: --sandbox accepts it, and says it is not ready for live
    p = alpha(env, "verify", "--sandbox")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verify: PASS (sandbox loop; not ready for live phases)" in p.stdout
    report = json.loads(alpha(env, "verify", "--json").stdout)
    assert report["ok"] is False and report["ready_for_live"] is False and report["ready_for_sandbox"] is True
    assert report["live_blockers"] == ["ghl not configured", "slack not configured"]


def test_a_sandbox_ghl_is_not_green_then_a_stopped_sandbox_fails(counterparts, db_url, config_factory, tmp_path):
    """Seen: a sandbox GHL counted as green."""
    app, sandbox, ghl_url, receiver, slack = counterparts
    env = _env(db_url, config_factory, tmp_path, ghl_url, receiver, slack)
    p = alpha(env, "verify", "--json")
    report = json.loads(p.stdout)
    by = {c["name"]: c for c in report["checks"]}
    assert p.returncode == 1 and report["ok"] is False, p.stdout + p.stderr
    assert by["ghl"]["status"] == "sandbox" and "SANDBOX" in by["ghl"]["reason"] and by["ghl"]["live"] is False
    # the Slack fake on 127.0.0.1 takes the test message, but a local stand-in is no live evidence either
    assert by["slack"]["status"] == "sandbox" and len(slack.payloads) == 1 and by["slack"]["live"] is False
    assert by["llm"]["status"] == "not_configured" and by["llm"]["required"] is False
    assert by["webhooks"]["status"] == "pass" and by["breakers"]["status"] == "pass"
    assert report["ready_for_sandbox"] is True and report["ready_for_live"] is False
    assert report["summary"] == "ready for live phases: NO (ghl is the local sandbox; slack is a local stand-in)"
    assert alpha(env, "verify", "--sandbox", "--no-send").returncode == 0
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["mode"] == "SANDBOX" and st["executor"] == "ghl"

    sandbox.shutdown()
    sandbox.server_close()
    p = alpha(env, "verify", "--no-send", "--sandbox")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("ghl"))
    assert "FAIL" in line and "could not connect" in line
    assert "ready for sandbox: NO (ghl failed)" in p.stdout

    from sqlmodel import select

    from engine.adapters.models import VerifyRun

    with app.store.read() as s:
        runs = s.exec(select(VerifyRun).order_by(VerifyRun.id)).all()
    assert [r.ok for r in runs] == [False, False, False]  # stored ok: ready for live phases


def test_ready_for_live_needs_every_required_integration_real_and_tested(counterparts, monkeypatch):
    """The only green: GHL real and answering, Slack's test message delivered, receiver up, breakers closed."""
    import engine.services.verify as verify

    app, _sandbox, ghl_url, receiver, slack = counterparts
    for k, v in {**UNSET, "GHL_API_KEY": "token-123456", "GHL_LOCATION_ID": DEFAULT_LOCATION,
                 "GHL_BASE_URL": ghl_url, "SLACK_WEBHOOK_URL": slack.url}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ALPHA_WEBHOOK_URL", raising=False)
    monkeypatch.setattr(verify, "is_sandbox_url", lambda url: False)  # the fakes stand in for the real services
    monkeypatch.setattr(verify, "is_sandbox_location", lambda loc: False)  # (the sandbox's answer names it)
    app._alerter = None
    r = verify.run_verify(app, send_slack=True, webhook_url=receiver.url)
    assert r["ok"] is True and r["ready_for_live"] is True, r
    assert r["summary"] == "ready for live phases: YES" and r["live_blockers"] == []
    assert any("llm not configured, not required" in n for n in r["notes"])
    # --no-send: Slack is configured but not tested, which is not a pass for live
    r = verify.run_verify(app, send_slack=False, webhook_url=receiver.url)
    assert r["ok"] is False and r["ready_for_sandbox"] is True
    assert r["live_blockers"] == ["slack configured, not tested (--no-send)"]
    # a configured LLM that fails is a failure, for the sandbox loop too
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    app._llm = None
    r = verify.run_verify(app, send_slack=True, webhook_url=receiver.url)
    assert r["ok"] is False and r["ready_for_sandbox"] is False and "llm failed" in r["live_blockers"]


def test_sandbox_url_covers_every_loopback_form():
    from engine.services.verify import is_sandbox_url

    for url in ("http://127.0.0.1:8765", "http://127.0.0.2:1", "http://localhost:1", "http://[::1]:8",
                "http://ghl.localhost/x"):
        assert is_sandbox_url(url), url
    for url in ("https://services.leadconnectorhq.com", "http://192.0.2.10:80", "https://example.com"):
        assert not is_sandbox_url(url), url


def test_stored_runs_from_before_the_sandbox_status_are_read_truthfully():
    """A run stored by the old code ("pass" for a sandbox GHL, "skipped" Slack) is not live evidence."""
    from engine.services.verify import assess

    old = [{"name": "ghl", "status": "pass", "reason": "SANDBOX location x fetched"},
           {"name": "slack", "status": "skipped", "reason": "configured; no test message sent (--no-send)"},
           {"name": "llm", "status": "not_configured", "reason": "no LLM key set"},
           {"name": "webhooks", "status": "pass", "reason": "ok"}, {"name": "breakers", "status": "pass"}]
    v = assess(old)
    assert v["ready_for_sandbox"] is True and v["ready_for_live"] is False
    assert v["live_blockers"] == ["ghl is the local sandbox", "slack configured, not tested (--no-send)"]
    assert assess(old[2:])["live_blockers"] == ["ghl not checked", "slack not checked"]
