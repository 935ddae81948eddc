"""GHLExecutor through the real gateway (SQLite and PostgreSQL) against the GHL sandbox over loopback HTTP.

Every request the client builds and every response the sandbox returns is validated against GHL's specs.
"""
from __future__ import annotations

import pytest

from engine.core.errors import BreakerOpenError
from engine.adapters.executors import AmbiguousFailure, DefiniteFailure, Message
from engine.adapters.ghl import GHLServerError
from engine.adapters.ghl_executor import GHLExecutor, suppress_on_dnd
from engine.adapters.models import OutboxItem, Suppression
from tests.conftest import LIVE, deep_merge
from tests.helpers import email
from tests.ghl_fixtures import SEND_PATH, ctl, fake, make_client, sandbox, spec  # noqa: F401

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})
NO_WARMUP = {"enabled": False}


@pytest.fixture
def client_factory(make_client):
    return lambda **kw: make_client(**kw)


@pytest.fixture
def live(app_factory, client_factory):
    """An autonomous, live App whose email and CRM executor is GHL (the sandbox)."""
    ex = GHLExecutor(client_factory())
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP, executors={"email": ex, "crm": ex})
    ex.on_dnd = suppress_on_dnd(app)
    return app


def ghl_breaker(app):
    return {b.name: b for b in app.breakers.list()}["ghl"]


def row(app, oid) -> OutboxItem:
    with app.store.read() as s:
        return s.get(OutboxItem, oid)


# ------------------------------------------------------------------------------------- sent

def test_send_goes_out_through_ghl(live, ctl, spec):
    r = live.gateway.submit(email("k1", to="jane@acme.io", company="Acme"))
    assert r.status == "sent" and r.reasons == []
    [msg] = ctl.messages()
    [contact] = ctl.contacts()
    got = row(live, r.outbox_id)
    assert (got.status, got.provider, got.provider_message_id) == ("sent", "ghl", msg["messageId"])
    assert msg["contactId"] == contact["id"] and contact["email"] == "jane@acme.io"
    assert contact["companyName"] == "Acme" and contact["source"] == "alpha-swarm"
    assert (msg["to"], msg["from"], msg["subject"]) == ("jane@acme.io", "sales@alphaswarm.example",
                                                        "A question about your sales team")
    assert msg["html"] == email("k1")["html"]
    # the gateway's one-click headers exist but GHL's send body has no field for them
    assert got.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in msg["body"] and "headers" not in msg["body"]
    assert live.status()["executor"] == "ghl"
    assert spec.requests >= 4 and spec.requests == spec.responses


def test_an_existing_contact_is_used_not_duplicated(live, ctl):
    [seeded] = ctl.seed({"email": "jane@acme.io", "firstName": "Jane",
                         "dndSettings": {"Email": {"status": "inactive"}}})
    assert live.gateway.submit(email("k1")).status == "sent"
    assert live.gateway.submit(email("k2", subject="A second question")).status == "sent"
    assert [c["id"] for c in ctl.contacts()] == [seeded["id"]]
    assert {m["contactId"] for m in ctl.messages()} == {seeded["id"]}
    assert not [r for r in ctl.requests() if r["path"] == "/contacts/upsert"]


# ------------------------------------------------------------------------------------- ambiguous

@pytest.mark.parametrize("fault", ["drop_after", "timeout"])
def test_ambiguous_send_is_left_for_reconciliation_and_never_resent(live, ctl, fault):
    ctl.fault(fault, count=5, path=SEND_PATH, seconds=1.0)
    r = live.gateway.submit(email("k1"))
    assert r.status == "reconcile"
    assert len(ctl.messages()) == 1  # it did go out
    assert row(live, r.outbox_id).status == "reconcile"
    assert live.gateway.process_due() == []
    live.clock.advance(hours=2)
    assert live.gateway.process_due() == []
    assert live.gateway.submit(email("k1")).status == "duplicate"
    assert [x.id for x in live.reconciliation()] == [r.outbox_id]
    assert len(ctl.messages()) == 1
    assert len([q for q in ctl.requests() if q["path"] == SEND_PATH]) == 1
    assert ghl_breaker(live).consecutive_failures == 1


# ------------------------------------------------------------------------------------- 5xx and the breaker

