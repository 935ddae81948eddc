"""The shadow run over the demo data, canary and unsubscribe test (SQLite and PostgreSQL)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import func, select

from engine.entrypoints.webhooks import one_click_post
from engine.services.canary import run_canary, run_unsubscribe_test
from engine.adapters.leads_csv import import_leads
from engine.adapters.models import CheckRun, Draft, Envelope, Lead, OutboxItem, SandboxMessage
from engine.services.pipeline import export_shadow, shadow_run
from tests.conftest import LIVE, deep_merge

ROOT = Path(__file__).resolve().parents[2]


def count(app, model, *where) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def live_app(app_factory):
    # a live, autonomous configuration: the shadow run must still send nothing (default working hours, so the
    # canary's outside-hours probe has closed hours to find)
    prod = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"},
                             "working_hours": {"start": "08:00", "end": "18:00",
                                               "days": ["mon", "tue", "wed", "thu", "fri"]}})
    return app_factory(production=prod)


def test_shadow_run_over_the_demo_data_accounts_for_every_lead_and_sends_nothing(live_app, tmp_path):
    report = import_leads(live_app.store, ROOT / "data" / "demo_leads.csv", live_app.clock)
    assert report["imported"] >= 500
    n = count(live_app, Lead)
    ticks = []
    summary = shadow_run(live_app, n + 50, progress=lambda done, total: ticks.append((done, total)))
    assert summary["leads"] == n and ticks[-1] == (n, n)
    assert sum(summary["by_status"].values()) == n
    assert sum(summary["by_tier"].values()) == n
    assert summary["by_status"].get("disqualified", 0) == summary["by_tier"].get("disqualified", 0)
    assert summary["by_status"].get("sent", 0) == 0
    gateway_rows = count(live_app, OutboxItem)
    assert gateway_rows == n - summary["by_status"].get("disqualified", 0) - summary["by_status"].get("stopped", 0)
    assert summary["by_status"].get("shadowed", 0) + summary["by_status"].get("denied", 0) == gateway_rows
    assert count(live_app, SandboxMessage) == 0  # nothing left the building
    assert count(live_app, OutboxItem, OutboxItem.status.in_(("sent", "sending"))) == 0
    assert count(live_app, Draft) == gateway_rows
    assert count(live_app, Envelope) >= n * 2
    with live_app.store.read() as s:
        row = s.exec(select(OutboxItem).where(OutboxItem.status == "shadowed")).first()
        disq = s.exec(select(Lead).where(Lead.disqualified_reason.is_not(None))).first()
    assert row.subject and row.html and row.tier in (1, 2, 3) and row.decision["phase"] == "autonomous"
    assert row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert disq.icp["explain"] and disq.tier is None
    out = tmp_path / "shadow.csv"
    assert export_shadow(live_app, out) == gateway_rows
    assert out.read_text().splitlines()[0].startswith("outbox_id,lead_id,to,tier,status")
    # a second run is a new run: same leads, new decisions, still nothing sent
    again = shadow_run(live_app, 40)
    assert again["run_id"] == summary["run_id"] + 1 and count(live_app, SandboxMessage) == 0


def test_canary_and_unsubscribe_test_pass_and_are_recorded(live_app):
    canary = run_canary(live_app)
    assert canary["ok"], canary
    names = {c["name"] for c in canary["checks"]}
    assert {"spam word caught", "missing unsubscribe caught", "suppressed address caught", "over a limit caught",
            "outside working hours caught", "kill switch obeyed"} <= names
    unsub = run_unsubscribe_test(live_app, one_click_post)
    assert unsub["ok"], unsub
    assert count(live_app, CheckRun, CheckRun.ok.is_(True), CheckRun.kind.in_(("canary", "unsubscribe_test"))) == 2
    # the planted violations stayed in the scratch database
    st = live_app.status()
    assert not st["kill_switch"]["on"] and st["outbox"] == {}
    assert count(live_app, Lead) == 0


def test_canary_fails_when_a_guardrail_is_disabled(live_app, monkeypatch):
    import engine.rules.guardrails as g

    monkeypatch.setattr(g, "check_content", lambda *a, **k: [])
    report = run_canary(live_app)
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert not report["ok"] and failed == {"spam word caught", "missing unsubscribe caught"}
    with live_app.store.read() as s:
        last = s.exec(select(CheckRun).order_by(CheckRun.id.desc())).first()
    assert last.kind == "canary" and last.ok is False


def test_unsubscribe_test_fails_when_suppression_is_disabled(live_app, monkeypatch):
    import engine.rules.guardrails as g

    monkeypatch.setattr(g, "check_suppression", lambda entry: [])
    report = run_unsubscribe_test(live_app, one_click_post)
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert not report["ok"]
    assert failed == {"one-click POST suppresses the address", "suppressed address refused by the gateway"}
