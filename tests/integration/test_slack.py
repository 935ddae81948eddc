"""Slack alerts against a local fake webhook, on SQLite and PostgreSQL. Nothing leaves 127.0.0.1."""
from __future__ import annotations

import json
import logging
import socket

import pytest
from sqlmodel import select

from engine.adapters.slack import KINDS, SlackAlerter, build_payload, from_env, parse_retry_after
from engine.adapters.models import AlertLog, AuditEntry
from tests.fake_servers import SlackWebhookFake


@pytest.fixture
def slack():
    with SlackWebhookFake() as fake:
        yield fake


@pytest.fixture
def app(app_factory):
    return app_factory()


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def alerter(app, url, **kw) -> SlackAlerter:
    kw.setdefault("sleep", Sleeps())
    return SlackAlerter(app.store, app.clock, url, breakers=kw.pop("breakers", app.breakers), **kw)


def rows(app) -> list[AlertLog]:
    with app.store.read() as s:
        return list(s.exec(select(AlertLog).order_by(AlertLog.id)).all())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_block_kit_payload_with_text_fallback_is_posted_and_logged(app, slack):
    a = alerter(app, slack.url)
    row = a.alert("hot_lead", "Hot lead: Jane Doe", "Opened 3 times, replied <interested> & asked for a call",
                  fields={"Company": "Acme", "Score": 92, "Owner": None}, url="https://crm.example/leads/7")
    assert row.status == "sent" and row.error is None and row.id is not None
    assert slack.count == 1
    req = slack.requests[0]
    assert req.method == "POST" and req.path == slack.path
    assert req.headers["content-type"] == "application/json"
    p = req.json
    assert p["text"].startswith("[hot_lead] Hot lead: Jane Doe: Opened 3 times")
    types = [b["type"] for b in p["blocks"]]
    assert types == ["header", "section", "section", "context"]
    header, section, fields, context = p["blocks"]
    assert header["text"]["type"] == "plain_text" and "Hot lead: Jane Doe" in header["text"]["text"]
    assert section["text"]["type"] == "mrkdwn"
    assert "&lt;interested&gt; &amp; asked" in section["text"]["text"]  # mrkdwn control characters escaped
    assert {"type": "mrkdwn", "text": "*Company*\nAcme"} in fields["fields"]
    assert {"type": "mrkdwn", "text": "*Score*\n92"} in fields["fields"]
    ctx = context["elements"][0]["text"]
    assert "`hot_lead`" in ctx and "<https://crm.example/leads/7|open>" in ctx and "2026-11-24T15:00" in ctx
    stored = rows(app)
    assert len(stored) == 1 and stored[0].kind == "hot_lead" and stored[0].status == "sent"
    assert stored[0].payload == p and stored[0].text == p["text"] and stored[0].at == app.clock()


def test_payload_respects_block_kit_limits():
    p = build_payload("canary_failed", "T" * 500, "x" * 10_000, fields={f"k{i}": "v" * 3000 for i in range(15)})
    header, section, fields, _ctx = p["blocks"]
    assert len(header["text"]["text"]) <= 150
    assert len(section["text"]["text"]) <= 3000
    assert len(fields["fields"]) == 10 and all(len(f["text"]) <= 2000 for f in fields["fields"])
    assert len(p["text"]) <= 3000
    assert set(KINDS) >= {"hot_lead", "breaker_opened", "breaker_closed", "kill_switch", "phase_changed",
                          "approval_sla_breached", "canary_failed", "unsubscribe_test_failed", "test"}


def test_retry_after_parsing():
    from datetime import datetime, timezone

    now = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Tue, 24 Nov 2026 15:00:30 GMT", now) == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_429_retry_after_is_respected_and_bounded(app, slack):
    slack.queue(SlackWebhookFake.rate_limited("3"), SlackWebhookFake.ok())
    sleeps = Sleeps()
    row = alerter(app, slack.url, sleep=sleeps).alert("breaker_opened", "ghl breaker opened", "5 failures")
    assert row.status == "sent"
    assert sleeps == [3.0] and slack.count == 2
    assert slack.payloads[0] == slack.payloads[1]

    slack.reset()
    slack.always(SlackWebhookFake.rate_limited("2"))
    sleeps = Sleeps()
    row = alerter(app, slack.url, sleep=sleeps, max_retries=2).alert("kill_switch", "Kill switch ON", "drill")
    assert row.status == "failed" and row.error.startswith("rate_limited")
    assert sleeps == [2.0, 2.0] and slack.count == 3  # one try plus at most two retries

    slack.reset()
    slack.always(SlackWebhookFake.rate_limited("3600"))
    sleeps = Sleeps()
    row = alerter(app, slack.url, sleep=sleeps, max_total_wait=30).alert("kill_switch", "Kill switch ON", "drill")
    assert row.status == "failed" and "exceeds the wait budget" in row.error
    assert sleeps == [] and slack.count == 1  # an hour is not waited for, not even in part
    assert [r.status for r in rows(app)] == ["sent", "failed", "failed"]


FAILURES = [
    (SlackWebhookFake.error(500, "internal_error"), "HTTP 500 from Slack: internal_error"),
    (SlackWebhookFake.error(400, "invalid_payload"), "HTTP 400 from Slack: invalid_payload"),
    (SlackWebhookFake.error(404, "no_service"), "HTTP 404 from Slack: no_service"),
]