def test_repeated_5xx_on_a_send_goes_to_reconciliation_and_opens_the_breaker(live, ctl):
    cfg = live.breakers.cfg("ghl")
    ctl.fault("503", count=100, path=SEND_PATH)
    n = cfg.failure_threshold + 2
    results = [live.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io")) for i in range(n)]
    assert [r.status for r in results[:cfg.failure_threshold]] == ["reconcile"] * cfg.failure_threshold
    assert [r.codes for r in results[cfg.failure_threshold:]] == [["BREAKER_OPEN"]] * 2
    assert ghl_breaker(live).state == "OPEN"
    ctl.clear_faults()
    live.clock.advance(hours=2)
    out = live.gateway.process_due()
    assert sorted(r.status for r in out) == ["sent", "sent"]  # only the two held by the breaker
    assert len(live.reconciliation()) == cfg.failure_threshold  # never retried: a person (or GHL) decides
    assert len([q for q in ctl.requests() if q["path"] == SEND_PATH]) == cfg.failure_threshold + 2


def test_repeated_5xx_before_the_send_defers_opens_the_breaker_then_recovers_through_half_open(live, ctl):
    cfg = live.breakers.cfg("ghl")
    ctl.fault("503", count=10_000, path="/contacts/search/duplicate")  # the look-up: certainly nothing sent
    n = cfg.failure_threshold + 2
    results = [live.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io")) for i in range(n)]
    assert [r.codes for r in results[:cfg.failure_threshold]] == [["PROVIDER_ERROR"]] * cfg.failure_threshold
    assert all(r.status == "deferred" for r in results)
    assert [r.codes for r in results[cfg.failure_threshold:]] == [["BREAKER_OPEN"]] * 2
    assert len([q for q in ctl.requests() if q["path"] == SEND_PATH]) == 0
    assert ghl_breaker(live).state == "OPEN" and ctl.messages() == []
    assert "503" in (row(live, results[0].outbox_id).last_error or "")

    ctl.clear_faults()
    assert live.gateway.process_due() == []  # nothing due while the breaker is open and backoff runs
    live.clock.advance(cfg.recovery_timeout_seconds + 1)
    out = live.gateway.process_due()
    assert [r.status for r in out].count("sent") >= cfg.success_threshold
    assert ghl_breaker(live).state == "CLOSED"
    out += live.gateway.process_due()
    assert sorted(r.status for r in out).count("sent") == n
    assert len(ctl.messages()) == n
    assert len({m["to"] for m in ctl.messages()}) == n  # each exactly once


def test_auth_failure_is_retried_later_and_counts_against_the_breaker(live, ctl):
    ctl.fault("401", count=1, path="/contacts")
    r = live.gateway.submit(email("k1"))
    assert (r.status, r.codes) == ("deferred", ["PROVIDER_ERROR"])
    assert "401" in r.reasons[0].detail
    assert ghl_breaker(live).consecutive_failures == 1
    live.clock.advance(61)
    assert [x.status for x in live.gateway.process_due()] == ["sent"]
    assert ghl_breaker(live).consecutive_failures == 0


def test_a_rejected_message_fails_for_good_without_touching_the_breaker(live, ctl):
    ctl.fault("400", count=1, path=SEND_PATH)
    r = live.gateway.submit(email("k1"))
    assert (r.status, r.codes) == ("denied", ["PROVIDER_REJECTED"])
    assert row(live, r.outbox_id).status == "failed"
    assert ghl_breaker(live).consecutive_failures == 0 and ctl.messages() == []
    live.clock.advance(hours=1)
    assert live.gateway.process_due() == []


def test_rate_limited_send_waits_and_goes_out_once(live, ctl, fake):
    ctl.fault("429", count=2, path=SEND_PATH, retry_after=2)
    assert live.gateway.submit(email("k1")).status == "sent"
    assert fake.sleeps == [2.0, 2.0] and len(ctl.messages()) == 1


# ------------------------------------------------------------------------------------- DND

@pytest.mark.parametrize("dnd", [  # more variants: test_email_dnd_active
    {"dndSettings": {"Email": {"status": "active", "message": "asked to stop", "code": "manual"}}},
    {"dnd": True},
], ids=["email-dnd-active", "global-dnd"])
def test_dnd_contact_is_refused_and_suppressed(live, ctl, dnd):
    ctl.seed({"email": "dnd@acme.io", **dnd})
    r = live.gateway.submit(email("k1", to="dnd@acme.io"))
    assert (r.status, r.codes) == ("denied", ["PROVIDER_REJECTED"])
    assert "dnd" in r.reasons[0].detail.lower() and "suppressed" in r.reasons[0].detail
    assert ctl.messages() == []
    assert not [q for q in ctl.requests() if q["path"] == SEND_PATH]
    with live.store.read() as s:
        sup = s.get(Suppression, "dnd@acme.io")
    assert sup is not None and (sup.reason, sup.source) == ("dnd", "ghl")
    assert ghl_breaker(live).consecutive_failures == 0
    again = live.gateway.submit(email("k2", to="dnd@acme.io"))
    assert (again.status, again.codes) == ("denied", ["SUPPRESSED_RECIPIENT"])


# ------------------------------------------------------------------------------------- the 422 quirk

def test_upsert_422_that_still_creates_the_contact_is_handled(live, ctl):
    ctl.fault("upsert_422_creates", count=1)
    r = live.gateway.submit(email("k1", to="new@acme.io"))
    assert r.status == "sent"
    [contact] = ctl.contacts()
    [msg] = ctl.messages()
    assert msg["contactId"] == contact["id"]
    upserts = [q for q in ctl.requests() if q["path"] == "/contacts/upsert"]
    assert [q["status"] for q in upserts] == [422]


def test_upsert_422_without_a_contact_is_a_rejection(live, ctl):
    ctl.fault("422", count=1, path="/contacts/upsert")
    r = live.gateway.submit(email("k1", to="new@acme.io"))
    assert (r.status, r.codes) == ("denied", ["PROVIDER_REJECTED"])
    assert ctl.contacts() == [] and ctl.messages() == []


# ------------------------------------------------------------------------------------- CRM writes

def test_crm_tag_and_upsert_actions(live, ctl):
    base = {"agent": "GHL_MASTER", "to": "lead@acme.io"}
    r = live.gateway.submit({**base, "action": "crm_upsert_contact", "idempotency_key": "u1", "company": "Acme",
                             "fields": {"firstName": "Lee", "lastName": "Ng"}, "tags": ["imported"]})
    assert r.status == "sent"
    r = live.gateway.submit({**base, "action": "crm_add_tag", "idempotency_key": "t1", "tags": ["hot", "q4"]})
    assert r.status == "sent"
    r = live.gateway.submit({**base, "action": "crm_remove_tag", "idempotency_key": "t2", "tags": ["q4"]})
    assert r.status == "sent"
    [c] = ctl.contacts()
    assert (c["firstName"], c["lastName"], c["companyName"]) == ("Lee", "Ng", "Acme")
    assert c["tags"] == ["imported", "hot"]
    assert row(live, r.outbox_id).provider_message_id == c["id"]
    assert ctl.messages() == []


def test_executor_outcomes_directly(client_factory, ctl):
    ex = GHLExecutor(client_factory())
    msg = Message(outbox_id=1, action="crm_delete_contact", to="a@acme.io", from_=None, subject=None, html=None,
                  text=None)
    with pytest.raises(DefiniteFailure) as e:
        ex.execute(msg)
    assert e.value.counts_against_breaker is False
    send = Message(outbox_id=2, action="send_email", to="b@acme.io", from_="sales@alphaswarm.example",
                   subject="s", html="<p>x</p>", text=None)
    ctl.fault("drop_after", count=1, path=SEND_PATH)
    with pytest.raises(AmbiguousFailure):
        ex.execute(send)
    ctl.fault("502", count=1, path=SEND_PATH)
    with pytest.raises(AmbiguousFailure):  # a 5xx on the send may have been processed
        ex.execute(send)
    ctl.fault("503", count=100, path="/contacts/search/duplicate")
    with pytest.raises(DefiniteFailure) as e:  # a 5xx before the send: certainly not sent
        ex.execute(send)
    assert e.value.counts_against_breaker is True
    ctl.clear_faults()
    assert ex.execute(send).message_id == ctl.messages()[-1]["messageId"]


# ------------------------------------------------------------------------------------- standalone breaker

def test_standalone_client_counts_calls_through_the_breaker(app_factory, client_factory, ctl):
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP)
    client = client_factory(breakers=app.breakers, max_attempts=1)
    threshold = app.breakers.cfg("ghl").failure_threshold
    ctl.fault("500", count=100, method="GET")
    for _ in range(threshold):
        with pytest.raises(GHLServerError):
            client.get_location()
    assert ghl_breaker(app).state == "OPEN"
    before = len(ctl.requests())
    with pytest.raises(BreakerOpenError):
        client.get_location()
    assert len(ctl.requests()) == before  # refused without calling GHL
    with pytest.raises(ValueError):
        GHLExecutor(client)  # the gateway already counts executor calls
