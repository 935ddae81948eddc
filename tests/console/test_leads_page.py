"""Leads page (ops, admin): CSV import with the per-row error report, the searchable lead list, the ICP
breakdown; and the engine services behind it (engine.queries.leads, the parse progress of engine.adapters.leads_csv)."""
from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from engine.core.errors import InvalidRequest
from engine.queries.leads import errors_csv, get_lead, search_leads
from engine.adapters.leads_csv import PROGRESS_EVERY, import_leads, parse_leads_csv
from engine.adapters.models import Lead
from tests.conftest import WORK_TIME
from tests.console.conftest import ok, text

PAGE = "pages/leads.py"
XSS = "<img src=x onerror=alert(1)>"


TABLES = {"leads_table": "email", "leads_errors": "problem", "leads_icp_table": "criterion"}


def table(at, key: str):
    """A display dataframe by what it holds (AppTest keeps no user key for display dataframes)."""
    return next(d.value for d in at.dataframe if TABLES[key] in d.value.columns)


def add_leads(app, rows: list[dict]) -> None:
    """Insert leads as the import would leave them (status new, not scored unless given)."""
    base = {"first_name": None, "last_name": None, "title": None, "company": None, "company_domain": None,
            "employee_count": None, "industry": None, "country": None, "tier": None, "score": None,
            "disqualified_reason": None, "status": "new", "sequence_step": 0, "website_visits": 0,
            "source": "test"}
    with app.store.write_plain() as s:
        s.connection().execute(sa.insert(Lead.__table__),
                               [{**base, "created_at": WORK_TIME + timedelta(seconds=i), **r}
                                for i, r in enumerate(rows)])


def lead_count(app) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(Lead)).one()


def csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


FIT = {"title": "VP Sales", "company": "Acme", "company_domain": "acme.example", "employee_count": 120,
       "industry": "B2B SaaS", "country": "US"}

# ------------------------------------------------------------------------------------------ roles and empty data


def test_roles_and_the_empty_state(ctx):
    for username in ("ae", "approver"):
        at = ok(ctx.page(PAGE, username))
        assert "Access refused: this page needs the role ops or admin" in text(at.error)
        assert not at.file_uploader and not at.title and not at.dataframe
    for username in ("ops", "admin"):
        at = ok(ctx.page(PAGE, username))
        assert [t.value for t in at.title] == ["Leads"]
        assert at.file_uploader and at.button(key="leads_import").disabled  # nothing uploaded yet
        assert "There are no leads yet" in text(at.info) and "alpha leads import FILE" in text(at.info)
        assert not at.dataframe


# ------------------------------------------------------------------------------------------ import


def test_import_keeps_valid_rows_beside_bad_ones_and_reports_each_bad_row(ctx):
    data = csv_bytes([
        ["Email", "First Name", "Company", "Job Title", "# Employees", "Country"],
        ["ana@acme.example", "Ana", "Acme", "VP Sales", "120", "US"],
        ["not-an-email", "Bad", "Nope", "", "", ""],
        ["bo@beta.example", "Bo", XSS, "CTO", "lots", "GB"],       # employee count dropped, row kept
        ["ANA@acme.example", "Dup", "Acme", "", "", ""],          # duplicate of row 2
        ["=1+2", "Formula", "", "", "", ""],                      # invalid email, quoted back in the report
        ["cy@gamma.example", "Cy", "Gamma", "CEO", "40", "CA"],
    ])
    at = ok(ctx.page(PAGE, "ops"))
    at.file_uploader(key="leads_upload").set_value(("crm export.csv", data, "text/csv"))
    at = ok(at.run())
    assert not at.button(key="leads_import").disabled
    at.button(key="leads_import").click()
    at = ok(at.run())

    with ctx.app.store.read() as s:
        got = {lead.email: lead for lead in s.exec(select(Lead)).all()}
    assert sorted(got) == ["ana@acme.example", "bo@beta.example", "cy@gamma.example"]
    assert got["bo@beta.example"].company == XSS and got["bo@beta.example"].employee_count is None
    assert got["ana@acme.example"].source == "import:crm export.csv"

    metrics = {m.label: m.value for m in at.metric}
    assert {k: metrics[k] for k in ("New leads", "Updated", "Unchanged", "Rejected rows")} == \
        {"New leads": "3", "Updated": "0", "Unchanged": "0", "Rejected rows": "3"}
    assert "3 valid row(s) of 6 were kept; 3 row(s) were rejected" in text(at.warning)
    assert "1 value(s) were dropped" in text(at.info)
    report = table(at, "leads_errors")
    assert list(report.columns) == ["row", "field", "problem"]
    assert list(zip(report["row"], report["field"])) == [(3, "email"), (4, "employee_count"), (5, "email"),
                                                         (6, "email")]
    assert "duplicate of row 2" in report["problem"][2]
    assert at.download_button(key="leads_errors_csv").label == "Download the error report (CSV)"
    assert not at.progress  # the bar is gone when the import is done
    # the new leads are listed at once, newest first
    listed = table(at, "leads_table")
    assert list(listed["email"]) == ["cy@gamma.example", "bo@beta.example", "ana@acme.example"]

    # the same file again: nothing new, nothing changed, the report stays
    at.button(key="leads_import").click()
    at = ok(at.run())
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["New leads"], metrics["Unchanged"]) == ("0", "3")
    assert lead_count(ctx.app) == 3


