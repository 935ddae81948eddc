"""`alpha demo` as `make run` uses it: a blind-review set for the AE, and the optional step into assisted that
gives the approver work. Observed before: the demo made no blind-review set (the AE started on an empty page) and
stayed in shadow (the approval queue was empty)."""
from __future__ import annotations

import json

import pytest

from engine.entrypoints.devstack import demo_config
from tests.conftest import CONFIG
from tests.helpers import ROOT, alpha, alpha_env

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
DEMO_CSV = str(ROOT / "data" / "demo_leads.csv")


@pytest.fixture
def env(db_url, tmp_path):
    def make(config=CONFIG, **extra):
        e = alpha_env(db_url, config, tmp_path)
        for k in ("GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL"):
            e.pop(k, None)
        e.update(extra)
        alpha(e, "init", check=True)
        return e

    return make


def phase(e) -> str:
    return json.loads(alpha(e, "phase", "show", "--json", check=True).stdout)["phase"]


def test_the_demo_makes_a_blind_review_set_for_the_ae_once(env):
    e = env()
    p = alpha(e, "demo", "--file", DEMO_CSV, check=True)
    assert "blind-review set 1 of 50 leads for the AE" in p.stdout
    item = json.loads(alpha(e, "compare", "next", "--json", check=True).stdout)
    assert item and item["set_id"] == 1 and item["total"] == 50
    again = alpha(e, "demo", "--file", DEMO_CSV, check=True).stdout
    assert "already holds 543 leads" in again and "blind-review set 1 exists" in again
    assert phase(e) == "shadow"


def test_assisted_steps_up_through_the_gate_with_a_recorded_demo_override_and_queues_approvals(env, tmp_path):
    e = env(demo_config(CONFIG, tmp_path / "demo-config"))
    p = alpha(e, "demo", "--file", DEMO_CSV, "--assisted", check=True)
    assert "rollout phase -> assisted (DEMO OVERRIDE" in p.stdout
    assert phase(e) == "assisted"
    pending = json.loads(alpha(e, "approvals", "list", "--json", "--kind", "send", check=True).stdout)
    assert len(pending) >= 100, "the approver starts with work"
    rows = json.loads(alpha(e, "audit", "tail", "-n", "2000", "--json", check=True).stdout)
    steps = [r for r in rows if r["event"] == "control.phase" and r["status"] in ("parallel", "assisted")]
    assert [r["status"] for r in steps] == ["parallel", "assisted"]
    forced = steps[-1]
    data = forced["data"] if isinstance(forced["data"], dict) else json.loads(forced["data"])
    assert data["forced"] is True and data["reason"].startswith("demo: ")
    assert "gate cannot pass on demo data" in data["reason"]
    # a second run changes nothing and queues nothing twice
    again = alpha(e, "demo", "--file", DEMO_CSV, "--assisted", check=True).stdout
    assert "already assisted" in again
    assert len(json.loads(alpha(e, "approvals", "list", "--json", "--kind", "send", check=True).stdout)) == len(pending)


def test_assisted_is_refused_with_a_config_that_does_not_send(env):
    e = env()
    p = alpha(e, "demo", "--file", DEMO_CSV, "--assisted")
    assert p.returncode == 1 and "make run DEMO=assisted" in p.stderr and "Traceback" not in p.stderr
    assert phase(e) == "shadow"


def test_assisted_is_refused_on_a_database_with_real_leads(env, tmp_path):
    e = env(demo_config(CONFIG, tmp_path / "demo-config"))
    csv = tmp_path / "real.csv"
    csv.write_text("email,company,title,employee_count,industry,country\n"
                   "jane@acme.io,Acme,VP Sales,120,B2B SaaS,US\n", encoding="utf-8")
    alpha(e, "leads", "import", str(csv), check=True)
    p = alpha(e, "demo", "--assisted")
    assert p.returncode == 1 and "not a demo database" in p.stderr and "jane@acme.io" in p.stderr
    assert "no blind-review set made here" in p.stdout
    assert phase(e) == "shadow"


def test_assisted_is_refused_with_real_ghl_credentials(env, tmp_path):
    e = env(demo_config(CONFIG, tmp_path / "demo-config"), GHL_API_KEY="a-real-key", GHL_LOCATION_ID="loc1",
            GHL_BASE_URL="https://services.leadconnectorhq.com")
    p = alpha(e, "demo", "--file", DEMO_CSV, "--assisted")
    assert p.returncode == 1 and "local GHL sandbox" in p.stderr
    assert phase(e) == "shadow"
