"""Lead CSV parsing (pure: files in, rows and errors out; no database)."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.errors import AlphaError
from engine.rules.guardrails.recipients import syntax_problem
from engine.adapters.leads_csv import (ALIASES, EXPORT_COLUMNS, LeadFileError, neutralise, parse_datetime,
                             parse_employee_count, parse_leads_csv, unneutralise, write_leads_csv)

UTC = timezone.utc


def put(tmp_path, text: str, encoding: str = "utf-8", name: str = "leads.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def put_rows(tmp_path, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8", name: str = "leads.csv"):
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return put(tmp_path, buf.getvalue(), encoding, name)


def errors_by_row(result) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for e in result.errors:
        out.setdefault(e["row"], []).append(e)
    return out


# ------------------------------------------------------------------------------------------ encodings, delimiters

def test_utf8_with_bom(tmp_path):
    p = put(tmp_path, "\ufeffEmail,First Name\nana@acme.example,Ana\n")
    r = parse_leads_csv(p)
    assert r.encoding == "utf-8-sig"
    assert r.columns["Email"] == "email"
    assert [(x["email"], x["first_name"]) for x in r.rows] == [("ana@acme.example", "Ana")]
    assert r.errors == []


def test_plain_utf8_with_accents(tmp_path):
    p = put(tmp_path, "Email,First Name,Company\nzoe@acme.example,Zoë,Müller & Søn\n")
    r = parse_leads_csv(p)
    assert r.encoding == "utf-8"
    assert (r.rows[0]["first_name"], r.rows[0]["company"]) == ("Zoë", "Müller & Søn")


def test_latin1_with_accents(tmp_path):
    p = put(tmp_path, "Email,First Name,Last Name,Company\nfrancois@acme.example,François,Lefèvre,Société Générale\n",
            encoding="latin-1")
    r = parse_leads_csv(p)
    assert r.encoding in ("cp1252", "latin-1")
    row = r.rows[0]
    assert (row["first_name"], row["last_name"], row["company"]) == ("François", "Lefèvre", "Société Générale")


def test_cp1252_specific_characters(tmp_path):
    p = put(tmp_path, "Email,Title\nana@acme.example,“Head” of Sales – EMEA €\n", encoding="cp1252")
    r = parse_leads_csv(p)
    assert r.encoding == "cp1252"
    assert r.rows[0]["title"] == "“Head” of Sales – EMEA €"


def test_utf8_bom_on_latin1_text(tmp_path):
    p = tmp_path / "leads.csv"
    p.write_bytes(b"\xef\xbb\xbf" + "Email,First Name\nzoe@acme.example,Zoë\n".encode("latin-1"))
    r = parse_leads_csv(p)
    assert r.encoding == "cp1252"
    assert r.columns["Email"] == "email" and r.rows[0]["first_name"] == "Zoë"


def test_utf16_with_bom_tab_separated(tmp_path):
    # Excel's "Unicode text" export.
    p = put(tmp_path, "\ufeffEmail\tFirst Name\nana@acme.example\tÁna\n", encoding="utf-16-le")
    r = parse_leads_csv(p)
    assert (r.encoding, r.delimiter) == ("utf-16", "\t")
    assert r.rows[0]["first_name"] == "Ána"


def test_semicolons(tmp_path):
    p = put(tmp_path, "Email;Company;Employees\nana@acme.example;Acme, Inc.;250\n"
                      "bo@beta.example;\"Beta; Gamma\";51-200\n")
    r = parse_leads_csv(p)
    assert r.delimiter == ";"
    assert [(x["company"], x["employee_count"]) for x in r.rows] == [("Acme, Inc.", 250), ("Beta; Gamma", 125)]


def test_tabs(tmp_path):
    p = put_rows(tmp_path, [["Email", "Company", "Title"], ["ana@acme.example", "Acme, Inc.", "VP Sales; EMEA"]],
                 delimiter="\t")
    r = parse_leads_csv(p)
    assert r.delimiter == "\t"
    assert (r.rows[0]["company"], r.rows[0]["title"]) == ("Acme, Inc.", "VP Sales; EMEA")


def test_commas_win_over_semicolons_in_the_data(tmp_path):
    p = put(tmp_path, 'Email,Notes\nana@acme.example,"a;b;c;d"\nbo@acme.example,"e;f;g;h"\n')
    r = parse_leads_csv(p)
    assert r.delimiter == ","
    assert r.rows[0]["data"] == {"Notes": "a;b;c;d"}


def test_single_column_file(tmp_path):
    r = parse_leads_csv(put(tmp_path, "email\nana@acme.example\nbo@acme.example\n"))
    assert [x["email"] for x in r.rows] == ["ana@acme.example", "bo@acme.example"]


def test_old_mac_line_endings(tmp_path):
    r = parse_leads_csv(put(tmp_path, "Email,Company\rana@acme.example,Acme\rbo@beta.example,Beta\r"))
    assert [x["company"] for x in r.rows] == ["Acme", "Beta"]
    assert [x["row"] for x in r.rows] == [2, 3]


# ------------------------------------------------------------------------------------------ headers

@pytest.mark.parametrize("header,field,value,expected", [
    ("Email", "email", "Ana@Acme.example", "ana@acme.example"),
    ("Email Address", "email", "ana@acme.example", "ana@acme.example"),
    ("E-mail", "email", "ana@acme.example", "ana@acme.example"),
    ("Work Email", "email", "ana@acme.example", "ana@acme.example"),
    ("BUSINESS_EMAIL", "email", "ana@acme.example", "ana@acme.example"),
    ("First Name", "first_name", "Ana", "Ana"),
    ("Firstname", "first_name", "Ana", "Ana"),
    ("first_name", "first_name", "Ana", "Ana"),
    ("Given Name", "first_name", "Ana", "Ana"),
    ("Last Name", "last_name", "Silva", "Silva"),
    ("Surname", "last_name", "Silva", "Silva"),
    ("Job Title", "title", "VP Sales", "VP Sales"),
    ("Title", "title", "VP Sales", "VP Sales"),
    ("Position", "title", "VP Sales", "VP Sales"),
    ("Company", "company", "Acme", "Acme"),
    ("Company Name", "company", "Acme", "Acme"),
    ("Account Name", "company", "Acme", "Acme"),
    ("Organization", "company", "Acme", "Acme"),
    ("Company Domain", "company_domain", "acme.example", "acme.example"),
    ("Website", "company_domain", "https://www.Acme.example/about?x=1", "acme.example"),
    ("Domain", "company_domain", "www.acme.example", "acme.example"),
    ("# Employees", "employee_count", "250", 250),
    ("Employees", "employee_count", "51-200", 125),
    ("Employee Count", "employee_count", "1,000+", 1000),
    ("Company Size", "employee_count", "11-50", 30),
    ("Headcount", "employee_count", "40", 40),
    ("Number of Employees", "employee_count", "40", 40),
    ("No. of Employees", "employee_count", "40", 40),
    ("Industry", "industry", "Software", "Software"),
    ("Country", "country", "Germany", "Germany"),
    ("Country/Region", "country", "Germany", "Germany"),
    ("Region", "region", "Bavaria", "Bavaria"),
    ("State", "region", "CA", "CA"),
    ("State/Province", "region", "ON", "ON"),
    ("Time Zone", "timezone", "europe/berlin", "Europe/Berlin"),
    ("timezone", "timezone", "America/New_York", "America/New_York"),
    ("LinkedIn URL", "linkedin_url", "linkedin.com/in/ana/", "https://linkedin.com/in/ana"),
    ("Person Linkedin Url", "linkedin_url", "https://www.linkedin.com/in/ana", "https://www.linkedin.com/in/ana"),
    ("Lead Source", "source", "Webinar", "Webinar"),
    ("Last Open", "last_open_at", "2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("Last Opened", "last_open_at", "2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("Last Click", "last_click_at", "2026-11-01 10:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
    ("Last Reply", "last_reply_at", "2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
    ("Last Visit", "last_visit_at", "2026-11-01T10:00:00+01:00", datetime(2026, 11, 1, 9, tzinfo=UTC)),
    ("Website Visits", "website_visits", "12", 12),
    ("Visits", "website_visits", "1,204", 1204),
])
def test_header_aliases(tmp_path, header, field, value, expected):
    cols = [header] if field == "email" else ["Email", header]
    cells = [value] if field == "email" else ["ana@acme.example", value]
    r = parse_leads_csv(put_rows(tmp_path, [cols, cells]))
    assert r.errors == []
    assert r.columns[header] == field
    assert r.rows[0][field] == expected
    assert r.rows[0]["data"] == {}


def test_every_alias_maps_to_its_field(tmp_path):
    for field, aliases in ALIASES.items():
        for alias in aliases:
            r = parse_leads_csv(put_rows(tmp_path, [["email" if field != "email" else "x", alias],
                                                    ["ana@acme.example", "v"]]))
            assert r.columns[alias] == field.lstrip("_"), alias


@pytest.mark.parametrize("value,first,last", [
    ("Jane Doe", "Jane", "Doe"),
    ("Jane van der Berg", "Jane", "van der Berg"),
    ("Doe, John", "John", "Doe"),
    ("Dr. Ana Silva", "Ana", "Silva"),
    ("Cher", "Cher", None),
])
def test_single_name_column_is_split(tmp_path, value, first, last):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Full Name"], ["a@acme.example", value]]))
    assert (r.rows[0]["first_name"], r.rows[0]["last_name"]) == (first, last)


def test_name_column_does_not_override_first_and_last(tmp_path):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Name", "First Name", "Last Name"],
                                            ["a@acme.example", "Someone Else", "Ana", "Silva"]]))
    assert (r.rows[0]["first_name"], r.rows[0]["last_name"]) == ("Ana", "Silva")
    assert r.rows[0]["data"] == {"Name": "Someone Else"}


def test_unknown_columns_are_kept_in_data(tmp_path):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Seniority", "Lead Owner", "", "Notes", "Notes"],
                                            ["a@acme.example", "VP", "", "loose", "n1", "n2"]]))
    assert r.rows[0]["data"] == {"Seniority": "VP", "column 4": "loose", "Notes": "n1", "Notes (2)": "n2"}
    assert r.columns["Seniority"] == "data"


def test_second_email_column_fills_in_and_is_kept(tmp_path):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Work Email"],
                                            ["", "ana@acme.example"],
                                            ["bo@acme.example", "bo.work@acme.example"]]))
    assert [x["email"] for x in r.rows] == ["ana@acme.example", "bo@acme.example"]
    assert r.rows[1]["data"] == {"Work Email": "bo.work@acme.example"}


# ------------------------------------------------------------------------------------------ missing columns

def test_missing_email_column_is_one_file_level_error(tmp_path):
    p = put_rows(tmp_path, [["Name", "Company"], ["Ana Silva", "Acme"], ["Bo Li", "Beta"]])
    r = parse_leads_csv(p)
    assert r.rows == []
    assert r.total_rows == 2 and r.rejected == 2
    assert len(r.errors) == 1
    e = r.errors[0]
    assert (e["row"], e["field"]) == (1, "email")
    assert "'Name'" in e["error"] and "'Company'" in e["error"]          # the columns found
    assert "workemail" in e["error"] and "emailaddress" in e["error"]    # the aliases accepted


def test_only_email_column_is_enough(tmp_path):
    r = parse_leads_csv(put(tmp_path, "E-Mail\nana@acme.example\n"))
    row = r.rows[0]
    assert row["email"] == "ana@acme.example"
    assert all(row[f] is None for f in ("first_name", "company", "employee_count", "timezone", "last_open_at"))
    assert row["data"] == {}


# ------------------------------------------------------------------------------------------ rows

def test_duplicate_emails_keep_the_first(tmp_path):
    p = put_rows(tmp_path, [["Email", "Title"], ["ana@acme.example", "VP Sales"], ["bo@acme.example", "CTO"],
                            ["ANA@Acme.Example ", "CEO"], ["ana@acme.example", "COO"]])
    r = parse_leads_csv(p)
    assert [(x["email"], x["title"]) for x in r.rows] == [("ana@acme.example", "VP Sales"), ("bo@acme.example", "CTO")]
    assert [(e["row"], e["field"]) for e in r.errors] == [(4, "email"), (5, "email")]
    assert all("duplicate of row 2" in e["error"] for e in r.errors)
    assert r.rejected == 2


@pytest.mark.parametrize("bad", ["not-an-email", "ana@", "@acme.example", "ana@@acme.example", "ana@acme",
                                 "ana smith@acme.example", "ana@acme..example", "ana@localhost"])
def test_bad_emails_are_rejected_with_row_numbers(tmp_path, bad):
    p = put_rows(tmp_path, [["Email", "Company"], ["ok@acme.example", "Acme"], [bad, "Bad"], ["ok2@acme.example", "B"]])
    r = parse_leads_csv(p)
    assert [x["email"] for x in r.rows] == ["ok@acme.example", "ok2@acme.example"]
    assert len(r.errors) == 1
    assert (r.errors[0]["row"], r.errors[0]["field"]) == (3, "email")
    assert "not a valid email address" in r.errors[0]["error"]


def test_email_forms_that_are_cleaned(tmp_path):
    p = put_rows(tmp_path, [["Email"], ["  Ana@ACME.example  "], ["mailto:bo@acme.example"],
                            ["Cy Li <cy@acme.example>"]])
    assert [x["email"] for x in parse_leads_csv(p).rows] == ["ana@acme.example", "bo@acme.example",
                                                             "cy@acme.example"]


def test_missing_email_cell(tmp_path):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Company"], ["", "Acme"], ["  ", "Beta"]]))
    assert r.rows == []
    assert [(e["row"], e["field"], e["error"]) for e in r.errors] == [
        (2, "email", "no email address; row not imported"), (3, "email", "no email address; row not imported")]


def test_empty_lines_are_skipped_and_rows_numbered_as_in_a_spreadsheet(tmp_path):
    text = "Email,Company\n\nana@acme.example,Acme\n,\n   \nbad-email,Beta\n\n"
    r = parse_leads_csv(put(tmp_path, text))
    assert [(x["row"], x["email"]) for x in r.rows] == [(3, "ana@acme.example")]
    assert [e["row"] for e in r.errors] == [6]
    assert r.total_rows == 2


def test_leading_blank_lines_before_the_header(tmp_path):
    r = parse_leads_csv(put(tmp_path, "\n\nEmail,Company\nana@acme.example,Acme\nbad,Beta\n"))
    assert [x["row"] for x in r.rows] == [4]
    assert [e["row"] for e in r.errors] == [5]


def test_multiline_cells_count_as_one_row(tmp_path):
    p = put_rows(tmp_path, [["Email", "Notes", "Title"], ["ana@acme.example", "line 1\nline 2\r\nline 3", "VP\nSales"],
                            ["bad", "x", "y"]])
    r = parse_leads_csv(p)
    assert r.rows[0]["data"] == {"Notes": "line 1\nline 2\r\nline 3"}
    assert r.rows[0]["title"] == "VP Sales"          # one-line fields: line breaks collapsed
    assert [e["row"] for e in r.errors] == [3]


def test_row_with_too_many_cells_is_rejected_and_numbering_continues(tmp_path):
    text = "Email,Company\nana@acme.example,Acme\nbo@beta.example,Beta, Inc.\ncy@gamma.example,Gamma,,\nbad,X\n"
    r = parse_leads_csv(put(tmp_path, text))
    assert [(x["row"], x["email"], x["company"]) for x in r.rows] == [
        (2, "ana@acme.example", "Acme"), (4, "cy@gamma.example", "Gamma")]   # empty trailing cells are fine
    by = errors_by_row(r)
    assert "3 cells but the header has 2 columns" in by[3][0]["error"]
    assert by[5][0]["field"] == "email"


def test_row_with_fewer_cells_is_read(tmp_path):
    r = parse_leads_csv(put(tmp_path, "Email,Company,Title\nana@acme.example\nbo@acme.example,Beta\n"))
    assert [(x["email"], x["company"]) for x in r.rows] == [("ana@acme.example", None), ("bo@acme.example", "Beta")]


def test_unterminated_quote_is_reported_and_earlier_rows_kept(tmp_path):
    text = 'Email,Company\nana@acme.example,Acme\nbo@beta.example,"Beta\ncy@gamma.example,Gamma\n'
    r = parse_leads_csv(put(tmp_path, text))
    assert [x["email"] for x in r.rows] == ["ana@acme.example"]
    assert r.errors[0]["row"] == 3 and "never closed" in r.errors[0]["error"]


def test_stray_quote_inside_a_cell_is_kept(tmp_path):
    r = parse_leads_csv(put(tmp_path, 'Email,Company\nana@acme.example,The "Best" Co\n'))
    assert r.rows[0]["company"] == 'The "Best" Co'


def test_bad_optional_fields_are_dropped_and_the_row_kept(tmp_path):
    p = put_rows(tmp_path, [
        ["Email", "Time Zone", "Website", "LinkedIn", "Website Visits", "Title", "Employees", "Last Open", "Company"],
        ["ana@acme.example", "Mars/Base", "not a domain", "https://example.com/ana", "-3", "x" * 301, "lots",
         "yesterday", "Acme"],
    ])
    r = parse_leads_csv(p)
    row = r.rows[0]
    assert row["company"] == "Acme"
    for f in ("timezone", "company_domain", "linkedin_url", "website_visits", "title", "employee_count",
              "last_open_at"):
        assert row[f] is None, f
    assert sorted(e["field"] for e in r.errors) == sorted(
        ["timezone", "company_domain", "linkedin_url", "website_visits", "title", "employee_count", "last_open_at"])
    assert all(e["row"] == 2 and "value dropped" in e["error"] for e in r.errors)
    assert r.rejected == 0


def test_future_engagement_dates_are_dropped_when_now_is_given(tmp_path):
    p = put_rows(tmp_path, [["Email", "Last Open", "Last Click"],
                            ["ana@acme.example", "2026-11-25T10:00:00Z", "2027-06-01"]])
    now = datetime(2026, 11, 24, 15, tzinfo=UTC)
    r = parse_leads_csv(p, now=now)
    assert r.rows[0]["last_open_at"] == datetime(2026, 11, 25, 10, tzinfo=UTC)   # within a day: clock skew
    assert r.rows[0]["last_click_at"] is None
    assert r.errors[0]["field"] == "last_click_at" and "future" in r.errors[0]["error"]
    assert parse_leads_csv(p).rows[0]["last_click_at"] == datetime(2027, 6, 1, tzinfo=UTC)


def test_control_characters_and_whitespace_in_text_fields(tmp_path):
    r = parse_leads_csv(put_rows(tmp_path, [["Email", "Company"], ["ana@acme.example", "  Acme\x07  \t Corp \x1b"]]))
    assert r.rows[0]["company"] == "Acme Corp"


# ------------------------------------------------------------------------------------------ values

@pytest.mark.parametrize("value,expected", [
    ("250", 250), ("1,000+", 1000), ("51-200", 125), ("51 - 200", 125), ("51–200", 125), ("51 to 200", 125),
    ("11-50 employees", 30), ("10,001+", 10001), ("10001+", 10001), ("5,001-10,000", 7500), ("1k", 1000),
    ("1.5k", 1500), ("10K+", 10000), ("250.0", 250), ("1.000", 1000), ("1 200", 1200), ("Myself Only", 1),
    ("19", 19), ("20", 20), ("50", 50), ("51", 51), ("500", 500), ("501", 501), ("0", None),
])
def test_employee_count_formats(value, expected):
    assert parse_employee_count(value) == expected


@pytest.mark.parametrize("value", ["lots", "-5", "200-51", "a few hundred", "50,000,000", "1e9", "51-", "n/a"])
def test_bad_employee_counts(value):
    with pytest.raises(ValueError, match="employee count"):
        parse_employee_count(value)


@pytest.mark.parametrize("value,expected", [
    ("2026-03-14", datetime(2026, 3, 14, tzinfo=UTC)),
    ("2026-03-14T10:20:30Z", datetime(2026, 3, 14, 10, 20, 30, tzinfo=UTC)),
    ("2026-03-14T10:20:30.250Z", datetime(2026, 3, 14, 10, 20, 30, 250000, tzinfo=UTC)),
    ("2026-03-14 10:20:30", datetime(2026, 3, 14, 10, 20, 30, tzinfo=UTC)),
    ("2026-03-14 10:20:30 UTC", datetime(2026, 3, 14, 10, 20, 30, tzinfo=UTC)),
    ("2026-03-14T10:20:30-05:00", datetime(2026, 3, 14, 15, 20, 30, tzinfo=UTC)),
    ("2026/03/14", datetime(2026, 3, 14, tzinfo=UTC)),
    ("03/14/2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("3/14/26", datetime(2026, 3, 14, tzinfo=UTC)),
    ("14/03/2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("3/4/2026 2:05 PM", datetime(2026, 3, 4, 14, 5, tzinfo=UTC)),
    ("3/4/2026 12:05 am", datetime(2026, 3, 4, 0, 5, tzinfo=UTC)),
    ("14.03.2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("04.03.2026 09:30", datetime(2026, 3, 4, 9, 30, tzinfo=UTC)),
    ("14-Mar-2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("14 March 2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("Mar 14, 2026", datetime(2026, 3, 14, tzinfo=UTC)),
    ("March 14 2026 10:00", datetime(2026, 3, 14, 10, tzinfo=UTC)),
    ("Saturday, March 14, 2026 3:04 PM", datetime(2026, 3, 14, 15, 4, tzinfo=UTC)),
    ("Sat, 14 Mar 2026 10:20:30 +0100", datetime(2026, 3, 14, 9, 20, 30, tzinfo=UTC)),
    ("1773483630", datetime(2026, 3, 14, 10, 20, 30, tzinfo=UTC)),          # Unix seconds
    ("1773483630000", datetime(2026, 3, 14, 10, 20, 30, tzinfo=UTC)),       # Unix milliseconds (HubSpot)
    ("46095", datetime(2026, 3, 14, tzinfo=UTC)),                           # Excel serial day
])
def test_date_formats(value, expected):
    got = parse_datetime(value)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("value", ["yesterday", "31/31/2026", "2026-02-30", "13/13/2026", "2026-13-01",
                                   "14-Foo-2026", "12:00", "99999999999999", "25:00 3/4/2026"])
def test_bad_dates(value):
    with pytest.raises(ValueError, match="not a date"):
        parse_datetime(value)


def test_ambiguous_dates_follow_the_file(tmp_path):
    us = parse_leads_csv(put_rows(tmp_path, [["Email", "Last Open"], ["a@x.example", "03/04/2026"],
                                             ["b@x.example", "12/25/2026"]], name="us.csv"))
    eu = parse_leads_csv(put_rows(tmp_path, [["Email", "Last Open"], ["a@x.example", "03/04/2026"],
                                             ["b@x.example", "25/12/2026"]], name="eu.csv"))
    assert us.rows[0]["last_open_at"] == datetime(2026, 3, 4, tzinfo=UTC)   # month first by default
    assert eu.rows[0]["last_open_at"] == datetime(2026, 4, 3, tzinfo=UTC)   # the file shows day first
    assert eu.rows[1]["last_open_at"] == datetime(2026, 12, 25, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ unreadable files

def test_missing_file(tmp_path):
    with pytest.raises(LeadFileError, match="not found"):
        parse_leads_csv(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(LeadFileError, match="is a directory"):
        parse_leads_csv(tmp_path)


@pytest.mark.parametrize("content,match", [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "Excel .xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "Excel .xls"),
    (b"Email,Name\n\x00\x01\x02\x03\xff\xfe", "binary data"),
    (bytes((i * 37 + 11) % 256 for i in range(4096)), "binary data"),
])
def test_binary_files(tmp_path, content, match):
    p = tmp_path / "leads.csv"
    p.write_bytes(content)
    with pytest.raises(LeadFileError, match=match) as e:
        parse_leads_csv(p)
    assert "save or export it as CSV" in str(e.value)
    assert isinstance(e.value, AlphaError)


@pytest.mark.parametrize("text", ["", "\n\n  \n", ",,,\n , ,\n"])
def test_empty_files(tmp_path, text):
    with pytest.raises(LeadFileError, match="is empty"):
        parse_leads_csv(put(tmp_path, text))


def test_no_header_row(tmp_path):
    with pytest.raises(LeadFileError, match="no header row: row 1 holds an email address"):
        parse_leads_csv(put(tmp_path, "ana@acme.example,Ana,Acme\nbo@beta.example,Bo,Beta\n"))


# ------------------------------------------------------------------------------------------ export safety

NASTY = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\tTabbed", "\rReturn",
         "=cmd|' /C calc'!A0", "'=already quoted", "''+twice", "'plain apostrophe", "normal", "Ünïcödé = fine",
         "a,b;\"c\"\nd"]


@pytest.mark.parametrize("value", NASTY)
def test_neutralise_round_trips(value):
    out = neutralise(value)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unneutralise(out) == value


def test_formula_injection_export_round_trip(tmp_path):
    leads = []
    for i, v in enumerate(NASTY):
        leads.append({"email": f"-lead{i}@acme.example", "first_name": v.strip() or "x", "company": v.strip() or "x",
                      "title": f"=Title {i}", "data": {"Notes": v, "=Key": "+v"}})
    p = tmp_path / "export.csv"
    assert write_leads_csv(p, leads) == len(leads)
    raw = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"), newline="")))
    assert raw[0] == list(EXPORT_COLUMNS)
    for row in raw[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert raw[1][0] == "'-lead0@acme.example"
    assert raw[1][EXPORT_COLUMNS.index("title")] == "'=Title 0"

    r = parse_leads_csv(p)
    assert r.errors == []
    assert r.columns["status"] == "ignored (engine-owned)"
    for lead, row in zip(leads, r.rows):
        assert row["email"] == lead["email"]
        assert row["title"] == lead["title"]
        assert row["company"] == " ".join(lead["company"].split())
        assert row["data"] == lead["data"]          # the JSON "data" column of our own export is read back


def test_export_to_a_missing_directory(tmp_path):
    with pytest.raises(LeadFileError, match="cannot write"):
        write_leads_csv(tmp_path / "no" / "such" / "dir.csv", [{"email": "a@acme.example"}])


def test_export_is_utf8(tmp_path):
    p = tmp_path / "export.csv"
    write_leads_csv(p, [{"email": "zoe@acme.example", "first_name": "Zoë"}])
    raw = p.read_bytes()
    assert "Zoë".encode("utf-8") in raw
    assert not raw.startswith(b"\xef\xbb\xbf")


# ------------------------------------------------------------------------------------------ properties

CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
HEADER_NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                             blacklist_characters=",;\"@\u2028\u2029\x85"),
                      min_size=1, max_size=15)
KNOWN = ["Email", "First Name", "Last Name", "Full Name", "Title", "Company", "Website", "# Employees", "Country",
         "Time Zone", "LinkedIn URL", "Last Open", "Last Visit", "Website Visits"]
EMAIL_CELL = st.one_of(
    st.tuples(st.just("valid"), st.from_regex(r"[a-zA-Z][a-zA-Z0-9._+-]{0,12}[a-zA-Z0-9]", fullmatch=True),
              st.sampled_from(["", " ", "  "])),
    st.tuples(st.just("text"), CELL.filter(lambda s: "@" not in s), st.just("")),
)


from engine.core.identity import canonical_address  # noqa: E402


@st.composite
def lead_files(draw):
    extra = draw(st.lists(HEADER_NAME, max_size=3))
    header = KNOWN + extra
    n = draw(st.integers(min_value=0, max_value=12))
    rows, expected = [], []
    for i in range(n):
        kind, local, pad = draw(EMAIL_CELL)
        cells = draw(st.lists(CELL, min_size=len(header) - 1, max_size=len(header) - 1))
        if kind == "valid":
            local = local.replace("..", ".").replace(".+", "+").replace(".-", "-").strip(".")
            email = f"{local}{i}@Dom{i % 3}.example"
            if draw(st.booleans()) and expected:            # reuse an earlier email: a duplicate
                email = draw(st.sampled_from(expected))[1].upper()
            elif syntax_problem(email.lower()) is None and canonical_address(email) not in {
                    canonical_address(e) for _, e in expected}:  # another spelling of an earlier address: a duplicate
                expected.append((i + 2, email.lower()))
            cell = pad + email + pad
        else:
            cell = local
        rows.append([cell] + cells)
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    bom = draw(st.booleans())
    return header, rows, expected, delimiter, bom


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(lead_files())
def test_property_no_row_crashes_parsing_and_valid_rows_are_kept(tmp_path, case):
    header, rows, expected, delimiter, bom = case
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows([header] + rows)
    p = tmp_path / "prop.csv"
    p.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8"))

    r = parse_leads_csv(p)

    assert r.delimiter == delimiter
    got = [(x["row"], x["email"]) for x in r.rows]
    assert got == expected
    assert r.rejected == r.total_rows - len(r.rows) >= 0
    for e in r.errors:
        assert set(e) == {"row", "field", "error"} and isinstance(e["row"], int) and e["row"] >= 2
        assert e["error"]
    for x in r.rows:
        for f in ("first_name", "last_name", "title", "company", "country"):
            assert x[f] is None or ("\n" not in x[f] and x[f] == x[f].strip())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_property_value_parsers_only_raise_value_error(value):
    for fn in (parse_employee_count, parse_datetime):
        try:
            fn(value)
        except ValueError:
            pass
    assert unneutralise(neutralise(value)) == value
    assert not neutralise(value).startswith(("=", "+", "-", "@", "\t", "\r"))