def test_a_file_that_is_not_a_csv_is_refused_with_what_to_do(ctx):
    at = ok(ctx.page(PAGE, "admin"))
    at.file_uploader(key="leads_upload").set_value(("leads.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4,
                                                    "application/octet-stream"))
    at = ok(at.run())
    at.button(key="leads_import").click()
    at = ok(at.run())
    err = text(at.error)
    assert "Excel .xlsx workbook" in err and "save or export it as CSV" in err
    assert not at.metric and lead_count(ctx.app) == 0


def test_error_report_csv_is_formula_safe():
    out = errors_csv([{"row": 5, "field": "email", "error": "=cmd|'/c calc'!A1 is not a valid email"},
                      {"row": 1, "field": None, "error": "no email column"}])
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [["row", "field", "problem"], ["5", "email", "'=cmd|'/c calc'!A1 is not a valid email"],
                    ["1", "", "no email column"]]


def test_parse_reports_progress_while_reading(tmp_path):
    n = PROGRESS_EVERY * 2 + 7
    p = tmp_path / "big.csv"
    p.write_bytes(csv_bytes([["email"]] + [[f"u{i}@x.example"] for i in range(n)]))
    seen = []
    parsed = parse_leads_csv(p, progress=lambda d, t: seen.append((d, t)))
    assert len(parsed.rows) == n
    assert seen == [(0, n), (PROGRESS_EVERY, n), (2 * PROGRESS_EVERY, n), (n, n)]
    seen.clear()
    (tmp_path / "noemail.csv").write_bytes(csv_bytes([["name"], ["Ana"]]))
    parse_leads_csv(tmp_path / "noemail.csv", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 1), (1, 1)]


def test_import_reports_reading_then_saving(app_factory, tmp_path):
    app = app_factory()
    p = tmp_path / "l.csv"
    p.write_bytes(csv_bytes([["email"], ["a@x.example"], ["bad"], ["b@x.example"]]))
    reading, saving = [], []
    out = import_leads(app.store, p, app.clock, progress=lambda d, t: saving.append((d, t)),
                       parse_progress=lambda d, t: reading.append((d, t)))
    assert (out["imported"], out["rejected"]) == (2, 1)
    assert reading == [(0, 3), (3, 3)] and saving == [(0, 2), (2, 2)]


# ------------------------------------------------------------------------------------------ list


def test_search_by_email_or_company_and_tier_with_pages(ctx):
    rows = [{"email": f"p{i:03d}@acme.example" if i % 2 else f"p{i:03d}@other.example",
             "company": "Acme Corp" if i % 3 == 0 else "Globex", "tier": (i % 3) + 1, "score": 50}
            for i in range(120)]
    rows += [{"email": "dq@rival.example", "company": "100%_Rival", "score": 0,
              "disqualified_reason": "disqualified: competitor (rival.example)"},
             {"email": "new@fresh.example", "company": "Fresh"}]
    add_leads(ctx.app, rows)
    at = ok(ctx.page(PAGE, "ops"))
    assert "122 lead(s) · page 1 of 3" in text(at.caption)
    listed = table(at, "leads_table")
    assert len(listed) == 50 and listed["email"][0] == "new@fresh.example"  # newest first
    assert listed["tier"][0] == "not scored" and listed["tier"][1] == "disqualified"

    at.number_input(key="leads_page").set_value(3)
    at = ok(at.run())
    assert len(table(at, "leads_table")) == 22

    at.text_input(key="leads_query").input("ACME")  # email or company, any case; back to page 1
    at = ok(at.run())
    expected = sum(1 for i in range(120) if i % 2 or i % 3 == 0)
    assert f"{expected} lead(s) · page 1 of 2" in text(at.caption)

    at.selectbox(key="leads_tier").set_value("1")
    at = ok(at.run())
    got = table(at, "leads_table")
    assert set(got["tier"]) == {"1"} and len(got) == sum(1 for i in range(120) if (i % 2 or i % 3 == 0) and i % 3 == 0)

    at.text_input(key="leads_query").input("100%_")  # % and _ are literal
    at.selectbox(key="leads_tier").set_value("all")
    at = ok(at.run())
    assert list(table(at, "leads_table")["email"]) == ["dq@rival.example"]

    at.selectbox(key="leads_tier").set_value("unscored")
    at = ok(at.run())
    assert "No lead matches this search" in text(at.info)


