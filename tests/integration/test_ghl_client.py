"""GHLClient against the local GHL sandbox over real loopback HTTP.

Every request the client builds and every response the sandbox returns is validated against GHL's OpenAPI
specs (tests/ghl_spec.py); waits go through an injected sleep so fault tests stay fast.
"""
from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from engine.adapters.ghl import (VERSION_CONTACTS, VERSION_CONVERSATIONS, VERSION_LOCATIONS, GHLAmbiguousSend,
                                     GHLAuthError, GHLError, GHLNotFound, GHLRateLimited, GHLServerError,
                                     GHLTransportError, GHLValidationError, RateLimiter, email_dnd_active,
                                     parse_retry_after)
from engine.adapters.ghl_sandbox import DEFAULT_LOCATION
from tests.ghl_spec import component_schema, spec_dict

from tests.ghl_fixtures import (SEND_PATH, TOKEN, FakeTime, ctl, fake, make_client, sandbox,  # noqa: F401
                                spec)


@pytest.fixture
def client(make_client):
    return make_client()


def sends(ctl) -> list[dict]:
    return [r for r in ctl.requests() if (r["method"], r["path"]) == ("POST", SEND_PATH)]


def new_contact(client, email="jane@acme.io", **fields) -> dict:
    return client.upsert_contact({"email": email, **fields})["contact"]


# ------------------------------------------------------------------------------------- happy paths

def test_contact_lookup_upsert_get_and_location(client, ctl, spec):
    assert client.find_contact_by_email("jane+sales@acme.io") is None
    first = client.upsert_contact({"email": "jane+sales@acme.io", "firstName": "Jane", "companyName": "Acme"})
    assert first["new"] is True
    cid = first["contact"]["id"]
    found = client.find_contact_by_email("Jane+Sales@acme.io")
    assert found["id"] == cid and found["email"] == "jane+sales@acme.io"
    again = client.upsert_contact({"email": "jane+sales@acme.io", "lastName": "Doe"})
    assert again["new"] is False and again["contact"]["id"] == cid
    got = client.get_contact(cid)
    assert (got["firstName"], got["lastName"], got["companyName"]) == ("Jane", "Doe", "Acme")
    assert client.get_location()["id"] == DEFAULT_LOCATION
    assert len(ctl.contacts()) == 1
    assert spec.requests == spec.responses == 6


def test_tags_add_and_remove(client, ctl):
    cid = new_contact(client)["id"]
    assert client.add_tags(cid, ["hot", "q4"]) == ["hot", "q4"]
    assert client.add_tags(cid, ["hot"]) == ["hot", "q4"]  # idempotent
    assert client.remove_tags(cid, ["q4"]) == ["hot"]
    assert ctl.contacts()[0]["tags"] == ["hot"]


def test_send_email_records_exactly_one_message(client, ctl):
    cid = new_contact(client)["id"]
    resp = client.send_email(cid, "A question", "<p>Hi</p>", "sales@alphaswarm.example", email_to="jane@acme.io")
    assert resp["messageId"] and resp["conversationId"] and resp["status"] == "pending"
    [msg] = ctl.messages()
    assert msg["messageId"] == resp["messageId"]
    assert (msg["to"], msg["from"], msg["subject"], msg["html"]) == ("jane@acme.io", "sales@alphaswarm.example",
                                                                     "A question", "<p>Hi</p>")
    assert msg["body"]["type"] == "Email" and "subType" not in msg["body"] and "status" not in msg["body"]


