"""Integrations & settings page: verify behind a button and the last stored result, the effective limits, the
approver roster, the templates with their approval status, and config validation; it never changes config."""
from __future__ import annotations

import hashlib
import json

import pytest
from sqlmodel import func, select

from engine.services.approvals import load_roster
from engine.rules.messaging import load_pack
from engine.adapters.models import VerifyRun
from engine.services.verify import run_verify
from console.widgets import local_time
from tests.console.conftest import no_exception, text

PAGE = "pages/integrations.py"


def table(at, column: str) -> list[dict]:
    return next(d.value for d in at.dataframe if column in d.value.columns).to_dict("records")


def config_fingerprint(cdir) -> str:
    h = hashlib.sha256()
    for p in sorted(cdir.rglob("*")):
        if p.is_file():
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def offline(monkeypatch):
    """No real integration is configured; the webhook receiver address answers nothing."""
    for var in ("GHL_API_KEY", "GHL_LOCATION_ID", "SLACK_WEBHOOK_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALPHA_WEBHOOK_URL", "http://127.0.0.1:9")


def verify_runs(app) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(VerifyRun)).one()


# ------------------------------------------------------------------------------------------ roles

def test_only_ops_and_admin(ctx, offline):
    for username in ("ae", "approver"):
        at = no_exception(ctx.page(PAGE, username))
        assert "Access refused: this page needs the role ops or admin" in text(at.error)
        assert not at.title and not at.button and not at.dataframe
    for username in ("ops", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert [t.value for t in at.title] == ["Integrations & settings"]
        assert "Run verify now" in [b.label for b in at.button]


# ------------------------------------------------------------------------------------------ verify

def test_verify_never_run_then_run_from_the_button(ctx, offline):
    at = no_exception(ctx.page(PAGE, "ops"))
    assert "`alpha verify` has never run" in text(at.info)
    assert "alpha verify" in [c.value for c in at.code]
    at.button(key="run_verify").click()
    at = no_exception(at.run())
    assert verify_runs(ctx.app) == 1  # stored: readiness evidence
    checks = {r["integration"]: r for r in table(at, "integration")}
    assert set(checks) == {"ghl", "slack", "llm", "webhooks", "breakers"}
    assert checks["ghl"]["status"] == "not configured" and checks["slack"]["status"] == "not configured"
    assert checks["webhooks"]["status"] == "FAIL" and "127.0.0.1:9" in checks["webhooks"]["detail"]
    assert checks["breakers"]["status"] == "PASS"
    assert "Last verify FAILED" in text(at.error)


def test_the_last_stored_result_and_its_time(ctx, offline, monkeypatch):
    ctx.app.breakers.force("llm", "OPEN", "provider outage", "ops")
    r = run_verify(ctx.app, send_slack=False)  # e.g. `alpha verify` from a shell
    at = no_exception(ctx.page(PAGE, "admin"))
    assert f"Last verify FAILED at {local_time(r['at'], with_seconds=True)} (" in text(at.error)  # local, with age
    assert r["at"] not in text(at.error)  # never the raw ISO time
    checks = {c["integration"]: c for c in table(at, "integration")}
    assert checks["breakers"]["status"] == "FAIL" and "llm=OPEN" in checks["breakers"]["detail"]
    assert verify_runs(ctx.app) == 1  # showing it ran nothing


# ------------------------------------------------------------------------------------------ settings

def test_limits_roster_and_templates_come_from_the_configuration(ctx, offline):
    before = config_fingerprint(ctx.app.settings.config_dir)
    at = no_exception(ctx.page(PAGE, "ops"))
    s = ctx.app.settings
    lim, wh = s.limits, s.production.working_hours
    limits = {r["setting"]: r["value"] for r in table(at, "setting")}
    assert limits["monthly limit"].startswith(f"{lim.monthly_limit} ")
    assert limits["daily limit"].startswith(f"{lim.daily_limit} ")
    assert limits["hourly limit"].startswith(f"{lim.hourly_limit} ")
    assert limits["per-domain hourly limit"].startswith(f"{lim.per_domain_hourly_limit} ")
    assert limits["minimum delay"].startswith(f"{lim.min_delay_seconds} s")
    warm = ctx.app.control.warmup_status()
    assert limits["warm-up cap"].startswith(f"{warm['daily_cap']} per day (warm-up phase 1")
    assert limits["effective daily cap"].startswith(f"{min(warm['daily_cap'], lim.daily_limit)} per day")
    assert limits["working hours"].startswith(f"{wh.start}-{wh.end} {', '.join(wh.days)}")

    roster = load_roster(s.config_dir)
    shown = {r["action type"]: r for r in table(at, "action type")}
    assert set(shown) == set(roster.action_types)
    for name, e in roster.action_types.items():
        row = shown[name]
        assert (row["group"], row["primary"], row["backup"], row["SLA (min)"]) == (
            e.group, e.primary, e.backup, e.sla_minutes)
        assert e.coverage.timezone in row["coverage"] and e.coverage.start in row["coverage"]
        assert row["escalation"] == ", ".join(e.escalation_contacts)

    pack = load_pack(s.config_dir)
    tpl = table(at, "status")
    assert [(t["id"], t["version"], t["status"]) for t in tpl] == [(t.id, t.version, t.status)
                                                                   for t in pack.templates]
    assert "valid" in text(at.success)
    at = no_exception(at.run())
    assert config_fingerprint(ctx.app.settings.config_dir) == before  # read-only


def test_a_draft_template_is_flagged(ctx, offline):
    pack_file = ctx.app.settings.config_dir / "templates" / "pack.json"
    data = json.loads(pack_file.read_text())
    data["templates"][0]["status"] = "draft"
    draft_id = data["templates"][0]["id"]
    pack_file.write_text(json.dumps(data))
    at = no_exception(ctx.page(PAGE, "ops"))
    assert f"are drafts and are never used for a send: {draft_id}" in text(at.warning)
    assert {t["id"]: t["status"] for t in table(at, "status")}[draft_id] == "draft"


def test_invalid_files_on_disk_are_listed_precisely(ctx, offline):
    at = no_exception(ctx.page(PAGE, "admin"))  # the engine starts with valid files
    cdir = ctx.app.settings.config_dir
    prod = json.loads((cdir / "production.json").read_text())
    prod["email_limits"]["daily_limit"] = -5
    prod["email_limits"]["daly_limt"] = 10
    (cdir / "production.json").write_text(json.dumps(prod))
    roster = json.loads((cdir / "approvers.json").read_text())
    roster["action_types"]["hot_lead"]["backup"] = roster["action_types"]["hot_lead"]["primary"]
    (cdir / "approvers.json").write_text(json.dumps(roster))
    (cdir / "templates" / "pack.json").write_text("{not json")
    at = no_exception(at.run())
    codes = "\n".join(c.value for c in at.code)
    assert "key 'email_limits.daily_limit' = -5" in codes
    assert "'email_limits.daly_limt'" in codes and "did you mean 'daily_limit'" in codes
    assert "key 'action_types.hot_lead.backup'" in codes and "the backup must be another person" in codes
    assert "pack.json" in codes
    err = text(at.error)
    assert "The configuration on disk is invalid (2 problems)" in err
    assert "The messaging pack is invalid" in err and "approvers.json is invalid (1 problem)" in err
    assert "would refuse to start" in text(at.caption)
    # the limits shown are those the running engine uses, still the valid ones
    assert {r["setting"]: r["value"] for r in table(at, "setting")}["daily limit"].startswith("150 ")
