"""The webhook receiver and one-click unsubscribe over real loopback HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from sqlmodel import select

from engine.adapters.models import DomainHealth, Lead, OutboxItem, Suppression
from engine.rules.unsubscribe import make_token
from engine.entrypoints.webhooks import SignatureKeys, create_app
from tests.conftest import LIVE, deep_merge
from tests.helpers import alpha, alpha_env, email, jsonl

ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class ServerThread:
    def __init__(self, asgi):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def stack(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                      warmup={"enabled": False})
    alerts = []
    keys = SignatureKeys(rsa=RSA_KEY.public_key(), ed25519=ED_KEY.public_key())
    srv = ServerThread(create_app(app, keys=keys, alert=alerts.append))
    client = httpx.Client(base_url=srv.url, timeout=10)
    yield app, client, alerts
    client.close()
    srv.stop()


def ed_sign(body: bytes) -> dict:
    return {"x-ghl-signature": base64.b64encode(ED_KEY.sign(body)).decode(), "content-type": "application/json"}


def rsa_sign(body: bytes) -> dict:
    sig = RSA_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {"x-wh-signature": base64.b64encode(sig).decode(), "content-type": "application/json"}


def post(client, payload, sign=ed_sign):
    body = json.dumps(payload).encode()
    return client.post("/webhooks/ghl", content=body, headers=sign(body))


def suppressed(app, addr):
    with app.store.read() as s:
        return s.get(Suppression, addr)


def test_dnd_update_suppresses_and_replay_is_ignored(stack):
    app, client, _ = stack
    p = {"type": "ContactDndUpdate", "webhookId": "wh-1", "id": "c1", "email": "John@Acme.io", "dnd": True,
         "dndSettings": {"Email": {"status": "active", "message": "", "code": "101"}}}
    r = post(client, p)
    assert r.status_code == 200 and r.json()["status"] == "processed"
    assert suppressed(app, "john@acme.io").reason == "dnd"
    r = post(client, p, sign=rsa_sign)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    assert app.gateway.submit(email("k", to="john@acme.io")).codes == ["SUPPRESSED_RECIPIENT"]


def test_bad_or_missing_signature_is_401_and_changes_nothing(stack):
    app, client, _ = stack
    p = {"type": "ContactDndUpdate", "webhookId": "wh-2", "email": "x@acme.io", "dnd": True}
    body = json.dumps(p).encode()
    other = ed25519.Ed25519PrivateKey.generate()
    forged = {"x-ghl-signature": base64.b64encode(other.sign(body)).decode()}
    assert client.post("/webhooks/ghl", content=body, headers=forged).status_code == 401
    assert client.post("/webhooks/ghl", content=body).status_code == 401
    tampered = ed_sign(body)
    r = client.post("/webhooks/ghl", content=body.replace(b"x@acme.io", b"y@acme.io"), headers=tampered)
    assert r.status_code == 401 and "does not match" in r.json()["error"]
    assert suppressed(app, "x@acme.io") is None and suppressed(app, "y@acme.io") is None


def test_malformed_and_oversized_bodies(stack):
    _, client, _ = stack
    for bad in (b"{not json", b"[1,2]", json.dumps({"no": "type"}).encode()):
        r = client.post("/webhooks/ghl", content=bad, headers=ed_sign(bad))
        assert r.status_code == 400 and r.json()["error"]
    big = json.dumps({"type": "InboundMessage", "body": "x" * 300_000}).encode()
    assert client.post("/webhooks/ghl", content=big, headers=ed_sign(big)).status_code == 413


def test_bounce_and_complaint_suppress_and_cool_the_domain(stack):
    app, client, _ = stack
    for i, (event, who) in enumerate([("failed", "b1@x.io"), ("failed", "b2@x.io"), ("complained", "c1@y.io")]):
        p = {"type": "LCEmailStats", "webhookPayload": {
            "event": event, "id": f"ev{i}", "severity": "permanent", "recipient": who,
            "delivery-status": {"code": 550, "message": "mailbox unavailable"},
            "message": {"headers": {"from": "Sales <sales@alphaswarm.example>", "to": who}}}}
        assert post(client, p).json()["status"] == "processed"
    assert suppressed(app, "b1@x.io").reason == "bounced" and suppressed(app, "c1@y.io").reason == "complained"
    with app.store.read() as s:
        dom = s.get(DomainHealth, "alphaswarm.example")
    assert dom.cooling and dom.score < 50
    assert app.gateway.submit(email("k", to="fresh@z.io")).codes == ["DOMAIN_COOLING"]


def test_temporary_failure_and_unknown_events_change_nothing(stack):
    app, client, _ = stack
    p = {"type": "LCEmailStats", "webhookPayload": {"event": "failed", "id": "t1", "severity": "temporary",
                                                    "recipient": "t@x.io"}}
    assert post(client, p).json()["status"] == "processed"
    p = {"type": "LCEmailStats", "webhookPayload": {"event": "teleported", "id": "t2", "recipient": "t@x.io"}}
    assert post(client, p).json()["status"] == "ignored"
    p = {"type": "SomethingNew", "webhookId": "t3"}
    assert post(client, p).json()["status"] == "ignored"
    assert suppressed(app, "t@x.io") is None


def test_inbound_reply_stops_sequence_marks_hot_and_alerts(stack):
    app, client, alerts = stack
    with app.store.write() as s:
        s.add(Lead(email="ana@target.io", company="Target", ghl_contact_id="cid-9", status="cold", sequence="cold"))
    p = {"type": "InboundMessage", "webhookId": "in-1", "contactId": "cid-9", "direction": "inbound",
         "messageType": "Email", "body": "Sounds interesting, call me"}
    assert post(client, p).json()["status"] == "processed"
    with app.store.read() as s:
        lead = s.exec(select(Lead)).one()
    assert lead.status == "hot" and lead.stop_reason == "replied" and lead.sequence_stopped_at is not None
    assert alerts and alerts[0]["kind"] == "hot_lead" and "ana@target.io" in alerts[0]["title"]
    [item] = app.approvals.queue(kind="hot_lead")["rows"]  # and it shows in the queue with a 5-minute SLA
    assert item["lead_email"] == "ana@target.io" and item["action_type"] == "hot_lead"
    assert item["sla_minutes_left"] == 5.0 and "call me" in item["summary"]
    p2 = {**p, "webhookId": "in-2", "body": "Also: Tuesday works"}  # a second reply joins the same item
    assert "added to its pending" in post(client, p2).json()["detail"]
    [item] = app.approvals.queue(kind="hot_lead")["rows"]
    assert "Tuesday" in item["summary"]


def test_outbound_message_reconciles_a_send_in_doubt(stack):
    app, client, _ = stack
    with app.store.write() as s:
        s.add(OutboxItem(idempotency_key="doubt", payload_hash="h", agent="GHL_MASTER", action="send_email",
                         channel="email", status="reconcile", provider="ghl", provider_message_id="msg-77"))
    p = {"type": "OutboundMessage", "messageId": "msg-77", "direction": "outbound", "messageType": "Email"}
    assert "confirmed sent" in post(client, p).json()["detail"]
    assert app.reconciliation() == []


def test_one_click_unsubscribe(stack):
    app, client, _ = stack
    token = make_token("reader@acme.io", app.secret)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "reader@acme.io" in page.text and suppressed(app, "reader@acme.io") is None
    r = client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and "set-cookie" not in r.headers and r.history == []
    assert suppressed(app, "reader@acme.io").reason == "unsubscribed"
    assert client.post("/unsubscribe/bogus.token", content="List-Unsubscribe=One-Click").status_code == 404
    assert client.post(f"/unsubscribe/{token}", content="other").status_code == 400


def test_rb2b_visitor_creates_or_matches_a_lead(stack, monkeypatch):
    app, client, alerts = stack
    monkeypatch.setenv("RB2B_WEBHOOK_SECRET", "s3cret-rb2b-value")
    visit = {"LinkedIn URL": "https://linkedin.com/in/x", "First Name": "Ana", "Last Name": None,
             "Title": "VP Sales", "Company Name": "Target Inc", "Business Email": "Ana@Target.io",
             "Website": "https://www.target.io", "Industry": None, "Employee Count": "51-200",
             "Captured URL": "https://alphaswarm.example/pricing", "Seen At": "2026-11-24T10:00:00Z"}
    assert client.post("/webhooks/rb2b", json=visit).status_code == 401
    r = client.post("/webhooks/rb2b", json=visit, headers={"X-RB2B-Secret": "s3cret-rb2b-value"})
    assert r.status_code == 200 and "created" in r.json()["detail"]
    with app.store.read() as s:
        lead = s.exec(select(Lead)).one()
    assert (lead.email, lead.status, lead.employee_count, lead.company_domain) == ("ana@target.io", "warm", 125,
                                                                                 "target.io")
    assert [a["fields"]["tier"] for a in alerts] == [2]  # VP Sales at 125 people, industry unknown: tier 2
    visit["Employee Count"] = 80
    visit["Captured URL"] = "https://alphaswarm.example/demo"
    r = client.post("/webhooks/rb2b?secret=s3cret-rb2b-value", json=visit)
    assert "matched" in r.json()["detail"] and len(alerts) == 2  # a second visit by a fit is hot again
    r = client.post("/webhooks/rb2b?secret=s3cret-rb2b-value", json={"First Name": None, "Employee Count": None})
    assert r.status_code == 200 and "recorded only" in r.json()["detail"]


def test_rb2b_icp_match_raises_a_hot_lead_alert(stack, monkeypatch):
    app, client, alerts = stack
    monkeypatch.setenv("RB2B_WEBHOOK_SECRET", "s3cret-rb2b-value")
    fit = {"First Name": "Cara", "Title": "VP Sales", "Company Name": "Fitco", "Business Email": "cara@fitco.io",
           "Website": "fitco.io", "Industry": "B2B SaaS", "Employee Count": 120, "Country": "US",
           "Captured URL": "https://alphaswarm.example/pricing"}
    r = client.post("/webhooks/rb2b?secret=s3cret-rb2b-value", json=fit)
    assert "ICP match (tier 1" in r.json()["detail"] and "queued as approval" in r.json()["detail"]
    assert len(alerts) == 1 and alerts[0]["kind"] == "hot_lead" and "cara@fitco.io" in alerts[0]["title"]
    assert [i["lead_email"] for i in app.approvals.queue(kind="hot_lead")["rows"]] == ["cara@fitco.io"]
    misfit = {**fit, "Business Email": "dev@fitco.io", "Title": "Marketing Coordinator"}
    assert "ICP match" not in client.post("/webhooks/rb2b?secret=s3cret-rb2b-value", json=misfit).json()["detail"]
    competitor = {**fit, "Business Email": "vp@competitor-one.example", "Website": "competitor-one.example"}
    assert "ICP match" not in client.post("/webhooks/rb2b?secret=s3cret-rb2b-value", json=competitor).json()["detail"]
    assert len(alerts) == 1
    assert app.approvals.queue(kind="hot_lead")["total"] == 1  # misfits raise nothing


def test_unsubscribe_bounce_and_dnd_block_the_next_send_from_another_process(stack, db_url, config_factory,
                                                                             tmp_path):
    app, client, _ = stack
    cfg = config_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                         warmup={"enabled": False})
    env = alpha_env(db_url, cfg, tmp_path)
    token = make_token("leaver@acme.io", app.secret)
    assert client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click").status_code == 200
    post(client, {"type": "LCEmailStats", "webhookPayload": {"event": "failed", "id": "b-x", "severity": "permanent",
                                                             "recipient": "bouncer@acme.io"}})
    post(client, {"type": "ContactDndUpdate", "webhookId": "d-x", "email": "quiet@acme.io", "dnd": True})
    lines = [json.dumps(email(f"p{i}", to=a)) for i, a in
             enumerate(["leaver@acme.io", "bouncer@acme.io", "quiet@acme.io", "fine@acme.io"])]
    out = jsonl(alpha(env, "submit", "-", input="\n".join(lines) + "\n", check=True).stdout)
    assert [o["reasons"] for o in out[:3]] == [["SUPPRESSED_RECIPIENT"]] * 3
    assert out[3]["status"] == "sent"
