"""One mailbox, one lead: the import and the RB2B visitor webhook match leads by the canonical address
(engine/core/identity, ``Lead.email_key``), so two spellings of one address never become two leads that would each
get the whole sequence (SQLite and PostgreSQL, via app_factory)."""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlmodel import select

from engine.adapters import leads_csv as leads_io
from engine.services.events import EventService
from engine.core.identity import canonical_address
from engine.adapters.models import Lead

HEADER = ["Email", "First Name", "Last Name", "Title", "Company"]


def write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER] + rows)
    return path


def all_leads(app) -> list[Lead]:
    with app.store.read() as s:
        return list(s.exec(select(Lead).order_by(Lead.id)).all())


def test_a_second_file_with_another_spelling_updates_the_lead(app_factory, tmp_path):
    app = app_factory()
    first = app.import_leads(write(tmp_path / "a.csv", [["Joe.Bloggs@gmail.com", "Joe", "", "", ""]]))
    assert first["imported"] == 1
    second = app.import_leads(write(tmp_path / "b.csv",
                                    [["joebloggs+crm@googlemail.com", "", "Bloggs", "VP Sales", "Bloggs Ltd"]]))
    assert (second["imported"], second["updated"], second["rejected"]) == (0, 1, 0)
    [lead] = all_leads(app)
    # the stored spelling is kept; the row's other fields update it as an exact match would
    assert lead.email == "joe.bloggs@gmail.com" and lead.email_key == "joebloggs@gmail.com"
    assert (lead.first_name, lead.last_name, lead.title, lead.company) == ("Joe", "Bloggs", "VP Sales", "Bloggs Ltd")
    # and importing the second file again changes nothing
    again = app.import_leads(tmp_path / "b.csv")
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert len(all_leads(app)) == 1


def test_two_spellings_in_one_file_are_duplicates(app_factory, tmp_path):
    app = app_factory()
    out = app.import_leads(write(tmp_path / "idn.csv", [
        ["anna@bücher.de", "Anna", "", "", ""],
        ["bo@beta.example", "Bo", "", "", ""],
        ["ANNA@xn--bcher-kva.de", "Other", "", "", ""],
    ]))
    assert (out["imported"], out["rejected"]) == (2, 1)
    [err] = out["errors"]
    assert (err["row"], err["field"]) == (4, "email")
    assert "duplicate of row 2" in err["error"] and "row not imported" in err["error"]
    anna = [lead for lead in all_leads(app) if lead.email_key == "anna@xn--bcher-kva.de"]
    assert [(a.email, a.first_name) for a in anna] == [("anna@bücher.de", "Anna")]


def test_rb2b_visit_from_a_plus_tagged_spelling_updates_the_lead(app_factory, tmp_path):
    app = app_factory()
    app.import_leads(write(tmp_path / "a.csv", [["ana@target.io", "Ana", "", "", ""]]))
    visit = {"First Name": "Ana", "Title": "VP Sales", "Company Name": "Target Inc",
             "Business Email": "Ana+Newsletter@Target.io", "Website": "https://www.target.io",
             "Captured URL": "https://alphaswarm.example/pricing", "Seen At": "2026-11-24T10:00:00Z"}
    out = EventService(app, alert=lambda alert: None).rb2b(visit, json.dumps(visit).encode())
    assert out.status == "processed" and "matched" in out.detail
    [lead] = all_leads(app)
    assert (lead.email, lead.status, lead.website_visits) == ("ana@target.io", "warm", 1)
    assert (lead.title, lead.company) == ("VP Sales", "Target Inc")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_spellings_across_worker_chunks_are_duplicates(app_factory, tmp_path, monkeypatch):
    """A large file read by worker processes: a spelling in a later chunk is a duplicate of the first one."""
    monkeypatch.setattr(leads_io, "CHUNK", 50)
    monkeypatch.setattr(leads_io, "_mp_context", lambda: mp.get_context("fork"))
    app = app_factory()
    rows = [[f"p{i}@co.example", f"F{i}", "", "", ""] for i in range(300)]
    rows[10] = ["Jane.Doe@gmail.com", "Jane", "", "", ""]
    rows[250] = ["janedoe+x@GoogleMail.com", "Dup", "", "", ""]
    out = app.import_leads(write(tmp_path / "big.csv", rows), workers=2)
    assert (out["imported"], out["rejected"]) == (299, 1)
    assert [(e["row"], "duplicate of row 12" in e["error"]) for e in out["errors"]] == [(252, True)]


# ------------------------------------------------------------------------------------------------ property

# distinct mailboxes: (local part, domain class); every spelling of a domain class reaches the same mailboxes
DOMAINS = {"gmail": ("gmail.com", "googlemail.com", "GMail.com"),
           "idn": ("bücher.de", "xn--bcher-kva.de", "BÜCHER.de"),
           "plain": ("example.com", "Example.COM")}
locals_ = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
mailbox = st.tuples(locals_, st.sampled_from(sorted(DOMAINS)))


@st.composite
def spelling(draw, box: tuple[str, str]) -> str:
    local, kind = box
    chars = list(local)
    if kind == "gmail":  # dots anywhere inside the local part
        for i in sorted(draw(st.sets(st.integers(1, len(chars) - 1), max_size=3)), reverse=True):
            chars.insert(i, ".")
    if draw(st.booleans()):  # case, letter by letter
        flips = draw(st.lists(st.booleans(), min_size=len(chars), max_size=len(chars)))
        chars = [c.upper() if f else c for c, f in zip(chars, flips)]
    out = "".join(chars)
    if draw(st.booleans()):
        out += "+" + draw(st.text("abcxyz019", min_size=1, max_size=5))
    out += "@" + draw(st.sampled_from(DOMAINS[kind]))
    if draw(st.booleans()):
        out = unicodedata.normalize("NFD", out)
    return out


@st.composite
def spellings(draw) -> list[tuple[tuple[str, str], str]]:
    boxes = draw(st.lists(mailbox, min_size=1, max_size=6, unique=True))
    picks = draw(st.lists(st.sampled_from(boxes), min_size=1, max_size=15))
    return [(box, draw(spelling(box))) for box in picks]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_one_lead_per_canonical_address(app_factory):
    app = app_factory()

    @settings(max_examples=30, deadline=None)
    @given(items=spellings())
    def check(items):
        with app.store.write() as s:
            s.exec(delete(Lead))
        with tempfile.TemporaryDirectory() as d:
            out = app.import_leads(write(Path(d) / "spellings.csv", [[a, "", "", "", ""] for _, a in items]))
        mailboxes = {box for box, _ in items}
        assert len({canonical_address(a) for _, a in items}) == len(mailboxes)
        leads = all_leads(app)
        assert len(leads) == len(mailboxes) == out["imported"]
        assert out["rejected"] == len(items) - len(mailboxes)
        assert len({lead.email_key for lead in leads}) == len(leads)

    check()
