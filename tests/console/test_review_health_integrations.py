"""Review of issue 13 item 5 on the Integrations & settings page: a verify run that was ready for live phases but
is older than readiness accepts (24 h) is not shown green.

Seen in review: a passing run from three days ago showed a green "Last verify passed" while readiness (and the
phase gate) said "integrations verified: older than 24 h"."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.adapters.models import VerifyRun
from tests.console.conftest import no_exception, text

PAGE = "pages/integrations.py"
LIVE_READY = [{"name": n, "status": "pass", "reason": "answered", "seconds": 0.1}
              for n in ("ghl", "slack", "webhooks", "breakers")]


def _stored(app, at: datetime) -> None:
    with app.store.write_plain() as s:
        s.add(VerifyRun(at=at, ok=True, results=LIVE_READY))


def test_a_passing_verify_older_than_a_day_is_not_green(ctx, monkeypatch):
    monkeypatch.setenv("ALPHA_WEBHOOK_URL", "http://127.0.0.1:9")
    _stored(ctx.app, datetime.now(UTC) - timedelta(days=3))
    at = no_exception(ctx.page(PAGE, "ops"))
    assert "Last verify passed" not in text(at.success), text(at.success)
    shown = text(at.warning)
    assert "Last verify passed" in shown and "3 days ago" in shown and "24 h" in shown, shown
    assert "alpha verify" in shown


def test_a_recent_passing_verify_is_green(ctx, monkeypatch):
    monkeypatch.setenv("ALPHA_WEBHOOK_URL", "http://127.0.0.1:9")
    _stored(ctx.app, datetime.now(UTC) - timedelta(hours=2))
    at = no_exception(ctx.page(PAGE, "ops"))
    assert "Last verify passed" in text(at.success)
    assert "Last verify passed" not in text(at.warning)
