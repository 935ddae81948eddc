"""parse_action / payload_hash (engine/core/actions.py), redact (engine/adapters/audit.py), unsubscribe tokens and
headers."""
from __future__ import annotations

import pytest

from engine.core.actions import InvalidAction, parse_action
from engine.adapters.audit import REDACTED, redact
from engine.rules.unsubscribe import make_token, one_click_headers, unsubscribe_url, verify_token

BASE = {
    "agent": "GHL_MASTER",
    "action": "send_email",
    "idempotency_key": "lead-42-step-1",
    "to": "dana@northwind.example",
    "from": "sales@alphaswarm.example",
    "subject": "Hiring SDRs?",
    "text": "Hi Dana",
}


def raw(**kw):
    d = dict(BASE)
    for k, v in kw.items():
        if v is _DROP:
            d.pop(k, None)
        else:
            d[k] = v
    return d


_DROP = object()


def invalid(data) -> InvalidAction:
    with pytest.raises(InvalidAction) as ei:
        parse_action(data)
    return ei.value


# ------------------------------------------------------------------------------------------ parse_action

def test_valid_send_email():
    a = parse_action(raw(to="Dana@Northwind.Example", timezone="Asia/Tokyo", evidence={"source": "crm",
                                                                                         "retrieved_at": "2026-11-01"}))
    assert a.to == "dana@northwind.example"
    assert a.recipient_domain == "northwind.example"
    assert a.sender_domain == "alphaswarm.example"
    assert a.evidence == ({"source": "crm", "retrieved_at": "2026-11-01"},)
    assert len(a.payload_hash) == 64


def test_not_an_object():
    e = invalid(["send_email"])
    assert e.problems == ["an action must be a JSON object, found list"]


def test_missing_idempotency_key():
    e = invalid(raw(idempotency_key=_DROP))
    assert e.problems == ["field 'idempotency_key' is required"]
    assert e.idempotency_key is None


def test_empty_idempotency_key():
    e = invalid(raw(idempotency_key="  "))
    assert len(e.problems) == 1 and e.problems[0].startswith("field 'idempotency_key': ")


def test_unknown_field():
    e = invalid(raw(colour="blue"))
    assert e.problems == ["field 'colour' is not a known action field"]
    assert e.idempotency_key == "lead-42-step-1"


@pytest.mark.parametrize("field, value, expected", [
    ("tier", "high", "field 'tier': Input should be a valid integer"),
    ("tier", 7, "field 'tier': Input should be less than or equal to 3"),
    ("to", 12345, "field 'to': Input should be a valid string"),
    ("first_touch", "maybe", "field 'first_touch': Input should be a valid boolean"),
    ("tags", "vip", "field 'tags': Input should be a valid list"),
])
def test_wrong_type(field, value, expected):
    e = invalid(raw(**{field: value}))
    assert len(e.problems) == 1
    assert e.problems[0].startswith(expected), e.problems


def test_send_email_without_subject():
    e = invalid(raw(subject=_DROP))
    assert e.problems == ["field 'subject' is required for send_email"]
    assert e.idempotency_key == "lead-42-step-1"


def test_send_email_without_body():
    e = invalid(raw(text=_DROP))
    assert e.problems == ["one of fields 'html' or 'text' is required for send_email"]
    assert "one of fields 'html' or 'text'" in str(e)


def test_send_email_html_only_is_fine():
    assert parse_action(raw(text=_DROP, html="<p>Hi</p>")).html == "<p>Hi</p>"


def test_send_email_without_recipient_and_sender():
    e = invalid(raw(to=_DROP, **{"from": _DROP}))
    assert e.problems == ["field 'to' is required for send_email", "field 'from' is required for send_email"]


def test_bad_timezone():
    e = invalid(raw(timezone="Mars/Base"))
    assert e.problems == ["field 'timezone': 'Mars/Base' is not an IANA time zone name"]


def test_every_problem_is_reported():
    e = invalid(raw(subject=_DROP, text=_DROP, timezone="Nowhere/Land"))
    assert e.problems == ["field 'subject' is required for send_email",
                          "one of fields 'html' or 'text' is required for send_email",
                          "field 'timezone': 'Nowhere/Land' is not an IANA time zone name"]


def test_tag_actions_need_tags():
    e = invalid({"agent": "SEGMENTOR", "action": "crm_add_tag", "idempotency_key": "k", "to": "d@n.example"})
    assert e.problems == ["field 'tags' is required for crm_add_tag"]


def test_crm_write_needs_contact():
    e = invalid({"agent": "GHL_MASTER", "action": "crm_upsert_contact", "idempotency_key": "k"})
    assert e.problems == ["field 'to' (the contact's email) is required for crm_upsert_contact"]


# ------------------------------------------------------------------------------------------ payload_hash

def test_payload_hash_is_stable():
    a, b = parse_action(raw()), parse_action(raw())
    assert a.payload_hash == b.payload_hash
    # key order in the submitted JSON does not matter
    assert parse_action(dict(reversed(list(raw().items())))).payload_hash == a.payload_hash


def test_payload_hash_ignores_normalisation_only_differences():
    a = parse_action(raw())
    assert parse_action(raw(to="DANA@northwind.example")).payload_hash == a.payload_hash
    assert parse_action(raw(subject="  Hiring SDRs?  ")).payload_hash == a.payload_hash


