from tests.helpers import unsub_link
from tests.conftest import LIVE


def test_init_is_idempotent_and_status_reports(app_factory):
    app = app_factory()
    again = app.init("test")
    assert again["schema"] == again["schema_before"]
    st = app.status()
    assert st["phase"] == "shadow" and st["mode"] == "SANDBOX"
    assert {b["name"] for b in st["breakers"]} == {"ghl", "linkedin", "clay", "supabase", "llm", "slack"}


def test_live_send_goes_to_sandbox(app_factory):
    app = app_factory(production={**LIVE, "rollout_phase": {"current": "autonomous"}})
    r = app.gateway.submit({"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": "a",
                            "to": "x@acme.io", "from": "sales@alphaswarm.example", "subject": "Hello",
                            "text": f"Hi. Unsubscribe: {unsub_link('x@acme.io')}\n"
                                    "548 Market St, Suite 100, San Francisco, CA 94104, USA"})
    assert r.status == "sent", r.to_dict(True)