def test_failing_webhook_is_logged_and_never_raises(app, slack, caplog):
    a = alerter(app, slack.url)
    for reply, expect in FAILURES:
        slack.always(reply)
        with caplog.at_level(logging.WARNING, logger="alpha.slack"):
            row = a.alert("phase_changed", "Phase: assisted", "by ops")
        assert row.status == "failed" and row.error == expect
        assert expect in caplog.text
    assert [(r.status, r.error) for r in rows(app)] == [("failed", e) for _, e in FAILURES]


def test_timeout_and_refused_connection_are_failures_not_exceptions(app, slack):
    slack.queue(SlackWebhookFake.slow(3))
    row = alerter(app, slack.url, timeout=0.3).alert("canary_failed", "Canary failed", "seed inbox missing")
    assert row.status == "failed" and row.error.startswith("timeout")
    assert slack.count == 1  # a timeout is not retried: the message may have been posted

    url = f"http://127.0.0.1:{closed_port()}/services/T/B/abcdefgh12345678"
    row = alerter(app, url, timeout=1).alert("canary_failed", "Canary failed", "again")
    assert row.status == "failed" and row.error.startswith("transport error")
    assert [r.status for r in rows(app)] == ["failed", "failed"]


def test_not_configured_is_recorded_and_nothing_is_sent(app, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    a = from_env(app.store, app.clock, app.breakers)
    assert not a.configured
    row = a.alert("approval_sla_breached", "Approval waiting 4h", "outbox #12")
    assert row.status == "not_configured" and "SLACK_WEBHOOK_URL" in row.error
    assert [(r.kind, r.status) for r in rows(app)] == [("approval_sla_breached", "not_configured")]


def test_send_test_uses_the_env_url(app, slack, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    row = SlackAlerter.from_env(app.store, app.clock, app.breakers).send_test()
    assert row.status == "sent" and row.kind == "test"
    assert slack.payloads[0]["text"].startswith("[test]")


def test_webhook_url_never_stored_or_logged(app, slack, monkeypatch, caplog):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    token = slack.path.rsplit("/", 1)[1]
    a = from_env(app.store, app.clock, app.breakers, timeout=0.3, sleep=Sleeps())
    slack.queue(SlackWebhookFake.ok(), SlackWebhookFake.error(500, f"internal_error at {slack.url}"),
                SlackWebhookFake.rate_limited("1"), SlackWebhookFake.error(403, "invalid_token"),
                SlackWebhookFake.slow(2))
    with caplog.at_level(logging.DEBUG):
        results = [a.alert("hot_lead", f"alert {i}", f"text mentioning {slack.url}", fields={"url": slack.url},
                           url=slack.url) for i in range(4)]
    assert [r.status for r in results] == ["sent", "failed", "failed", "failed"]
    blob = json.dumps([{"text": r.text, "error": r.error, "payload": r.payload} for r in rows(app)])
    assert len(rows(app)) == 4
    assert slack.url not in blob and token not in blob and "[REDACTED]" in blob
    assert token not in caplog.text
    assert token not in repr(a)
    with app.store.read() as s:
        audit = json.dumps([e.data for e in s.exec(select(AuditEntry)).all()])
    assert token not in audit


def test_open_breaker_means_not_sent_and_failures_open_it(app, slack):
    a = alerter(app, slack.url)
    app.breakers.force("slack", "OPEN", "Slack incident", "ops")
    row = a.alert("hot_lead", "Hot lead", "x")
    assert row.status == "failed" and row.error.startswith("breaker_open") and slack.count == 0

    app.breakers.force("slack", "CLOSED", "resolved", "ops")
    slack.always(SlackWebhookFake.error(503, "service_unavailable"))
    statuses = [a.alert("hot_lead", f"Hot lead {i}", "x").status for i in range(5)]
    assert statuses == ["failed"] * 5 and slack.count == 5
    assert {b.name: b.state for b in app.breakers.list()}["slack"] == "OPEN"
    row = a.alert("hot_lead", "Hot lead 6", "x")
    assert row.error.startswith("breaker_open") and slack.count == 5

    # a 4xx is our problem, not Slack's health: it never opens the breaker
    app.breakers.force("slack", "CLOSED", "resolved", "ops")
    slack.always(SlackWebhookFake.error(400, "invalid_payload"))
    for i in range(6):
        a.alert("hot_lead", f"Hot lead {i}", "x")
    assert {b.name: b.state for b in app.breakers.list()}["slack"] == "CLOSED"


def test_a_broken_store_or_clock_still_never_raises(app, slack, monkeypatch):
    a = alerter(app, slack.url)

    def boom():
        raise RuntimeError("database is locked")

    monkeypatch.setattr(app.store, "write_plain", lambda: (_ for _ in ()).throw(RuntimeError("db down")))
    row = a.alert("kill_switch", "Kill switch", "on")
    assert row.status == "sent" and slack.count == 1  # sent; the log row could not be written, nothing raised

    a.clock = boom
    row = a.alert("kill_switch", "Kill switch", "on")
    assert row.status == "failed" and "database is locked" in row.error
