"""Circuit breakers page: cards, timeline, force open/close through the confirmation dialog, roles."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.queries import audit_log
from engine.queries.audit_log import AuditFilter
from tests.console.conftest import ok, text

PAGE = "pages/breakers.py"
APIS = ["ghl", "linkedin", "clay", "supabase", "llm", "slack"]


def breaker(ctx, name: str):
    return next(b for b in ctx.app.breakers.list() if b.name == name)


def forced_rows(ctx) -> list[dict]:
    return audit_log.search(ctx.app, AuditFilter.of(events=["breaker.forced"]))["rows"]


def timeline(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def force(at, name: str, target: str, reason: str):
    at.button(key=f"force_{target}_{name}").click()
    at = ok(at.run())
    assert at.text_area(key="breaker_reason")  # the confirmation dialog is open
    at.text_area(key="breaker_reason").input(reason)
    at.button(key="breaker_confirm").click()
    return ok(at.run())


@pytest.mark.parametrize("username", ["ae", "approver"])
def test_other_roles_are_refused(ctx, username):
    at = ok(ctx.page(PAGE, username))
    assert "Access refused: this page needs the role ops or admin" in text(at.error)
    assert not at.button and not at.title


@pytest.mark.parametrize("username", ["ops", "admin"])
def test_a_card_per_breaker_and_an_empty_timeline(ctx, username):
    at = ok(ctx.page(PAGE, username))
    assert [t.value for t in at.title] == ["Circuit breakers"]
    for name in APIS:
        assert at.button(key=f"force_open_{name}").disabled is False
        assert at.button(key=f"force_close_{name}").disabled is True  # already closed
    assert text(at.markdown).count(":green-background[CLOSED]") == 6
    assert "No breaker changes in the last 24 hours" in text(at.info)
    fig = timeline(at)
    assert {tr["name"] for tr in fig["data"]} == {"CLOSED"} and sorted(fig["data"][0]["y"]) == sorted(APIS)


def test_force_open_then_close_with_a_reason(ctx):
    at = force(ctx.page(PAGE, "ops"), "ghl", "open", "GHL incident 4521")
    b = breaker(ctx, "ghl")
    assert (b.state, b.forced) == ("OPEN", True)
    assert "ghl forced OPEN." in text(at.success)
    assert at.button(key="force_open_ghl").disabled is True and at.button(key="force_close_ghl").disabled is False
    assert "never by itself: forced open" in text(at.markdown)
    rows = forced_rows(ctx)
    assert [(r["actor"], r["status"], r["data"]["reason"], r["data"]["before"]) for r in rows] == \
        [("console:ops", "OPEN", "GHL incident 4521", "CLOSED")]

    at = force(at, "ghl", "close", "GHL says resolved")
    b = breaker(ctx, "ghl")
    assert (b.state, b.forced) == ("CLOSED", False)
    rows = forced_rows(ctx)
    assert [(r["status"], r["data"]["reason"]) for r in rows] == [("CLOSED", "GHL says resolved"),
                                                                  ("OPEN", "GHL incident 4521")]
    changes = at.dataframe[-1].value
    assert changes["breaker"].tolist() == ["ghl", "ghl"] and changes["to"].tolist() == ["CLOSED", "OPEN"]
    assert changes["reason"].tolist() == ["GHL says resolved", "GHL incident 4521"]
    fig = timeline(at)
    assert {tr["name"] for tr in fig["data"]} == {"CLOSED", "OPEN", "change"}
    assert next(tr for tr in fig["data"] if tr["name"] == "OPEN")["y"] == ["ghl"]
    assert next(tr for tr in fig["data"] if tr["name"] == "change")["y"] == ["ghl", "ghl"]


def test_a_reason_is_required(ctx):
    at = force(ctx.page(PAGE, "admin"), "llm", "open", "   ")
    assert "A reason is required" in text(at.error)
    assert breaker(ctx, "llm").state == "CLOSED" and forced_rows(ctx) == []
    assert at.text_area(key="breaker_reason")  # still asking


def test_cancel_changes_nothing(ctx):
    at = ok(ctx.page(PAGE, "ops"))
    at.button(key="force_open_clay").click()
    at = ok(at.run())
    at.button(key="breaker_cancel").click()
    at = ok(at.run())
    assert not at.text_area and breaker(ctx, "clay").state == "CLOSED" and forced_rows(ctx) == []


def test_automatic_transitions_and_provider_errors_show_as_text(ctx):
    err = "<img src=x onerror=alert(1)> 503 from upstream"
    ctx.app.clock.now = datetime.now(timezone.utc) - timedelta(seconds=30)  # the page runs on the real clock
    for _ in range(ctx.app.breakers.cfg("slack").failure_threshold):
        ctx.app.breakers.record("slack", False, err)
    at = ok(ctx.page(PAGE, "ops"))
    assert ":red-background[**OPEN**]" in text(at.markdown) and "(in 4 min)" in text(at.markdown)  # retry at
    assert any(err in c.value for c in at.code)  # as code, never as markup
    assert not any("<img" in m.value for m in at.markdown)
    changes = at.dataframe[-1].value
    assert changes[["breaker", "from", "to", "how", "by"]].values.tolist() == \
        [["slack", "CLOSED", "OPEN", "automatic", "breaker:slack"]]
    assert next(tr for tr in timeline(at)["data"] if tr["name"] == "OPEN")["y"] == ["slack"]


def test_the_timeline_window(ctx):
    ctx.app.clock.now = datetime.now(timezone.utc) - timedelta(days=3)
    ctx.app.breakers.force("clay", "OPEN", "Clay maintenance", "cli:ops")
    at = ok(ctx.page(PAGE, "ops"))
    assert "No breaker changes in the last 24 hours" in text(at.info)
    at.selectbox(key="timeline_window").set_value("last 7 days")
    at = ok(at.run())
    changes = at.dataframe[-1].value
    assert changes[["breaker", "to", "how", "by", "reason"]].values.tolist() == \
        [["clay", "OPEN", "forced", "cli:ops", "Clay maintenance"]]
    opened = next(tr for tr in timeline(at)["data"] if tr["name"] == "OPEN")
    assert opened["y"] == ["clay"] and opened["x"][0] > 2.9 * 86400 * 1000  # open for the last 3 days
