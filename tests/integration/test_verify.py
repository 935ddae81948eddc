"""`alpha verify` against local counterparts: passes when they answer, fails with a clear reason when not."""
from __future__ import annotations

import json

import pytest

from engine.integrations.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
from engine.webhooks import SignatureKeys, create_app
from tests.conftest import LIVE, deep_merge
from tests.fake_servers import SlackWebhookFake
from tests.helpers import alpha, alpha_env
from tests.integration.test_webhooks import ServerThread


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
    return alpha_env(db_url, cfg, tmp_path, GHL_API_KEY="sandbox-token-123456", GHL_LOCATION_ID=DEFAULT_LOCATION,
                     GHL_BASE_URL=ghl_url, ALPHA_WEBHOOK_URL=receiver.url, SLACK_WEBHOOK_URL=slack.url)


def test_verify_passes_against_the_sandbox_then_fails_when_it_stops(counterparts, db_url, config_factory, tmp_path):
    app, sandbox, ghl_url, receiver, slack = counterparts
    env = _env(db_url, config_factory, tmp_path, ghl_url, receiver, slack)
    p = alpha(env, "verify", "--json")
    report = json.loads(p.stdout)
    by = {c["name"]: c for c in report["checks"]}
    assert p.returncode == 0 and report["ok"], p.stdout + p.stderr
    assert by["ghl"]["status"] == "pass" and "SANDBOX" in by["ghl"]["reason"]
    assert by["slack"]["status"] == "pass" and len(slack.payloads) == 1
    assert by["llm"]["status"] == "not_configured"
    assert by["webhooks"]["status"] == "pass" and by["breakers"]["status"] == "pass"
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["mode"] == "SANDBOX" and st["executor"] == "ghl"

    sandbox.shutdown()
    sandbox.server_close()
    p = alpha(env, "verify", "--no-send")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("ghl"))
    assert "FAIL" in line and "could not connect" in line

    from sqlmodel import select

    from engine.models import VerifyRun

    with app.store.read() as s:
        runs = s.exec(select(VerifyRun).order_by(VerifyRun.id)).all()
    assert [r.ok for r in runs] == [True, False]
