"""The pipeline's command-line contract, through real subprocesses."""
from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, alpha, alpha_env


@pytest.fixture
def env(db_url, config_factory, tmp_path):
    e = alpha_env(db_url, config_factory(), tmp_path)
    alpha(e, "init", check=True)
    return e


def test_import_shadow_export_canary_and_unsubscribe_test(env, tmp_path):
    src = tmp_path / "leads.csv"
    src.write_text("Email Address;Company Name;# Employees;Job Title;Industry;Country\n"
                   "ana@fitco.example;Fitco;120;VP Sales;B2B SaaS;US\n"
                   "not-an-email;Broken;10;CEO;Retail;US\n"
                   "ceo@customer-one.example;Customer One;100;CEO;Software;US\n", encoding="utf-8-sig")
    p = alpha(env, "leads", "import", str(src), "--json", check=True)
    rep = json.loads(p.stdout)
    assert (rep["imported"], rep["rejected"]) == (2, 1)
    assert rep["errors"][0]["row"] == 3 and rep["errors"][0]["field"] == "email"
    p = alpha(env, "leads", "import", str(tmp_path / "missing.csv"))
    assert p.returncode == 1 and "missing.csv" in p.stderr and "Traceback" not in p.stderr
    summary = json.loads(alpha(env, "shadow", "run", "--contacts", "10", "--json", check=True).stdout)
    assert summary["leads"] == 2 and summary["by_status"] == {"shadowed": 1, "disqualified": 1}
    out = tmp_path / "shadow.csv"
    assert "exported 1 shadow emails" in alpha(env, "shadow", "export", str(out), check=True).stdout
    canary = alpha(env, "canary", "--json")
    assert canary.returncode == 0 and json.loads(canary.stdout)["ok"]
    unsub = alpha(env, "unsubscribe-test", "--json")
    assert unsub.returncode == 0 and json.loads(unsub.stdout)["ok"]
    exported = tmp_path / "leads_out.csv"
    assert "exported 2 leads" in alpha(env, "leads", "export", str(exported), check=True).stdout
    assert alpha(env, "demo").stdout.startswith("demo: the database already holds 2 leads")


def test_demo_loads_an_empty_database_and_shadow_runs_it(env):
    p = alpha(env, "demo", "--file", str(ROOT / "data" / "demo_leads.csv"), check=True)
    assert "imported 543 leads" in p.stdout and "(nothing sent)" in p.stdout
    st = json.loads(alpha(env, "status", "--json", check=True).stdout)
    assert st["outbox"].get("sent", 0) == 0 and st["outbox"].get("shadowed", 0) > 300