def test_every_call_carries_bearer_accept_and_the_version_its_spec_requires(client, ctl):
    # the versions the client uses are exactly the ones the spec files list
    for name, path, method, version in (
            ("contacts", "/contacts/search/duplicate", "get", VERSION_CONTACTS),
            ("contacts", "/contacts/upsert", "post", VERSION_CONTACTS),
            ("contacts", "/contacts/{contactId}", "get", VERSION_CONTACTS),
            ("contacts", "/contacts/{contactId}/tags", "post", VERSION_CONTACTS),
            ("contacts", "/contacts/{contactId}/tags", "delete", VERSION_CONTACTS),
            ("conversations", "/conversations/messages", "post", VERSION_CONVERSATIONS),
            ("locations", "/locations/{locationId}", "get", VERSION_LOCATIONS)):
        params = spec_dict(name)["paths"][path][method]["parameters"]
        [v] = [p for p in params if p["name"] == "Version"]
        assert v["required"] is True and v["schema"]["enum"] == [version], (path, method)
    cid = new_contact(client)["id"]
    client.find_contact_by_email("jane@acme.io")
    client.get_contact(cid)
    client.add_tags(cid, ["a"])
    client.remove_tags(cid, ["a"])
    client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    client.get_location()
    seen = {}
    for r in ctl.requests():
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["accept"] == "application/json"
        assert "authorization" not in h  # the sandbox never stores it
        seen[(r["method"], r["path"].split("/")[1])] = h["version"]
    assert seen == {("POST", "contacts"): VERSION_CONTACTS, ("GET", "contacts"): VERSION_CONTACTS,
                    ("DELETE", "contacts"): VERSION_CONTACTS, ("POST", "conversations"): VERSION_CONVERSATIONS,
                    ("GET", "locations"): VERSION_LOCATIONS}


def test_sandbox_requires_token_and_the_right_version_with_ghl_error_bodies(sandbox, ctl, spec):
    raw = httpx.Client(base_url=sandbox, event_hooks={"response": [spec.on_response]})
    ok = {"Authorization": f"Bearer {TOKEN}", "Version": VERSION_CONVERSATIONS}
    body = {"type": "Email", "contactId": "nobody", "html": "<p>x</p>"}
    r = raw.post(SEND_PATH, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "Version" in r.json()["message"]
    r = raw.post(SEND_PATH, json=body, headers={**ok, "Version": VERSION_CONTACTS})  # contacts' version
    assert r.status_code == 400 and VERSION_CONVERSATIONS in r.json()["message"]
    r = raw.get("/contacts/search/duplicate", params={"locationId": DEFAULT_LOCATION, "email": "a@b.io"},
                headers={"Version": VERSION_CONTACTS})
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    r = raw.get(f"/locations/{DEFAULT_LOCATION}", headers={"Authorization": "Bearer wrong", "Version": "2021-07-28"})
    assert r.status_code == 401
    r = raw.post(SEND_PATH, json=body, headers=ok)
    assert r.status_code == 400 and r.json()["message"] == "Contact not found"
    for r in ctl.requests():
        assert r["status"] in (400, 401)
    raw.close()
    assert ctl.messages() == [] and spec.responses == 5


def test_rate_limit_headers_on_every_response(sandbox, ctl, client):
    client.get_location()
    raw = httpx.Client(base_url=sandbox)
    for r in (raw.get(f"/locations/{DEFAULT_LOCATION}", headers={"Authorization": f"Bearer {TOKEN}",
                                                                "Version": VERSION_LOCATIONS}),
              raw.get(f"/locations/{DEFAULT_LOCATION}"),
              raw.get("/nowhere")):
        for h in ("X-RateLimit-Max", "X-RateLimit-Remaining", "X-RateLimit-Interval-Milliseconds",
                  "X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining"):
            assert r.headers[h].isdigit(), (r.status_code, h)
    assert r.status_code == 404 and int(r.headers["X-RateLimit-Remaining"]) == 100 - 4
    raw.close()


# ------------------------------------------------------------------------------------- 429

def test_429_with_retry_after_waits_as_told_and_sends_once(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("429", count=2, path=SEND_PATH, retry_after=3)
    resp = client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert fake.sleeps == [3.0, 3.0]
    assert len(sends(ctl)) == 3
    [msg] = ctl.messages()
    assert msg["messageId"] == resp["messageId"]


def test_429_retry_after_as_http_date(client, ctl, fake):
    cid = new_contact(client)["id"]
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=5), usegmt=True)
    ctl.fault("429", count=1, path=SEND_PATH, retry_after=when)
    client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert len(fake.sleeps) == 1 and 3 <= fake.sleeps[0] <= 5
    assert len(ctl.messages()) == 1


