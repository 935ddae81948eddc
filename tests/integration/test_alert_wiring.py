"""Kill switch, phase changes and breaker transitions raise Slack alerts, off the caller's path."""
from __future__ import annotations

import time

from engine.adapters.executors import DefiniteFailure
from tests.conftest import LIVE, deep_merge
from tests.fake_servers import SlackWebhookFake
from tests.helpers import email


def _texts(slack) -> list[str]:
    return [p.get("text", "") for p in slack.payloads]


def test_control_and_breaker_changes_alert_and_a_dead_slack_blocks_nothing(app_factory, monkeypatch):
    slack = SlackWebhookFake().start()
    try:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)

        class Down:
            name, api, live = "down", "ghl", False

            def execute(self, msg):
                raise DefiniteFailure("503 from provider")

        ex = Down()
        app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                          warmup={"enabled": False}, executors={"email": ex, "crm": ex})
        app.control.set_kill(True, "incident drill", "ops")
        app.control.set_kill(False, "drill over", "ops")
        for i in range(5):
            app.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io"))
        app.control.set_phase("assisted", "step down", "ops")
        app.alerts.flush()
        texts = " | ".join(_texts(slack))
        assert "Kill switch ON" in texts and "Kill switch off" in texts
        assert "Rollout phase autonomous -> assisted" in texts
        assert "Circuit breaker ghl: CLOSED -> OPEN" in texts

        # Slack now hangs: a control change still returns at once
        slack.always(SlackWebhookFake.slow(4))
        t = time.perf_counter()
        app.control.set_kill(True, "second drill", "ops")
        assert time.perf_counter() - t < 1.0
    finally:
        slack.stop()
