"""Audit log page: filters, SQL paging, chain verification on request (intact and tampered), roles."""
from __future__ import annotations

from datetime import date, timedelta

import re

import pytest
import sqlalchemy as sa

from engine.queries import audit_log
from tests.conftest import WORK_TIME
from tests.unit.test_audit_log import arrange, sample_rows
from tests.console.conftest import ok, text

PAGE = "pages/audit_log.py"


def table(at):
    return next(d.value for d in at.dataframe if d.value.columns[0] == "seq")


def refs(at) -> list[str]:
    return table(at)["ref"].tolist()


@pytest.fixture
def arranged(ctx):
    arrange(ctx.app, sample_rows() + [
        dict(event="webhook.rb2b", actor="rb2b", status="processed", ref="visitor",
             data={"company": "<img src=x onerror=alert(1)>"}, now=WORK_TIME + timedelta(minutes=1))])
    return ctx


@pytest.mark.parametrize("username", ["ae", "approver"])
def test_other_roles_are_refused(ctx, username):
    at = ok(ctx.page(PAGE, username))
    assert "Access refused: this page needs the role ops or admin" in text(at.error)
    assert not at.dataframe and not at.button


@pytest.mark.parametrize("username", ["ops", "admin"])
def test_newest_first_with_every_column(arranged, username):
    at = ok(arranged.page(PAGE, username))
    t = table(at)
    n = audit_log.count(arranged.app)
    assert t["seq"].tolist() == list(range(n, 0, -1))  # init rows and the arranged ones, newest first
    assert refs(at)[:6] == ["visitor", "ghl", "ghl", "k3", "k2", "k1"]
    assert t["reasons"].tolist()[4] == "SPAM_CONTENT"
    assert '"company": "<img src=x onerror=alert(1)>"' in t["data"].tolist()[0]  # shown as data, never markup
    assert '"api_key": "[REDACTED]"' in t["data"].tolist()[2]
    assert f"of **{n:,}** matching" in text(at.markdown)
    assert "Not verified in this session yet." in text(at.info)
    assert at.button(key="audit_older").disabled is True and at.button(key="audit_newer").disabled is True
    at.session_state["audit_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}  # a click on row 3
    at = ok(at.run())
    detail = at.json[0].value
    assert '"ref": "ghl"' in detail and '"reason": "GHL outage"' in detail and '"[REDACTED]"' in detail


def test_filters_return_exactly_the_arranged_rows(arranged):
    at = ok(arranged.page(PAGE, "ops"))
    at.selectbox(key="audit_actor").set_value("GHL_MASTER")
    at = ok(at.run())
    assert refs(at) == ["k2", "k1"]
    at.multiselect(key="audit_status").set_value(["denied"])
    at = ok(at.run())
    assert refs(at) == ["k2"]
    at.selectbox(key="audit_actor").set_value("(any)")
    at.multiselect(key="audit_status").set_value(["denied", "deferred"])
    at.selectbox(key="audit_agent").set_value("CRAFTER")
    at = ok(at.run())
    assert refs(at) == ["k3"]
    at.selectbox(key="audit_agent").set_value("(any)")
    at.multiselect(key="audit_status").set_value([])
    at.selectbox(key="audit_action").set_value("send_email")
    at = ok(at.run())
    assert refs(at) == ["k2", "k1"]
    at.selectbox(key="audit_action").set_value("(any)")
    at.multiselect(key="audit_events").set_value(["breaker.forced"])
    at = ok(at.run())
    assert refs(at) == ["ghl", "ghl"]
    at.multiselect(key="audit_events").set_value(["gateway.decision"])
    at.date_input(key="audit_from").set_value(date(2026, 11, 22))
    at.date_input(key="audit_to").set_value(date(2026, 11, 23))
    at = ok(at.run())
    assert refs(at) == ["k3", "k2"]  # 22 and 23 November, both days included
    at.text_input(key="audit_ref").input("k3")
    at = ok(at.run())
    assert refs(at) == ["k3"]
    at.text_input(key="audit_ref").input("nothing-like-this")
    at = ok(at.run())
    assert "No audit rows match these filters." in text(at.info) and not at.dataframe


def test_pages_of_rows_in_sql(ctx):
    arrange(ctx.app, [dict(event="webhook.ghl", actor="ghl", status="processed", ref=f"e{i}") for i in range(120)])
    n = audit_log.count(ctx.app)
    at = ok(ctx.page(PAGE, "ops"))
    first = table(at)["seq"].tolist()
    assert first == list(range(n, n - 50, -1))
    at.button(key="audit_older").click()
    at = ok(at.run())
    assert table(at)["seq"].tolist() == list(range(n - 50, n - 100, -1))
    assert f"Rows **51-100** of **{n:,}**" in text(at.markdown)
    at.button(key="audit_older").click()
    at = ok(at.run())
    assert table(at)["seq"].tolist() == list(range(n - 100, 0, -1))
    assert at.button(key="audit_older").disabled is True
    at.button(key="audit_newer").click()
    at = ok(at.run())
    assert table(at)["seq"].tolist() == list(range(n - 50, n - 100, -1))
    at.button(key="audit_newest").click()
    at = ok(at.run())
    assert table(at)["seq"].tolist() == first
    at.button(key="audit_older").click()
    at = ok(at.run())
    at.selectbox(key="audit_size").set_value(100)  # new filters or page size: back to the newest rows
    at = ok(at.run())
    assert table(at)["seq"].tolist() == list(range(n, n - 100, -1))


def test_verification_of_an_intact_chain(arranged):
    at = ok(arranged.page(PAGE, "admin"))
    at.button(key="audit_verify").click()
    at = ok(at.run())
    n = audit_log.count(arranged.app)
    assert f"Chain intact: {n:,} row(s) checked" in text(at.success)


def test_a_tampered_row_is_named(arranged):
    target = audit_log.search(arranged.app, audit_log.AuditFilter.of(ref="k2"))["rows"][0]["seq"]
    with arranged.app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET data = :d WHERE seq = :s"),
                  {"d": '{"to":"attacker@evil.example"}', "s": target})
    at = ok(arranged.page(PAGE, "ops"))
    assert "Chain BROKEN" not in text(at.error)  # nothing is verified on render
    at.button(key="audit_verify").click()
    at = ok(at.run())
    err = text(at.error)
    assert f"Chain BROKEN at row {target}: row {target} was edited" in err
    assert f"{target:,} row(s) checked" in err
    bad = at.json[-1].value
    assert '"attacker@evil.example"' in bad and '"k2"' in bad


def test_empty_data_shows_nothing_and_times_are_local_and_readable(arranged):
    """Issue 13: `{}` was shown for rows without data, and times were raw ISO with microseconds."""
    at = ok(arranged.page(PAGE, "ops"))
    t = table(at).set_index("ref")
    assert "{}" not in t["data"].tolist()
    assert t.loc["k1", "data"] == "" and t.loc["k3", "data"] == ""
    assert t.loc["visitor", "data"].startswith('{"company"')  # real data is still there
    when = t.loc["k1", "at"]
    assert re.fullmatch(r"\w{3} \d{1,2} \w{3}( \d{4})? \d\d:\d\d:\d\d UTC", when), when  # no ISO, no microseconds
    assert "Rows as of" in text(at.caption)