@pytest.mark.parametrize("field, value", [
    ("agent", "OTHER_AGENT"),
    ("action", "send_campaign_email"),
    ("idempotency_key", "lead-42-step-2"),
    ("to", "sam@northwind.example"),
    ("from", "hello@alphaswarm.example"),
    ("subject", "Hiring SDRs!"),
    ("text", "Hi Dana!"),
    ("html", "<p>Hi</p>"),
    ("lead_id", "42"),
    ("evidence", [{"source": "crm", "retrieved_at": "2026-11-01T00:00:00Z"}]),
    ("tier", 2),
    ("timezone", "Europe/London"),
    ("company", "Northwind"),
    ("first_touch", False),
    ("tags", ["vip"]),
    ("fields", {"title": "VP Sales"}),
])
def test_payload_hash_changes_when_any_field_changes(field, value):
    base = parse_action(raw(tier=1, lead_id="41", company="Northwind Traders", first_touch=True, tags=["a"],
                            fields={"title": "CEO"}, timezone="America/New_York"))
    changed = parse_action(raw(**{"tier": 1, "lead_id": "41", "company": "Northwind Traders", "first_touch": True,
                                  "tags": ["a"], "fields": {"title": "CEO"}, "timezone": "America/New_York",
                                  field: value}))
    assert changed.payload_hash != base.payload_hash


def test_payload_hash_changes_with_one_character_of_html():
    a = parse_action(raw(html="<p>Hi Dana</p>"))
    b = parse_action(raw(html="<p>Hi Dana.</p>"))
    assert a.payload_hash != b.payload_hash


# ------------------------------------------------------------------------------------------ redact

@pytest.mark.parametrize("key", ["api_key", "API-KEY", "apiKey", "token", "access_token", "password", "Authorization",
                                 "client_secret", "Cookie", "x-signature", "private_key"])
def test_redact_secret_keys(key):
    out = redact({key: "s3cr3t-value", "email": "dana@northwind.example"}, [])
    assert out == {key: REDACTED, "email": "dana@northwind.example"}


def test_redact_nested_and_in_lists():
    data = {"request": {"headers": {"Authorization": "Bearer abc", "Accept": "json"}},
            "calls": [{"token": "t1"}, {"status": 200}], "tuple": ({"password": "p"},)}
    assert redact(data, []) == {"request": {"headers": {"Authorization": REDACTED, "Accept": "json"}},
                                "calls": [{"token": REDACTED}, {"status": 200}], "tuple": [{"password": REDACTED}]}


def test_redact_keeps_empty_secret_fields_visible():
    assert redact({"api_key": "", "token": None}, []) == {"api_key": "", "token": None}


def test_redact_env_secret_values(monkeypatch):
    secret = "ghl-live-9f8e7d6c5b4a"
    monkeypatch.setenv("GHL_API_KEY", secret)
    data = {"note": secret, "url": f"https://api.example/?k={secret}", "list": [secret, "ok"], "n": 3}
    out = redact(data)
    assert out == {"note": REDACTED, "url": f"https://api.example/?k={REDACTED}", "list": [REDACTED, "ok"], "n": 3}
    assert secret not in repr(out)


def test_redact_other_env_secrets(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/T000/B000/XXXX")
    assert redact({"msg": "posting to https://hooks.slack.example/T000/B000/XXXX"}) == {"msg": f"posting to {REDACTED}"}


def test_redact_without_secrets_changes_nothing(monkeypatch):
    monkeypatch.delenv("GHL_API_KEY", raising=False)
    data = {"to": "dana@northwind.example", "count": 2, "ok": True, "items": ["a", "b"]}
    assert redact(data) == data


# ------------------------------------------------------------------------------------------ unsubscribe

SECRET = b"test-unsubscribe-secret-0123456789"
BASE_URL = "https://alphaswarm.example/unsubscribe"


def test_token_round_trip():
    tok = make_token("Dana@Northwind.Example ", SECRET)
    assert verify_token(tok, SECRET) == "dana@northwind.example"
    assert make_token("dana@northwind.example", SECRET) == tok  # normalised, deterministic
    assert make_token("sam@northwind.example", SECRET) != tok


def _flip(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def test_tampered_tokens_are_rejected():
    tok = make_token("dana@northwind.example", SECRET)
    e64, sig = tok.split(".")
    other = make_token("sam@northwind.example", SECRET).split(".")[0]
    for bad in (
        f"{e64}.{_flip(sig, 0)}",           # signature changed
        f"{e64}.{_flip(sig, len(sig) - 1)}",
        f"{other}.{sig}",                   # someone else's address with dana's signature
        f"{e64}.",                          # signature dropped
        e64,                                # no separator
        "",
        "not-a-token",
        "!!!.???",
    ):
        assert verify_token(bad, SECRET) is None, bad


def test_token_from_another_secret_is_rejected():
    tok = make_token("dana@northwind.example", b"another-secret-abcdefghijklmnop")
    assert verify_token(tok, SECRET) is None


def test_unsubscribe_url():
    tok = make_token("dana@northwind.example", SECRET)
    assert unsubscribe_url(BASE_URL + "/", "dana@northwind.example", SECRET) == f"{BASE_URL}/{tok}"


def test_one_click_headers_format():
    tok = make_token("dana@northwind.example", SECRET)
    h = one_click_headers(BASE_URL, "dana@northwind.example", SECRET)
    assert h == {"List-Unsubscribe": f"<{BASE_URL}/{tok}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert h["List-Unsubscribe"].startswith("<https://") and h["List-Unsubscribe"].endswith(">")
    assert "\n" not in h["List-Unsubscribe"] and " " not in h["List-Unsubscribe"]
    lines = [f"{k}: {v}" for k, v in h.items()]
    assert lines == [f"List-Unsubscribe: <{BASE_URL}/{tok}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    # the link inside the header verifies back to the recipient
    assert verify_token(h["List-Unsubscribe"][1:-1].rsplit("/", 1)[1], SECRET) == "dana@northwind.example"
