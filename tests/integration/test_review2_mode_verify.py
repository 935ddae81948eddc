"""Second review of issue 13 item 5 ("a sandbox integration is not ready for live phases"), `alpha verify`:

- a Slack webhook at an address of this machine (loopback, unspecified) is a local stand-in, never live evidence:
  it passed as live-ready;
- a GHL sandbox reached on an address that is not loopback (`alpha sandbox ghl --host 0.0.0.0` reached by its LAN
  address, a DNS name) counted as the real GHL: its answer names the sandbox's company, so it is SANDBOX."""
from __future__ import annotations

import pytest

from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, SANDBOX_COMPANY_ID, is_sandbox_location, start_sandbox
from tests.fake_servers import SlackWebhookFake

UNSET = ("GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL", "SLACK_WEBHOOK_URL", "ANTHROPIC_API_KEY",
         "OPENAI_API_KEY", "ALPHA_WEBHOOK_URL")


@pytest.fixture
def slack():
    fake = SlackWebhookFake().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_a_slack_webhook_on_this_machine_is_not_live_evidence(app_factory, monkeypatch, slack, host):
    import engine.services.verify as verify

    app = app_factory()
    for k in UNSET:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url.replace("127.0.0.1", host))
    app._alerter = None
    c = verify.check_slack(app, send=True)
    assert len(slack.payloads) == 1  # the local loop works: the stand-in got the test message
    assert c.status == verify.SANDBOX and "local stand-in" in c.reason and host in c.reason, c
    assert not verify._live({"name": "slack", "status": c.status, "reason": c.reason})
    v = verify.assess([{"name": "ghl", "status": "pass", "reason": "location x fetched"},
                       {"name": "slack", "status": c.status, "reason": c.reason},
                       {"name": "webhooks", "status": "pass"}, {"name": "breakers", "status": "pass"}])
    assert v["ready_for_live"] is False and v["ready_for_sandbox"] is True
    assert v["live_blockers"] == ["slack is a local stand-in"]
    # --no-send does not make it any more real
    c = verify.check_slack(app, send=False)
    assert c.status == verify.SANDBOX and "not tested" in c.reason


def test_a_slack_webhook_elsewhere_still_passes(app_factory, monkeypatch, slack):
    """The other side: the same fake taken for a remote host (as the real Slack is) passes."""
    import engine.services.verify as verify

    app = app_factory()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setattr(verify, "is_sandbox_url", lambda url: False)
    app._alerter = None
    c = verify.check_slack(app, send=True)
    assert c.status == verify.PASS, c


def test_a_ghl_sandbox_reached_on_a_lan_address_is_the_sandbox(monkeypatch):
    """As if GHL_BASE_URL were http://192.168.1.20:8765 (the sandbox with --host 0.0.0.0): the address alone looks
    remote, the answer says which GHL it is."""
    import engine.services.verify as verify

    server, url = start_sandbox(host="0.0.0.0")
    try:
        for k in UNSET:
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("GHL_API_KEY", "token-123456")
        monkeypatch.setenv("GHL_LOCATION_ID", DEFAULT_LOCATION)
        monkeypatch.setenv("GHL_BASE_URL", url.replace("0.0.0.0", "127.0.0.1"))
        monkeypatch.setattr(verify, "is_sandbox_url", lambda u: False)  # a LAN address: not loopback
        monkeypatch.setattr(verify, "resolves_to_local", lambda u: False)
        c = verify.check_ghl(None)
    finally:
        server.shutdown()
        server.server_close()
    assert c.status == verify.SANDBOX and "SANDBOX" in c.reason and SANDBOX_COMPANY_ID in c.reason, c
    assert verify.assess([{"name": "ghl", "status": c.status, "reason": c.reason}])["live_blockers"][0] == \
        "ghl is the local sandbox"


def test_the_sandbox_answer_is_recognised_and_a_real_one_is_not():
    assert is_sandbox_location({"location": {"id": "x", "companyId": SANDBOX_COMPANY_ID}})
    assert is_sandbox_location({"id": "x", "companyId": SANDBOX_COMPANY_ID})
    for real in ({"id": "x", "companyId": "k8Hs2v0ZQm"}, {"location": {"id": "x"}}, {}, None, "sandbox"):
        assert not is_sandbox_location(real), real
