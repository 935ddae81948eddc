"""Bad webhook payloads, correctly signed: the receiver answers 2xx or 4xx with JSON naming the problem, never 500.

A refused body (4xx) records nothing; an accepted one (2xx) is recorded once (``webhook_event``) with its outcome,
and the audit chain still verifies. Run over starlette's TestClient (the ASGI app in-process, server exceptions
re-raised, so a crash fails the test with its traceback) on SQLite and PostgreSQL: PostgreSQL is the stricter
store (no NUL in text, bounded VARCHARs, strict JSON).
"""
from __future__ import annotations

import base64
import json
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select
with warnings.catch_warnings():  # starlette would rather have httpx2; httpx is what the project installs
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from engine.adapters import audit
from engine.services.events import RB2B_FIELDS
from engine.adapters.models import Lead, Suppression, WebhookEvent
from engine.entrypoints.webhooks import MAX_BODY, SignatureKeys, create_app
from tests.badinput.strategies import COMMON, NASTY, json_value, nasty_text, storable
from tests.conftest import LIVE, deep_merge

KEY = ed25519.Ed25519PrivateKey.generate()
RB2B_SECRET = "rb2b-test-secret"
GHL_TYPES = ["InboundMessage", "ContactDndUpdate", "LCEmailStats", "OutboundMessage", "ContactCreate", "",
             "x" * 300, "Inbound\x00Message", "\ud800"]


def sign(body: bytes) -> dict:
    return {"x-ghl-signature": base64.b64encode(KEY.sign(body)).decode(), "content-type": "application/json"}


@pytest.fixture
def receiver(app_factory, monkeypatch):
    monkeypatch.setenv("RB2B_WEBHOOK_SECRET", RB2B_SECRET)
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                      warmup={"enabled": False})
    with app.store.write() as s:  # leads the events can match (by email and by GHL contact id)
        s.add(Lead(email="known@acme.io", company="Acme", ghl_contact_id="cid-1", status="cold"))
    alerts: list = []
    client = TestClient(create_app(app, keys=SignatureKeys(ed25519=KEY.public_key()), alert=alerts.append))
    return app, client


def _events(app) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(WebhookEvent)).one()


