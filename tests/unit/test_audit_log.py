"""engine/queries/audit_log.py: filters, keyset pages, facets and the on-demand chain check, on both backends."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.adapters import audit
from engine.queries import audit_log
from engine.queries.audit_log import AuditFilter
from tests.conftest import WORK_TIME


def arrange(app, rows: list[dict]) -> None:
    """Append audit rows through the real chain (one write transaction)."""
    with app.store.write() as s:
        for r in rows:
            r = dict(r)
            audit.append(s, now=r.pop("now", WORK_TIME), **r)


def sample_rows(t=WORK_TIME) -> list[dict]:
    """Five rows, oldest first: three gateway decisions by two agents, a breaker forced open and closed."""
    return [
        dict(event="gateway.decision", actor="GHL_MASTER", agent="GHL_MASTER", action="send_email", status="sent",
             ref="k1", now=t - timedelta(days=3)),
        dict(event="gateway.decision", actor="GHL_MASTER", agent="GHL_MASTER", action="send_email",
             status="denied", ref="k2", reasons=["SPAM_CONTENT"], now=t - timedelta(days=2)),
        dict(event="gateway.decision", actor="CRAFTER", agent="CRAFTER", action="crm_upsert", status="deferred",
             ref="k3", now=t - timedelta(days=1)),
        dict(event="breaker.forced", actor="console:ops", status="OPEN", ref="ghl",
             data={"reason": "GHL outage", "api_key": "sk-live-123"}, now=t - timedelta(hours=2)),
        dict(event="breaker.forced", actor="console:ops", status="CLOSED", ref="ghl", data={"reason": "back"},
             now=t - timedelta(hours=1)),
    ]


@pytest.fixture
def app(app_factory):
    a = app_factory()
    arrange(a, sample_rows())
    return a


def seqs(page: dict) -> list[int]:
    return [r["seq"] for r in page["rows"]]


def refs(app, **kw) -> list[str]:
    return [r["ref"] for r in audit_log.search(app, AuditFilter.of(**kw), limit=500)["rows"]]


def test_filters_return_exactly_the_matching_rows_newest_first(app):
    assert refs(app, actor="GHL_MASTER") == ["k2", "k1"]
    assert refs(app, agent="CRAFTER") == ["k3"]
    assert refs(app, events=["breaker.forced"]) == ["ghl", "ghl"]
    assert refs(app, events="gateway.decision", action="send_email") == ["k2", "k1"]
    assert refs(app, statuses=["denied", "deferred"]) == ["k3", "k2"]
    assert refs(app, ref="k1") == ["k1"]
    assert refs(app, since=WORK_TIME - timedelta(days=2), until=WORK_TIME - timedelta(hours=1)) == ["ghl", "k3",
                                                                                                    "k2"]
    assert refs(app, actor="console:ops", statuses="OPEN") == ["ghl"]
    assert refs(app, actor="nobody") == []
    assert audit_log.count(app, AuditFilter.of(actor="GHL_MASTER")) == 2
    assert audit_log.count(app, AuditFilter.of(actor="  ", events=["", " "])) == audit_log.count(app)  # blanks


def test_rows_are_plain_dicts_with_decoded_json_and_redacted_secrets(app):
    row = audit_log.search(app, AuditFilter.of(events=["breaker.forced"], statuses=["OPEN"]))["rows"][0]
    assert row["data"] == {"reason": "GHL outage", "api_key": "[REDACTED]"}
    assert row["reasons"] == [] and row["at"].endswith("Z") and len(row["row_hash"]) == 64
    denied = audit_log.search(app, AuditFilter.of(statuses="denied"))["rows"][0]
    assert denied["reasons"] == ["SPAM_CONTENT"]
    assert audit_log.get(app, denied["seq"]) == denied and audit_log.get(app, 10**9) is None


def test_keyset_pages_cover_every_row_once(app):
    total = audit_log.count(app)
    pages, cursor = [], None
    while True:
        page = audit_log.search(app, before_seq=cursor, limit=2)
        pages.append(seqs(page))
        cursor = page["next_before_seq"]
        if cursor is None:
            break
    flat = [s for p in pages for s in p]
    assert flat == sorted(flat, reverse=True) and len(flat) == len(set(flat)) == total
    assert all(len(p) == 2 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 2
    flt = AuditFilter.of(actor="GHL_MASTER")
    first = audit_log.search(app, flt, limit=1)
    assert first["next_before_seq"] is not None
    second = audit_log.search(app, flt, before_seq=first["next_before_seq"], limit=1)
    assert [r["ref"] for r in first["rows"] + second["rows"]] == ["k2", "k1"] and second["next_before_seq"] is None


def test_page_size_is_bounded(app):
    assert len(audit_log.search(app, limit=10**6)["rows"]) == audit_log.count(app)  # clamped, not an error
    assert len(audit_log.search(app, limit=0)["rows"]) == 1


def test_facets_list_the_values_to_filter_by(app):
    f = audit_log.facets(app)
    assert {"GHL_MASTER", "CRAFTER", "console:ops"} <= set(f["actor"])
    assert f["agent"] == ["CRAFTER", "GHL_MASTER"]
    assert {"gateway.decision", "breaker.forced"} <= set(f["event"])
    assert f["action"] == ["crm_upsert", "send_email"]
    assert {"sent", "denied", "deferred", "OPEN", "CLOSED"} <= set(f["status"])


def test_verify_chain_counts_rows_and_names_the_first_bad_row(app):
    ok = audit_log.verify_chain(app)
    assert ok["ok"] is True and ok["rows"] == audit_log.count(app) and ok["bad_row"] is None
    target = audit_log.search(app, AuditFilter.of(ref="k2"))["rows"][0]["seq"]
    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET data = :d WHERE seq = :s"), {"d": '{"to":"someone-else"}', "s": target})
    bad = audit_log.verify_chain(app)
    assert bad["ok"] is False and bad["first_bad_seq"] == target
    assert f"row {target} was edited" in bad["problem"]
    assert bad["rows"] == target and bad["bad_row"]["ref"] == "k2" and bad["bad_row"]["data"] == {"to": "someone-else"}
    assert bad["seconds"] >= 0 and bad["checked_at"].endswith("Z")
