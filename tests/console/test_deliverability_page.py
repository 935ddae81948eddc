"""Deliverability page: sends per day against the cap, rates against thresholds, domain health, events, roles.

The page runs on the real clock (its window ends today), so data is arranged relative to the real today."""
from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta, timezone

import pytest

from tests.unit.test_deliverability import add_sends, add_suppressions
from tests.console.conftest import ok, text

PAGE = "pages/deliverability.py"


def chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id).proto.spec)


def frame(at, first_column: str):
    return next(d.value for d in at.dataframe if d.value.columns[0] == first_column)


def today_utc():
    return datetime.now(timezone.utc).date()


def at_day(days_ago: int, hour: int = 0) -> datetime:
    return datetime.combine(today_utc() - timedelta(days=days_ago), time(hour, 0, 1), tzinfo=timezone.utc)


@pytest.mark.parametrize("username", ["ae", "approver"])
def test_other_roles_are_refused(ctx, username):
    at = ok(ctx.page(PAGE, username))
    assert "Access refused: this page needs the role ops or admin" in text(at.error)
    assert not at.title and not at.get("plotly_chart")


@pytest.mark.parametrize("username", ["ops", "admin"])
def test_empty_window_says_how_sends_happen(ctx, username):
    at = ok(ctx.page(PAGE, username))
    assert [t.value for t in at.title] == ["Deliverability"]
    assert "No e-mail was sent in this window" in text(at.info)
    assert "No cooling, kill switch, maintenance or warm-up changes" in text(at.info)
    sends = chart(at, "dv_sends")
    cap = next(t for t in sends["data"] if t["name"] == "effective daily cap")
    assert len(cap["x"]) == 30 and set(cap["y"]) == {10}  # warm-up phase 1: 10 a day
    assert {m.label: m.value for m in at.metric}["Sent in window"] == "0"
    doms = frame(at, "domain")
    assert doms["domain"].tolist() == ["alphaswarm.example"] and doms["score"].tolist() == [100.0]


def test_numbers_match_the_arranged_sends(ctx):
    app = ctx.app
    add_sends(app, at_day(0), 3)
    add_sends(app, at_day(0), 1, status="reconcile")
    add_sends(app, at_day(0), 4, status="shadowed")                  # never counted
    add_sends(app, at_day(2), 12)                                    # over the cap of 10
    add_sends(app, at_day(3), 8, sender="news@mail.other.example")
    add_sends(app, at_day(45), 50)                                   # outside the 30-day window
    add_suppressions(app, at_day(2), 1, "bounced")
    add_suppressions(app, at_day(3), 2, "bounced", domain="mail.other.example")
    add_suppressions(app, at_day(3), 1, "complained", domain="mail.other.example")
    at = ok(ctx.page(PAGE, "ops"))

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sent in window"] == "23"
    assert metrics[f"Last day ({today_utc().isoformat()})"] == "4 / 10"
    assert metrics["Bounce rate"] == "13.04%"      # 3 / 23
    assert metrics["Complaint rate"] == "4.348%"   # 1 / 23

    sends = chart(at, "dv_sends")
    by_name = {t["name"]: dict(zip(t["x"], t["y"])) for t in sends["data"]}
    d = lambda n: (today_utc() - timedelta(days=n)).isoformat()  # noqa: E731
    assert by_name["sent"][d(0)] == 3 and by_name["awaiting reconciliation"][d(0)] == 1
    assert by_name["sent"][d(2)] == 12 and by_name["sent"][d(3)] == 8 and sum(by_name["sent"].values()) == 23
    assert by_name["over the cap"] == {d(2): 12}
    assert "1 day(s) above the effective cap" in text(at.warning)

    daily = frame(at, "day").set_index("day")
    assert daily.loc[d(0), "counted"] == 4 and daily.loc[d(2), "bounced"] == 1 and daily.loc[d(3), "complained"] == 1

    rates = frame(at, "sending domain").set_index("sending domain")
    assert rates.loc["all", ["sent", "bounced", "complained"]].tolist() == [23, 3, 1]
    assert rates.loc["alphaswarm.example", ["sent", "bounced", "bounce rate"]].tolist() == [15, 1, "6.67%"]
    assert rates.loc["mail.other.example", ["sent", "bounced", "complained"]].tolist() == [8, 2, 1]
    assert rates.loc["mail.other.example", "over threshold"] == "bounces, complaints"
    rf = chart(at, "dv_rates")
    limits = [t for t in rf["data"] if t["name"] == "domain-health maximum"]
    assert [t["y"][0] for t in limits] == [0.05, 0.001]


def test_domain_health_and_cooling_events(ctx):
    app = ctx.app
    app.clock.now = datetime.now(timezone.utc) - timedelta(hours=1)
    app.set_domain_health("alphaswarm.example", 42, "bounce storm", "test")
    app.control.set_kill(True, "bounces", "console:ops")
    at = ok(ctx.page(PAGE, "admin"))
    assert "Sending paused for cooling domain(s): alphaswarm.example" in text(at.error)
    assert {m.label: m.value for m in at.metric}["Cooling domains"] == "1"
    doms = frame(at, "domain").set_index("domain")
    assert doms.loc["alphaswarm.example", ["score", "state", "why"]].tolist() == [42, "COOLING: sends defer",
                                                                                  "bounce storm"]
    events = frame(at, "at")
    assert events["what"].tolist() == ["kill switch ON: all sending paused", "cooling started"]
    assert events["domain"].tolist() == ["", "alphaswarm.example"]


def test_an_impossible_window_is_explained(ctx):
    at = ok(ctx.page(PAGE, "ops"))
    end = today_utc()
    at.date_input(key="dv_window").set_value((end - timedelta(days=400), end))
    at = ok(at.run())
    assert "at most 366 days" in text(at.error)
    at.date_input(key="dv_window").set_value((end - timedelta(days=6), end))
    at = ok(at.run())
    assert len(chart(at, "dv_sends")["data"][0]["x"]) == 7


def test_domain_health_colours_carry_meaning(ctx):
    """Issue 13: a healthy domain's bar was red (the theme's primary colour). Green healthy, orange near the
    threshold, red only below it."""
    app = ctx.app
    cfg = app.settings.production.domain_health
    app.clock.now = datetime.now(timezone.utc) - timedelta(hours=1)
    at = ok(ctx.page(PAGE, "ops"))
    bars = chart(at, "dv_health")["data"][0]
    assert bars["y"] == ["alphaswarm.example"] and bars["marker"]["color"] == ["#15803d"]  # healthy: green
    assert frame(at, "domain")["health"].tolist() == ["healthy"]
    app.set_domain_health("alphaswarm.example", cfg.recovery_threshold + 1, "a few bounces", "test")
    at = ok(at.run())
    assert chart(at, "dv_health")["data"][0]["marker"]["color"] == ["#d97706"]  # near the threshold: orange
    assert frame(at, "domain")["health"].tolist() == ["near the threshold"]
    app.set_domain_health("alphaswarm.example", cfg.cooling_threshold - 1, "bounce storm", "test")
    at = ok(at.run())
    assert chart(at, "dv_health")["data"][0]["marker"]["color"] == ["#b91c1c"]  # below: red
    assert re.fullmatch(r"\w{3} \d{1,2} \w{3}( \d{4})? \d\d:\d\d:\d\d \w+",
                        frame(at, "at")["at"].tolist()[0])  # not ISO