def test_search_service_filters_in_sql(app_factory):
    app = app_factory()
    add_leads(app, [{"email": "a_b@x.example", "company": "X", "tier": 2, "score": 60},
                    {"email": "axb@x.example", "company": "Y", "score": 0, "disqualified_reason": "disqualified"},
                    {"email": "c@z.example", "company": "Zed"}])
    assert [r["email"] for r in search_leads(app, "a_b").rows] == ["a_b@x.example"]
    assert [r["email"] for r in search_leads(app, "", "disqualified").rows] == ["axb@x.example"]
    assert [r["email"] for r in search_leads(app, "", "unscored").rows] == ["c@z.example"]
    assert [r["email"] for r in search_leads(app, "", "2").rows] == ["a_b@x.example"]
    last = search_leads(app, "", "all", page=99, per_page=2)
    assert (last.page, last.pages, last.total, [r["email"] for r in last.rows]) == (2, 2, 3, ["a_b@x.example"])
    for bad in ({"tier": "4"}, {"per_page": 0}, {"query": "x" * 201}):
        with pytest.raises(InvalidRequest):
            search_leads(app, **bad)
    assert get_lead(app, 10_000) is None


# ------------------------------------------------------------------------------------------ ICP breakdown


def test_breakdown_of_the_selected_lead_shows_lead_text_as_text(ctx):
    add_leads(ctx.app, [{"email": "ana@acme.example", **FIT},
                        {"email": "x@evil.example", **FIT, "company": XSS, "title": f"VP Sales {XSS}"}])
    at = ok(ctx.page(PAGE, "admin"))
    sel = at.selectbox(key="leads_selected")
    assert sel.value == 2  # the newest lead on the page
    lead = get_lead(ctx.app, 2)
    fit = ctx.app.score(lead)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ICP score"] == f"{fit.score} / 100" and metrics["Tier"] == str(fit.tier)
    assert metrics["Stored by the pipeline"] == "not scored yet"
    icp = table(at, "leads_icp_table")
    assert list(icp["criterion"]) == ["size", "industry", "title", "geography"]
    assert list(icp["points"]) == [c.points for c in fit.breakdown]
    assert fit.explain() in text(at.text)
    assert XSS in text(at.text)  # the payload is shown, as plain text
    chart = at.get("plotly_chart")
    assert chart and XSS not in chart[0].proto.spec  # no lead text in the chart
    rendered = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.success)]
    assert not any("<img" in str(v) for v in rendered), "lead text went through markdown"

    sel.set_value(1)
    at = ok(at.run())
    assert "ana@acme.example · Acme · VP Sales" in text(at.text)


def test_a_disqualified_lead_says_so(ctx):
    add_leads(ctx.app, [{"email": "bo@beta.example", **FIT, "employee_count": 3}])  # below the size floor
    with ctx.app.store.write_plain() as s:
        lead = s.get(Lead, 1)
        ctx.app.rescore(lead)
        s.add(lead)
    at = ok(ctx.page(PAGE, "ops"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tier"] == "disqualified" and metrics["ICP score"] == "0 / 100"
    assert metrics["Stored by the pipeline"] == "disqualified"
    assert "Disqualified" in text(at.warning)
    assert "disqualified: too small" in text(at.text)
    assert table(at, "leads_table")["tier"][0] == "disqualified"


def test_renders_under_a_second_with_10000_leads(ctx):
    add_leads(ctx.app, [{"email": f"lead{i:05d}@co{i % 700}.example", **FIT, "company": f"Company {i % 700}",
                         "tier": (i % 3) + 1, "score": 40 + i % 60} for i in range(10_000)])
    at = ok(ctx.page(PAGE, "ops"))  # first run builds the cached engine
    assert "10,000 lead(s)" in text(at.caption)
    best = min(_timed(at) for _ in range(3))
    assert best < 1.0, f"render took {best:.2f} s"
    at.text_input(key="leads_query").input("company 69")
    t0 = time.perf_counter()
    at = ok(at.run())
    assert time.perf_counter() - t0 < 1.0
    assert table(at, "leads_table")["company"].str.startswith("Company 69").all()


def _timed(at) -> float:
    t0 = time.perf_counter()
    ok(at.run())
    return time.perf_counter() - t0
