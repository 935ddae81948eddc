"""Lead import and export against the database (SQLite and PostgreSQL, via app_factory)."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlmodel import func, select

from engine.adapters.leads_csv import EXPORT_COLUMNS, LeadFileError, export_leads, import_leads
from engine.adapters.models import Lead

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo_leads.csv"
UTC = timezone.utc

HEADER = ["Email", "First Name", "Last Name", "Job Title", "Company", "Website", "# Employees", "Country",
          "Time Zone", "Last Open", "Website Visits", "Seniority"]


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header] + rows)
    return path


def sample_rows() -> list[list[str]]:
    return [
        ["Ana@Acme.example", "Ana", "Silva", "VP Sales", "Acme", "https://www.acme.example/", "51-200", "US",
         "America/New_York", "2026-11-01T10:00:00Z", "3", "VP"],
        ["bo@beta.example", "Bo", "Li", "CTO", "Beta", "beta.example", "1,000+", "GB", "Europe/London", "", "", ""],
        ["cy@gamma.example", "Cy", "Okafor", "=HYPERLINK(\"x\")", "Gamma", "", "", "", "Mars/Base", "", "", ""],
        ["not-an-email", "Bad", "Row", "", "", "", "", "", "", "", "", ""],
        ["ANA@acme.example", "Dup", "Row", "", "", "", "", "", "", "", "", ""],
        ["", "No", "Email", "", "", "", "", "", "", "", "", ""],
        ["di@delta.example", "Di", "Ng", "CEO", "Delta", "", "lots", "", "", "", "", ""],
    ]


def leads(app) -> dict[str, Lead]:
    with app.store.read() as s:
        return {lead.email: lead for lead in s.exec(select(Lead)).all()}


def count(app) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(Lead)).one()


def test_import_counts_and_values(app_factory, tmp_path):
    app = app_factory()
    seen = []
    out = import_leads(app.store, write(tmp_path / "leads.csv", sample_rows()), app.clock,
                       progress=lambda done, total: seen.append((done, total)))
    assert (out["imported"], out["updated"], out["rejected"]) == (4, 0, 3)
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert [(e["row"], e["field"]) for e in out["errors"]] == [
        (4, "timezone"), (5, "email"), (6, "email"), (7, "email"), (8, "employee_count")]
    assert "duplicate of row 2" in out["errors"][2]["error"]

    got = leads(app)
    assert sorted(got) == ["ana@acme.example", "bo@beta.example", "cy@gamma.example", "di@delta.example"]
    ana = got["ana@acme.example"]
    assert (ana.first_name, ana.title, ana.company, ana.company_domain) == ("Ana", "VP Sales", "Acme", "acme.example")
    assert (ana.employee_count, ana.country, ana.timezone, ana.website_visits) == (125, "US", "America/New_York", 3)
    assert ana.last_open_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert ana.last_engaged_at == ana.last_open_at
    assert ana.data == {"Seniority": "VP"}
    assert ana.source == "import:leads.csv"
    assert ana.status == "new"
    assert ana.created_at == ana.updated_at == app.clock()
    assert got["bo@beta.example"].employee_count == 1000
    assert got["bo@beta.example"].data is None and got["bo@beta.example"].last_open_at is None
    cy = got["cy@gamma.example"]
    assert cy.title == "=HYPERLINK(\"x\")" and cy.timezone is None
    assert got["di@delta.example"].employee_count is None


def test_reimport_changes_nothing(app_factory, tmp_path):
    app = app_factory()
    p = write(tmp_path / "leads.csv", sample_rows())
    import_leads(app.store, p, app.clock)
    before = {e: (lead.updated_at, lead.title, lead.data) for e, lead in leads(app).items()}
    app.clock.advance(3600)
    out = import_leads(app.store, p, app.clock)
    assert (out["imported"], out["updated"], out["unchanged"], out["rejected"]) == (0, 0, 4, 3)
    assert {e: (lead.updated_at, lead.title, lead.data) for e, lead in leads(app).items()} == before


def test_changed_field_counts_as_updated(app_factory, tmp_path):
    app = app_factory()
    rows = sample_rows()
    import_leads(app.store, write(tmp_path / "a.csv", rows), app.clock)
    app.clock.advance(3600)

    rows[0][3] = "Chief Revenue Officer"      # ana: new title
    rows[0][9] = "2026-10-01T10:00:00Z"       # ana: an older open than the stored one: ignored
    rows[0][10] = "1"                         # ana: fewer visits than stored: ignored
    rows[1][3] = ""                           # bo: empty cell: never clears the stored title
    rows[1][9] = "2026-11-20T08:00:00Z"       # bo: first open: an update
    rows[2][11] = "Director"                  # cy: a new data key
    out = import_leads(app.store, write(tmp_path / "b.csv", rows), app.clock)
    assert (out["imported"], out["updated"], out["unchanged"]) == (0, 3, 1)

    got = leads(app)
    ana, bo, cy, di = (got[e] for e in ("ana@acme.example", "bo@beta.example", "cy@gamma.example",
                                        "di@delta.example"))
    assert ana.title == "Chief Revenue Officer"
    assert ana.last_open_at == datetime(2026, 11, 1, 10, tzinfo=UTC) and ana.website_visits == 3
    assert ana.source == "import:a.csv"                       # the default source is set on insert only
    assert bo.title == "CTO"
    assert bo.last_open_at == bo.last_engaged_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert cy.data == {"Seniority": "Director"}
    assert ana.updated_at == bo.updated_at == cy.updated_at == app.clock()
    assert di.updated_at < app.clock()


def test_ten_thousand_rows(app_factory, tmp_path):
    app = app_factory()
    rows = [[f"lead{i}@co{i % 700}.example", f"First{i}", f"Last{i}", "VP Sales", f"Co {i % 700}",
             f"co{i % 700}.example", str(i % 900 + 1), "US", "America/Chicago",
             "2026-10-01T10:00:00Z" if i % 5 == 0 else "", str(i % 7), ""] for i in range(10_000)]
    rows[5000][0] = "broken@"
    rows[7000][0] = rows[10][0].upper()
    p = write(tmp_path / "big.csv", rows)
    seen = []
    out = import_leads(app.store, p, app.clock, progress=lambda d, t: seen.append((d, t)))
    assert (out["imported"], out["updated"], out["rejected"]) == (9998, 0, 2)
    assert [e["row"] for e in out["errors"]] == [5002, 7002]
    assert count(app) == 9998
    assert seen[-1] == (9998, 9998) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    again = import_leads(app.store, p, app.clock)
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 9998)


@pytest.mark.parametrize("make,match", [
    (lambda d: d / "missing.csv", "not found"),
    (lambda d: d, "is a directory"),
    (lambda d: _bytes(d / "x.xlsx", b"PK\x03\x04" + bytes(range(256)) * 4), "Excel .xlsx workbook"),
    (lambda d: _bytes(d / "junk.csv", bytes((i * 7919) % 256 for i in range(5000))), "binary data"),
    (lambda d: _bytes(d / "empty.csv", b""), "is empty"),
    (lambda d: _bytes(d / "headless.csv", b"ana@acme.example,Ana\n"), "no header row"),
])
def test_unreadable_file_raises_a_clear_error(app_factory, tmp_path, make, match):
    app = app_factory()
    path = make(tmp_path)
    with pytest.raises(LeadFileError, match=match) as e:
        import_leads(app.store, path, app.clock)
    assert str(path) in str(e.value)
    assert count(app) == 0


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_missing_email_column_imports_nothing(app_factory, tmp_path):
    app = app_factory()
    out = import_leads(app.store, write(tmp_path / "x.csv", [["Ana", "Acme"]], header=["Name", "Company"]), app.clock)
    assert (out["imported"], out["updated"], out["rejected"]) == (0, 0, 1)
    assert out["errors"][0]["row"] == 1 and "no email column" in out["errors"][0]["error"]
    assert count(app) == 0


SNAPSHOT = ("email", "first_name", "last_name", "title", "company", "company_domain", "employee_count", "industry",
            "country", "region", "timezone", "linkedin_url", "source", "last_open_at", "last_click_at",
            "last_reply_at", "last_visit_at", "website_visits", "last_engaged_at", "data")


def snapshot(app) -> dict:
    return {e: tuple(getattr(lead, f) for f in SNAPSHOT) for e, lead in leads(app).items()}


def test_export_then_reimport_round_trip(app_factory, tmp_path):
    app = app_factory()
    import_leads(app.store, DEMO, app.clock)
    import_leads(app.store, write(tmp_path / "nasty.csv", [
        ["-minus@acme.example", "=cmd|' /C calc'!A0", "+Plus", "@SUM(A1)", "-Dash Co", "acme.example", "", "",
         "", "2026-11-02T03:04:05.123456Z", "", "'=quoted"],
    ]), app.clock)
    before = snapshot(app)
    assert len(before) > 500

    out = tmp_path / "export.csv"
    assert export_leads(app.store, out) == len(before)
    raw = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert raw[0] == list(EXPORT_COLUMNS)
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in raw for cell in row)
    nasty = next(r for r in raw if r[0] == "'-minus@acme.example")
    assert nasty[1:4] == ["'=cmd|' /C calc'!A0", "'+Plus", "'@SUM(A1)"]

    again = import_leads(app.store, out, app.clock)            # the same database: nothing to do
    assert (again["imported"], again["updated"], again["rejected"], again["errors"]) == (0, 0, 0, [])

    with app.store.write_plain() as s:                         # an empty database: everything comes back
        s.connection().execute(delete(Lead.__table__))
    back = import_leads(app.store, out, app.clock)
    assert (back["imported"], back["rejected"]) == (len(before), 0)
    assert snapshot(app) == before


def test_export_of_an_empty_database(app_factory, tmp_path):
    app = app_factory()
    out = tmp_path / "empty.csv"
    assert export_leads(app.store, out) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [",".join(EXPORT_COLUMNS)]


def test_demo_csv_imports_with_its_bad_rows_reported(app_factory):
    app = app_factory()
    out = import_leads(app.store, DEMO, app.clock)
    assert out["imported"] >= 500
    assert out["rejected"] == 5
    with open(DEMO, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    row_of = {}
    for n, rec in enumerate(records, 1):
        for cell in rec:
            row_of.setdefault(cell, n)
    by_field = {}
    for e in out["errors"]:
        assert isinstance(e["row"], int) and 2 <= e["row"] <= len(records)
        by_field.setdefault(e["field"], []).append(e)
    emails = {e["row"]: e["error"] for e in by_field["email"]}
    assert row_of["tom@@quarry-labs.example"] in emails
    assert row_of["maria.gonzalez(at)brightlane.example"] in emails
    assert sum("duplicate of row" in m for m in emails.values()) == 2
    assert sum("no email address" in m for m in emails.values()) == 1
    assert [e["row"] for e in by_field["employee_count"]] == [row_of["a few hundred"]]
    assert [e["row"] for e in by_field["last_open_at"]] == [row_of["last tuesday"]]
    assert [e["row"] for e in by_field["timezone"]] == [row_of["Mars/Olympus_Mons"]]

    got = leads(app)
    domains = {lead.company_domain for lead in got.values()}
    for name in ("customers.txt", "competitors.txt"):
        for line in (ROOT / "config" / "exclusions" / name).read_text().splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                assert entry in domains, entry
    assert all(lead.email.endswith(".example") for lead in got.values())
    sizes = {lead.employee_count for lead in got.values()}
    assert {19, 20, 50, 51, 500, 501} <= sizes
    assert sum(lead.last_reply_at is not None for lead in got.values()) >= 3
    engaged = [lead for lead in got.values() if lead.last_engaged_at]
    assert 0 < len(engaged) < len(got) / 2                     # most leads have no engagement
    assert all(lead.last_engaged_at <= app.clock() for lead in engaged)


def test_demo_csv_is_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_leads.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