def test_429_without_retry_after_backs_off_exponentially(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("429", count=3, path=SEND_PATH)
    client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert fake.sleeps == [0.5, 1.0, 2.0]
    assert len(ctl.messages()) == 1 and len(sends(ctl)) == 4


def test_429_burst_beyond_the_attempts_raises_rate_limited_and_sends_nothing(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("429", count=20, path=SEND_PATH)
    with pytest.raises(GHLRateLimited) as e:
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert e.value.status == 429 and e.value.retry_after is not None
    assert len(sends(ctl)) == 4 and len(fake.sleeps) == 3 and sum(fake.sleeps) <= 60
    assert ctl.messages() == []


def test_429_retry_after_beyond_the_wait_budget_raises_at_once(client, ctl, fake):
    ctl.fault("429", count=1, retry_after=600)
    with pytest.raises(GHLRateLimited) as e:
        client.get_location()
    assert e.value.retry_after == 600 and fake.sleeps == []


def test_parse_retry_after():
    now = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), lambda: now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), lambda: now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


# ------------------------------------------------------------------------------------- 5xx

@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_5xx_on_reads_is_retried(client, ctl, fake, status):
    cid = new_contact(client)["id"]
    ctl.fault(status, count=2, method="GET")
    assert client.get_contact(cid)["id"] == cid
    ctl.fault(status, count=1, method="GET")
    assert client.find_contact_by_email("jane@acme.io")["id"] == cid
    assert fake.sleeps == [0.5, 1.0, 0.5]


def test_5xx_on_reads_gives_up_after_the_attempts(client, ctl, fake):
    ctl.fault("503", count=10, method="GET")
    with pytest.raises(GHLServerError) as e:
        client.get_location()
    assert e.value.status == 503 and e.value.message == "Service Unavailable"
    assert len(fake.sleeps) == 3


