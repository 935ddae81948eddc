"""Bad CSV imports: ``parse_leads_csv``, ``import_leads`` and ``alpha leads import FILE``.

Each example is a generated file mixing valid rows with broken ones (bad or duplicate emails, wrong types in
numeric columns, unknown time zones, garbage dates, formula cells, NULs, huge cells, ragged rows, blank lines,
line breaks inside quoted cells), under a random header (aliases, unknown columns, a BOM, leading blank lines),
delimiter and encoding (UTF-8, UTF-8 with BOM, Windows-1252, or both mixed line by line). The test knows what
each row must become: every valid row is kept with its values, every bad row is reported with its spreadsheet row
number and field, and nothing else is reported.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from engine.core.clock import FixedClock
from engine.adapters.leads_csv import import_leads, parse_leads_csv, write_leads_csv
from engine.adapters.models import Lead
from tests.badinput.strategies import COMMON
from tests.conftest import WORK_TIME
from tests.helpers import alpha, alpha_env

UTC = timezone.utc

HEADERS = {
    "email": ["email", "Email Address", "E-mail", "Work Email"],
    "first_name": ["First Name", "first_name", "Given Name"],
    "company": ["Company", "Company Name", "Organization"],
    "employee_count": ["Employees", "# Employees", "Company Size"],
    "timezone": ["Time Zone", "timezone", "TZ"],
    "last_open_at": ["Last Open", "Last Opened At"],
    "website_visits": ["Visits", "Website Visits"],
}
UNKNOWN_HEADERS = ["Favourite Colour", "Notes", "=SUM(A1)", "Lead Owner", "Ünïcode Häader"]

# valid cell -> the value it must become
GOOD = {
    "first_name": {"Ann": "Ann", "Müller": "Müller", "Zoë": "Zoë", "José": "José", "": None, "  Bo  ": "Bo"},
    "company": {"Acme": "Acme", "Acme, Inc.": "Acme, Inc.", "Acme\nLabs": "Acme Labs",
                '=HYPERLINK("http://evil.example","click")': '=HYPERLINK("http://evil.example","click")',
                "+1 Corp": "+1 Corp", "": None},
    "employee_count": {"250": 250, "51-200": 125, "1,000+": 1000, "10k": 10000, "": None},
    "timezone": {"America/New_York": "America/New_York", "europe/berlin": "Europe/Berlin", "UTC": "UTC", "": None},
    "last_open_at": {"2025-03-14": datetime(2025, 3, 14, tzinfo=UTC),
                     "2025-03-14T09:30:00Z": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
                     "14 Mar 2025": datetime(2025, 3, 14, tzinfo=UTC), "": None},
    "website_visits": {"0": 0, "12": 12, "1,234": 1234, "": None},
}
# broken cell of a kept row -> a word its error must contain
BAD_VALUE = {
    "employee_count": ["lots", "-5", "1e9", "12 people maybe", "9" * 400],
    "timezone": ["Mars/Base", "UTC+25", "Europe/Atlantis", "America/New York City"],
    "last_open_at": ["yesterday-ish", "2025-13-45", "31/31/2025", "1969-12-31", "0000-00-00"],
    "website_visits": ["many", "-3", "1.5", "9" * 20],
    "company": ["x" * 100_000],
    "first_name": ["y" * 5_000],
}
BAD_EMAILS = ["not-an-email", "a@b", "@x.io", "x@", "two@@x.io", '=HYPERLINK("http://x","y")', "a b@x.io", "", "\u200b"]
_domains = itertools.count()


@dataclass
class Expected:
    kept: dict[int, dict] = field(default_factory=dict)          # row -> {field: value} (email always)
    errors: set[tuple[int, str | None]] = field(default_factory=set)  # (row, field) that must be reported
    quoted: dict[tuple[int, str], str] = field(default_factory=dict)  # (row, field) -> text the error must quote
    rejected: int = 0


@dataclass
class Case:
    raw: bytes
    expected: Expected
    delimiter: str
    encoding: str
    domain: str
    formulas: list[str]

    def __repr__(self) -> str:  # hypothesis prints failing cases: keep it readable
        return f"Case({self.encoding}, {self.delimiter!r}, {len(self.raw)} bytes)\n{self.raw[:3000]!r}"


@st.composite
def lead_files(draw) -> Case:
    domain = f"d{next(_domains)}.example"
    fields = ["email"] + draw(st.lists(st.sampled_from([f for f in HEADERS if f != "email"]), unique=True,
                                       min_size=1, max_size=6))
    unknown = draw(st.lists(st.sampled_from(UNKNOWN_HEADERS), unique=True, max_size=2))
    columns = draw(st.permutations(fields + unknown))
    header = [draw(st.sampled_from(HEADERS[c])) if c in HEADERS else c for c in columns]
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "mixed"]))
    lead_blank = draw(st.integers(0, 2))

    records: list[list[str]] = [[] for _ in range(lead_blank)] + [header]
    exp = Expected()
    emails: list[str] = []
    formulas: list[str] = []
    for k in range(draw(st.integers(1, 14))):
        n = len(records) + 1  # the spreadsheet row this record will be
        kind = draw(st.sampled_from(["valid", "valid", "valid", "bad email", "duplicate", "bad value", "nul",
                                     "ragged", "short", "blank"]))
        if kind == "duplicate" and not emails:
            kind = "valid"
        email = f"lead{k}@{domain}"
        cells = {c: "" for c in columns}
        want: dict = {"email": email}
        for c in columns:
            if c in GOOD:
                v = draw(st.sampled_from(sorted(GOOD[c])))
                cells[c] = v
                want[c] = GOOD[c][v]
            elif c != "email":
                cells[c] = draw(st.sampled_from(["", "blue", "=1+2", "call after 5pm"]))
        cells["email"] = draw(st.sampled_from([email, email.upper(), f" {email} ", f"Lead <{email}>",
                                               f"mailto:{email}"]))
        if kind == "blank":
            records.append([""] * draw(st.integers(0, len(columns))))
            continue
        if kind == "bad email":
            bad = draw(st.sampled_from(BAD_EMAILS))
            cells["email"] = bad
            if not any(v.strip() for c, v in cells.items() if c != "email") and not bad.strip():
                cells[columns[0] if columns[0] != "email" else columns[-1]] = "filler"
                if len(columns) == 1:
                    cells["email"] = bad = "not-an-email"
            exp.errors.add((n, "email"))
            exp.rejected += 1
        elif kind == "duplicate":
            cells["email"] = draw(st.sampled_from(emails)).upper()
            exp.errors.add((n, "email"))
            exp.rejected += 1
        elif kind == "ragged":
            exp.errors.add((n, None))
            exp.rejected += 1
        else:
            if kind == "bad value":
                f = draw(st.sampled_from([c for c in columns if c in BAD_VALUE] or ["email"]))
                if f != "email":
                    bad = draw(st.sampled_from(BAD_VALUE[f]))
                    cells[f] = bad
                    want[f] = None
                    exp.errors.add((n, f))
                    if len(bad) < 30:
                        exp.quoted[(n, f)] = bad
            if kind == "nul":  # a NUL inside a non-empty cell: removed, the value kept, the cell reported
                f = draw(st.sampled_from([c for c in columns if cells[c]]))
                v = cells[f]
                cells[f] = v[:1] + "\x00" + v[1:]
                exp.errors.add((n, f))
            exp.kept[n] = want
            emails.append(email)
            if str(want.get("company") or "").startswith("="):
                formulas.append(want["company"])
        row = [cells[c] for c in columns]
        if kind == "ragged":
            row += ["extra", "cells"]
        if kind == "short":
            keep = columns.index("email") + 1
            row = row[:draw(st.integers(keep, len(row)))]
            for c in columns[len(row):]:
                if c in GOOD:
                    exp.kept[n][c] = None
        records.append(row)

    # one record per line group, each encoded on its own (so "mixed" mixes encodings line by line)
    chunks: list[bytes] = []
    for i, rec in enumerate(records):
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerow(rec)
        text = buf.getvalue()
        enc = {"utf-8-sig": "utf-8", "mixed": "cp1252" if i % 2 else "utf-8"}.get(encoding, encoding)
        try:
            chunks.append(text.encode(enc))
        except UnicodeEncodeError:
            chunks.append(text.encode("utf-8"))
    raw = (b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"") + b"".join(chunks)
    return Case(raw, exp, delimiter, encoding, domain, formulas)


def _check(result, case: Case) -> None:
    exp = case.expected
    got = {r["row"]: r for r in result.rows}
    assert sorted(got) == sorted(exp.kept), ("rows kept", sorted(got), sorted(exp.kept), result.errors)
    for n, want in exp.kept.items():
        for f, v in want.items():
            assert got[n][f] == v, (n, f, got[n][f], v, result.errors)
    reported = {(e["row"], e["field"]) for e in result.errors}
    missing = exp.errors - reported
    assert not missing, ("bad rows not reported", missing, result.errors)
    extra = {(r, f) for r, f in reported if (r, f) not in exp.errors}
    assert not extra, ("errors for good data", extra, result.errors)
    for e in result.errors:
        assert e["row"] >= 2 and isinstance(e["error"], str) and e["error"].strip()
        if (e["row"], e["field"]) in exp.quoted:
            assert repr(exp.quoted[(e["row"], e["field"])])[:25] in e["error"], e
    assert result.rejected == exp.rejected, (result.rejected, exp.rejected, result.errors)


@settings(max_examples=800, **COMMON)
@given(lead_files())
@example(Case(b"email,company,employees\r\na@x.example,Ac\x00me,250\r\nb@x.example,Bee," + b"9" * 400 + b"\r\n",
              Expected(kept={2: {"email": "a@x.example", "company": "Acme", "employee_count": 250},
                             3: {"email": "b@x.example", "company": "Bee", "employee_count": None}},
                       errors={(2, "company"), (3, "employee_count")}),
              ",", "utf-8", "x.example", []))  # was: the NUL refused the whole file; 400 nines an OverflowError
@example(Case("email,first_name\r\na@x.example,Müller\r\n".encode() + "b@x.example,Zoë\r\n".encode("cp1252"),
              Expected(kept={2: {"email": "a@x.example", "first_name": "Müller"},
                             3: {"email": "b@x.example", "first_name": "Zoë"}}),
              ",", "mixed", "x.example", []))  # was: the UTF-8 row read as cp1252 ("MÃ¼ller")
def test_parse_keeps_valid_rows_and_names_every_bad_one(tmp_path_factory, case):
    p = tmp_path_factory.getbasetemp() / "badinput-leads.csv"
    p.write_bytes(case.raw)
    result = parse_leads_csv(p)
    _check(result, case)
    assert result.delimiter == case.delimiter


@pytest.fixture
def store(db_url):
    from engine.adapters.db import Store

    s = Store(db_url)
    s.upgrade()
    yield s
    s.dispose()


@settings(max_examples=25, **COMMON)
@given(lead_files())
def test_import_stores_exactly_the_valid_rows(store, tmp_path_factory, case):
    p = tmp_path_factory.getbasetemp() / "badinput-import.csv"
    p.write_bytes(case.raw)
    report = import_leads(store, p, FixedClock(WORK_TIME))
    exp = case.expected
    assert report["imported"] == len(exp.kept) and report["updated"] == 0, report
    assert report["rejected"] == exp.rejected
    with store.read() as s:
        leads = s.exec(select(Lead).where(Lead.email.like(f"%@{case.domain}"))).all()
    by_email = {lead.email: lead for lead in leads}
    assert sorted(by_email) == sorted(w["email"] for w in exp.kept.values())
    for want in exp.kept.values():
        lead = by_email[want["email"]]
        for f in ("first_name", "company", "employee_count", "timezone"):
            if f in want:
                assert getattr(lead, f) == want[f], (f, getattr(lead, f), want[f])
    again = import_leads(store, p, FixedClock(WORK_TIME))  # re-importing the same file changes nothing
    assert again["imported"] == 0 and again["updated"] == 0
    if case.formulas:  # formula cells are kept as text, and exported neutralised
        out = p.with_suffix(".export.csv")
        write_leads_csv(out, leads)
        text = out.read_text(encoding="utf-8")
        for f in case.formulas:
            assert "'" + f.replace('"', '""') in text


# ------------------------------------------------------------------------------------------ the CLI

UNREADABLE = {
    "missing": (None, "not found"),
    "directory": ("dir", "is a directory"),
    "xlsx": (b"PK\x03\x04" + bytes(200), "Excel .xlsx"),
    "binary": (bytes((i * 7919) % 256 for i in range(5000)), "binary data"),
    "empty": (b"", "is empty"),
    "no header": (b"a@b.io,Ann\r\nc@d.io,Bo\r\n", "no header row"),
}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    from tests.conftest import write_config

    tmp = tmp_path_factory.mktemp("leadcli")
    env = alpha_env(f"sqlite:///{tmp / 'cli.db'}", write_config(tmp / "config"), tmp)
    alpha(env, "init", check=True)
    return env, tmp


@pytest.mark.parametrize("what", sorted(UNREADABLE))
def test_cli_refuses_an_unreadable_file_in_one_line(cli_env, what):
    env, tmp = cli_env
    content, needle = UNREADABLE[what]
    path = tmp / f"unreadable-{what.replace(' ', '-')}.csv"
    if content == "dir":
        path.mkdir(exist_ok=True)
    elif content is not None:
        path.write_bytes(content)
    p = alpha(env, "leads", "import", str(path))
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert needle in p.stderr and str(path) in p.stderr, p.stderr


@settings(max_examples=2, **COMMON)
@given(lead_files())
def test_cli_imports_valid_rows_and_lists_bad_ones(cli_env, case):
    env, tmp = cli_env
    path = tmp / "generated.csv"
    path.write_bytes(case.raw)
    p = alpha(env, "leads", "import", str(path), "--json")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == 0, (p.returncode, p.stderr)  # bad rows are reported, not a failure of the command
    report = json.loads(p.stdout)
    assert report["imported"] == len(case.expected.kept) and report["rejected"] == case.expected.rejected
    assert case.expected.errors <= {(e["row"], e["field"]) for e in report["errors"]}
    text = alpha(env, "leads", "import", str(path))  # the plain report names row and field
    assert text.returncode == 0 and "Traceback" not in text.stderr
    for n, f in sorted(case.expected.errors, key=lambda e: (e[0], str(e[1])))[:50]:
        assert f"row {n}: {f}:" in text.stdout, (n, f, text.stdout)