def _check(app, r, before: int) -> dict:
    """The answer is 2xx/4xx JSON; 4xx names the problem and records nothing, 2xx records the event once."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    after = _events(app)
    if r.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"].strip(), body
        assert storable(body["error"])
        assert after == before, "a refused webhook must not be recorded"
    else:
        assert body["status"] in ("processed", "duplicate", "ignored"), body
        assert isinstance(body["detail"], str) and storable(body["detail"])
        assert after == before + (0 if body["status"] == "duplicate" else 1)
    return body


# ------------------------------------------------------------------------------------------ GHL: structured garbage

def _field(names: list[str]):
    """A payload field: a plausible value most of the time, anything at all otherwise."""
    return st.one_of(st.sampled_from(names), json_value, st.sampled_from(NASTY))


ghl_payload = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(GHL_TYPES), json_value)},
    optional={
        "webhookId": st.one_of(st.uuids().map(str), json_value),
        "email": _field(["known@acme.io", "new@acme.io", "not-an-email", "KNOWN@ACME.IO "]),
        "contactId": _field(["cid-1", "cid-unknown", "c" * 300]),
        "id": _field(["cid-1"]),
        "direction": _field(["inbound", "outbound"]),
        "body": _field(["Interested, call me"]),
        "messageType": _field(["Email", "SMS"]),
        "messageId": _field(["m-1"]),
        "dnd": st.one_of(st.booleans(), json_value),
        "dndSettings": st.one_of(st.fixed_dictionaries({"Email": st.one_of(
            st.fixed_dictionaries({"status": _field(["active", "inactive"])}), json_value)}), json_value),
        "webhookPayload": st.one_of(json_value, st.fixed_dictionaries({}, optional={
            "event": _field(["failed", "bounced", "complained", "unsubscribed", "opened", "delivered", "teleported"]),
            "id": _field(["ev-1"]),
            "recipient": _field(["known@acme.io", "someone@else.io", "r" * 300 + "@x.io"]),
            "severity": _field(["permanent", "temporary"]),
            "delivery-status": st.one_of(st.fixed_dictionaries({"code": _field(["550"])}), json_value),
            "message": st.one_of(json_value, st.fixed_dictionaries({"headers": st.one_of(json_value,
                st.fixed_dictionaries({"from": _field(["Sales <sales@alphaswarm.example>",
                                                        "x@" + "d" * 250 + ".example", "<>"])}))})),
        })),
    },
    # and unknown keys beside the known ones
).flatmap(lambda d: st.dictionaries(nasty_text, json_value, max_size=3).map(lambda extra: {**extra, **d}))


@settings(max_examples=150, **COMMON)
@given(ghl_payload)
@example({"type": "InboundMessage", "webhookId": "r1", "contactId": {"$ne": None}})  # was: dict bound as SQL text
@example({"type": "ContactDndUpdate", "webhookId": "r2", "dnd": True, "email": "a@b.io", "id": ["x"]})
@example({"type": "LCEmailStats", "webhookId": "r3", "webhookPayload": {"event": "failed", "recipient": "a@b.io",
                                                                        "message": {"headers": ["from"]}}})
@example({"type": "LCEmailStats", "webhookId": "r4", "webhookPayload": {
    "event": "failed", "severity": "permanent", "recipient": "z@b.io",
    "message": {"headers": {"from": "x@" + "d" * 60 + "." + "e" * 60 + "." + "f" * 60 + ".example"}}}})
@example({"type": "Inbound\x00Message", "webhookId": "nul\x00id", "body": "\ud800"})  # PostgreSQL: NUL in text
def test_ghl_structured_garbage(receiver, payload):
    app, client = receiver
    raw = json.dumps(payload).encode()  # json.dumps escapes NUL and surrogates: still valid JSON text
    if len(raw) > MAX_BODY:
        raw = raw[:100]
    before = _events(app)
    r = client.post("/webhooks/ghl", content=raw, headers=sign(raw))
    body = _check(app, r, before)
    try:
        json.dumps(payload, allow_nan=False)
        strict = True  # no NaN / Infinity anywhere: the only thing left to refuse is the type
    except ValueError:
        strict = False
    if not strict:
        assert r.status_code == 400 and "not valid JSON" in body["error"], body
        assert "NaN" in body["error"] or "Infinity" in body["error"], body
    elif not (isinstance(payload.get("type"), str) and payload["type"]):
        assert r.status_code == 400 and "field 'type'" in body["error"], body
    else:
        assert r.status_code == 200, body
    again = client.post("/webhooks/ghl", content=raw, headers=sign(raw))  # a replay changes nothing
    if r.status_code == 200:
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
    with app.store.read() as s:
        assert audit.verify(s).ok


# ------------------------------------------------------------------------------------------ GHL: raw bodies

RAW_BODIES = [
    b"", b"{", b"null", b"[]", b'"type"', b"42", b"{'type': 'x'}", b'{"type": NaN}', b'{"type": "x", "n": Infinity}',
    b'{"type": "x", "n": 1e400}', b'{"type": "x", "n": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000,
    b'{"type": "x", "a": ' + b"[" * 900 + b"]" * 900 + b"}", b'{"type": "x"}' + b"\x00",
    b'\xff\xfe{\x00"\x00t\x00', b'{"type": "caf\xe9"}', b'{"type": "x", "s": "\\ud800"}', b"\xef\xbb\xbf{}",
    b'{"type": "x", "type": 5}', b'{"type": "LCEmailStats", "webhookPayload": "' + b"x" * (MAX_BODY - 60) + b'"}',
]


@settings(max_examples=60, **COMMON)
@given(st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200),
                 st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_ghl_raw_bodies(receiver, raw):
    app, client = receiver
    before = _events(app)
    r = client.post("/webhooks/ghl", content=raw, headers=sign(raw))
    body = _check(app, r, before)
    if r.status_code == 400:
        assert any(w in body["error"] for w in ("JSON", "'type'", "nested")), body


def test_oversized_body_is_413_and_names_the_limit(receiver):
    app, client = receiver
    raw = json.dumps({"type": "InboundMessage", "body": "x" * MAX_BODY}).encode()
    r = client.post("/webhooks/ghl", content=raw, headers=sign(raw))
    assert r.status_code == 413 and str(MAX_BODY) in r.json()["error"]
    assert _events(app) == 0


# ------------------------------------------------------------------------------------------ RB2B visitors

rb2b_payload = st.dictionaries(
    st.one_of(st.sampled_from(sorted({k.title() for k in RB2B_FIELDS} | set(RB2B_FIELDS))), nasty_text),
    st.one_of(json_value, st.sampled_from(["visitor@target.io", "VP Sales", "Acme " * 100, "https://" + "w" * 300,
                                           "51-200", "1,000+", "https://www.linkedin.com/in/" + "l" * 600])),
    max_size=12,
)


@settings(max_examples=120, **COMMON)
@given(rb2b_payload)
@example({"Business Email": "long@target.io", "First Name": "F" * 250, "Industry": "I" * 250,
          "Country": "C" * 150, "Website": "https://" + "w" * 300 + ".io"})  # VARCHAR overflows on PostgreSQL
@example({"Business Email": "typed@target.io", "First Name": {"a": 1}, "Employee Count": [1, 2], "Title": 5})
@example({"Business Email": "nul@target.io", "Company Name": "Ac\x00me", "Captured URL": "\ud800"})
def test_rb2b_visitor_garbage(receiver, payload):
    app, client = receiver
    raw = json.dumps(payload).encode()
    before = _events(app)
    r = client.post("/webhooks/rb2b", content=raw, headers={"x-rb2b-secret": RB2B_SECRET,
                                                             "content-type": "application/json"})
    _check(app, r, before)
    with app.store.read() as s:
        assert audit.verify(s).ok


def test_rb2b_valid_visitor_beside_garbage_fields_is_kept(receiver):
    app, client = receiver
    payload = {"Business Email": "Kept@Target.io", "First Name": "Ana", "Title": {"nested": ["junk"]},
               "Employee Count": "lots", "Company Name": "Target\x00 Inc", "Captured URL": "\ud800/pricing",
               "Unknown Field": "x"}
    raw = json.dumps(payload).encode()
    r = client.post("/webhooks/rb2b", content=raw, headers={"x-rb2b-secret": RB2B_SECRET})
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    with app.store.read() as s:
        lead = s.exec(select(Lead).where(Lead.email == "kept@target.io")).one()
    assert lead.first_name == "Ana" and lead.title is None and lead.employee_count is None
    assert lead.company and "\x00" not in lead.company


def test_dnd_with_garbage_beside_it_still_suppresses(receiver):
    """Valid data beside bad data is kept: the DND is applied although other fields are nonsense."""
    app, client = receiver
    payload = {"type": "ContactDndUpdate", "webhookId": "dnd-garbage", "email": "known@acme.io", "dnd": True,
               "id": {"not": "a string"}, "dndSettings": ["junk"], "extra": [None, {"\ud800": "\x00"}]}
    raw = json.dumps(payload).encode()
    r = client.post("/webhooks/ghl", content=raw, headers=sign(raw))
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    with app.store.read() as s:
        assert s.get(Suppression, "known@acme.io").reason == "dnd"