def test_5xx_on_a_send_is_ambiguous_and_not_retried(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("503", count=5, path=SEND_PATH)
    with pytest.raises(GHLAmbiguousSend):
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert len(sends(ctl)) == 1 and fake.sleeps == [] and ctl.messages() == []


def test_504_on_a_send_is_ambiguous(client, ctl):
    cid = new_contact(client)["id"]
    ctl.fault("504", count=1, path=SEND_PATH)
    with pytest.raises(GHLAmbiguousSend):
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert len(sends(ctl)) == 1


# ------------------------------------------------------------------------------------- timeouts and drops

def test_timeout_on_a_send_is_ambiguous_and_never_retried(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("timeout", count=3, path=SEND_PATH, seconds=1.5)  # GHL processed it, then was too slow
    t0 = time.monotonic()
    with pytest.raises(GHLAmbiguousSend) as e:
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert time.monotonic() - t0 < 1.4  # gave up at the client's 0.5 s timeout
    assert "may have been sent" in str(e.value)
    assert len(ctl.messages()) == 1 and len(sends(ctl)) == 1 and fake.sleeps == []


def test_timeout_before_processing_is_still_ambiguous(client, ctl):
    cid = new_contact(client)["id"]
    ctl.fault("timeout", count=1, path=SEND_PATH, seconds=1.5, process=False)
    with pytest.raises(GHLAmbiguousSend):
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert ctl.messages() == [] and len(sends(ctl)) == 1


def test_drop_after_processing_a_send_is_ambiguous_with_one_message(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("drop_after", count=3, path=SEND_PATH)
    with pytest.raises(GHLAmbiguousSend):
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert len(ctl.messages()) == 1 and len(sends(ctl)) == 1 and fake.sleeps == []


def test_drop_before_processing_a_send_records_no_message(client, ctl):
    cid = new_contact(client)["id"]
    ctl.fault("drop_before", count=3, path=SEND_PATH)
    with pytest.raises(GHLAmbiguousSend):  # the client cannot tell it from drop_after: never retried
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    assert ctl.messages() == [] and len(sends(ctl)) == 1


def test_drops_and_timeouts_on_reads_are_retried(client, ctl, fake):
    cid = new_contact(client)["id"]
    ctl.fault("drop_before", count=1, method="GET")
    ctl.fault("timeout", count=1, method="GET", seconds=1.0)
    assert client.get_contact(cid)["id"] == cid
    assert fake.sleeps == [0.5, 1.0]


def test_slow_answer_within_the_timeout_is_fine(client, ctl):
    ctl.fault("slow", count=1, seconds=0.1)
    assert client.get_location()["id"] == DEFAULT_LOCATION


def test_connection_refused_is_a_transport_error_not_an_ambiguous_send(make_client, fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(GHLTransportError) as e:
        client.send_email("c1", "s", "<p>x</p>", "sales@alphaswarm.example")
    assert not isinstance(e.value, GHLAmbiguousSend) and len(fake.sleeps) == 3


# ------------------------------------------------------------------------------------- errors

def test_upsert_422_quirk_creates_the_contact_anyway(client, ctl):
    ctl.fault("upsert_422_creates", count=1)
    with pytest.raises(GHLValidationError) as e:
        client.upsert_contact({"email": "quirk@acme.io"})
    assert e.value.status == 422 and "email must be an email" in e.value.message
    assert isinstance(e.value.body["message"], list)
    assert client.find_contact_by_email("quirk@acme.io") is not None
    assert len(ctl.contacts()) == 1


def test_errors_are_typed_and_carry_ghls_message(make_client, ctl):
    client = make_client()
    with pytest.raises(GHLValidationError) as e:
        client.get_contact("doesNotExist")
    assert (e.value.status, e.value.message) == (400, "Contact not found")
    with pytest.raises(GHLValidationError) as e:
        client.upsert_contact({"email": "not-an-email"})
    assert e.value.status == 422 and e.value.message == "email must be an email"
    with pytest.raises(GHLAuthError) as e:
        make_client(location_id="someoneElsesLocation").get_location()
    assert e.value.status == 403 and "does not have access" in e.value.message
    ctl.fault("404", count=1)
    with pytest.raises(GHLNotFound):
        client.get_location()
    with pytest.raises(GHLAuthError) as e:
        make_client(api_key="pit-wrong-token-9876543210").get_location()
    assert (e.value.status, e.value.message) == (401, "Invalid JWT")


def test_the_api_key_never_appears_in_errors_or_logs(make_client, ctl, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client()
    errors: list[GHLError] = []
    ctl.fault("503", count=10, method="GET")
    for call in (client.get_location, lambda: client.get_contact("x"),
                 lambda: make_client(api_key=TOKEN + "-x").get_location()):
        try:
            call()
        except GHLError as e:
            errors.append(e)
    ctl.clear_faults()
    cid = new_contact(client)["id"]
    ctl.fault("drop_after", count=1, path=SEND_PATH)
    with pytest.raises(GHLAmbiguousSend) as e:
        client.send_email(cid, "s", "<p>x</p>", "sales@alphaswarm.example")
    errors.append(e.value)
    assert len(errors) == 4
    for err in errors:
        assert TOKEN not in str(err) and TOKEN not in repr(err) and TOKEN not in repr(err.body)
    assert TOKEN not in repr(client) and TOKEN not in caplog.text
    assert "503" in caplog.text  # the retries were logged


# ------------------------------------------------------------------------------------- rate limiting

def test_limiter_sliding_window_and_daily_budget():
    fake = FakeTime()
    lim = RateLimiter(clock=fake.clock, sleep=fake)
    for _ in range(100):
        lim.acquire()
        fake.now += 0.01
    assert fake.sleeps == []
    lim.acquire()  # the 101st within 10 s waits for the oldest to leave the window
    assert fake.sleeps == [pytest.approx(10 - 1.0)]
    fake.now += 10
    lim.acquire()
    assert len(fake.sleeps) == 1
    day = RateLimiter(daily=3, clock=fake.clock, sleep=fake)
    for _ in range(3):
        day.acquire()
    with pytest.raises(GHLRateLimited):
        day.acquire()
    fake.now += 24 * 3600 + 60
    day.acquire()


def test_limiter_honours_server_headers():
    fake = FakeTime()
    lim = RateLimiter(clock=fake.clock, sleep=fake)
    lim.observe(httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "2500"}))
    lim.acquire()
    assert fake.sleeps == [2.5]
    lim.observe(httpx.Headers({"X-RateLimit-Remaining": "7", "X-RateLimit-Daily-Remaining": "0"}))
    with pytest.raises(GHLRateLimited):
        lim.acquire()


def test_client_respects_the_servers_remaining_budget_without_hitting_429(make_client, ctl):
    ctl.reset(burst_max=3, interval_ms=300)
    client = make_client(sleep=time.sleep, clock=time.monotonic)  # real time: the sandbox's window is real
    for _ in range(7):
        client.get_location()
    statuses = [r["status"] for r in ctl.requests()]
    assert statuses == [200] * 7
    assert client.limiter.waited >= 0.5  # two 300 ms pauses, less scheduling slack


# ------------------------------------------------------------------------------------- DND helper

@pytest.mark.parametrize("contact,expected", [
    ({"dnd": True}, True),
    ({"dnd": False, "dndSettings": {"Email": {"status": "active"}}}, True),
    ({"dndSettings": {"Email": {"status": "permanent", "message": "hard bounce"}}}, True),
    ({"dndSettings": {"Email": {"status": "inactive"}, "SMS": {"status": "active"}}}, False),
    ({"dnd": False}, False),
    ({}, False),
    (None, False),
])
def test_email_dnd_active(contact, expected):
    assert email_dnd_active(contact) is expected


def test_dnd_field_names_are_the_specs():
    schema = component_schema("contacts", "GetContectByIdSchema")
    assert schema["properties"]["dnd"]["type"] == "boolean"
    assert schema["properties"]["dndSettings"]["$ref"].endswith("/DndSettingsSchema")
    settings = component_schema("contacts", "DndSettingsSchema")
    assert settings["properties"]["Email"]["$ref"].endswith("/DndSettingSchema")
    assert component_schema("contacts", "DndSettingSchema")["properties"]["status"]["enum"] == [
        "active", "inactive", "permanent"]


def test_seeded_dnd_contact_round_trips_through_the_api(client, ctl):
    [seeded] = ctl.seed({"email": "dnd@acme.io", "dndSettings": {"Email": {"status": "active", "message": "opt-out",
                                                                           "code": "manual"}}})
    found = client.find_contact_by_email("dnd@acme.io")
    assert found["id"] == seeded["id"] and email_dnd_active(found)
    with pytest.raises(GHLValidationError) as e:
        client.send_email(found["id"], "s", "<p>x</p>", "sales@alphaswarm.example")
    assert "DND" in e.value.message and ctl.messages() == []


def test_the_spec_oracle_is_not_vacuous():
    from tests.ghl_spec import request_problems, response_problems

    headers = {"Authorization": f"Bearer {TOKEN}", "Version": VERSION_CONVERSATIONS}
    good = httpx.Request("POST", f"http://127.0.0.1{SEND_PATH}", headers=headers,
                         json={"type": "Email", "contactId": "c1", "html": "<p>x</p>"})
    assert request_problems(good) == []  # subType and status are optional (the README's quirk)
    assert request_problems(httpx.Request("POST", f"http://127.0.0.1{SEND_PATH}", headers=headers,
                                          json={"type": "Letter", "contactId": "c1"}))
    assert request_problems(httpx.Request("POST", f"http://127.0.0.1{SEND_PATH}",
                                          headers={**headers, "Version": VERSION_CONTACTS},
                                          json={"type": "Email", "contactId": "c1"}))
    assert request_problems(httpx.Request("POST", f"http://127.0.0.1{SEND_PATH}", headers={"Version": "2021-04-15"},
                                          json={"type": "Email", "contactId": "c1"}))  # no Bearer token
    assert response_problems(httpx.Response(200, json={"conversationId": "c", "messageId": "m"}, request=good))
    assert response_problems(httpx.Response(503, text="oops", request=good))
    assert response_problems(httpx.Response(200, json={"conversationId": "c", "messageId": "m", "status": "pending"},
                                            request=good)) == []
