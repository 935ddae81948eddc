"""A large CSV is read by worker processes (and scored there): the result is exactly the one-process result,
duplicates across chunk boundaries included; a process running other threads (the console's server) reads it
itself; an import stores every new or changed lead scored, so a rescore afterwards changes nothing."""
from __future__ import annotations

import csv
import random
import threading

import pytest
import sqlalchemy as sa
from sqlmodel import select

from engine.adapters import leads_csv as leads_io
from engine.adapters.models import Lead
from engine.services.pipeline import score_leads

HEADER = ["Email", "First Name", "Last Name", "Title", "Company", "Website", "Employees", "Industry", "Country",
          "Time Zone", "Last Reply"]


def mixed_file(path, n: int = 3000, seed: int = 5):
    """Valid leads with bad rows and bad values sprinkled in: invalid and missing emails, duplicates (some far
    apart, across chunks), bad counts, zones and dates, NULs, ragged rows."""
    rnd = random.Random(seed)
    titles = ["VP Sales", "Head of Revenue", "Intern", "CEO", "Sales Development Rep", "", "Marketing Manager"]
    rows = []
    for i in range(n):
        email = f"p{i}@co{i % 97}.example"
        kind = rnd.random()
        if kind < 0.03:
            email = rnd.choice(["broken@", "", "no-at-sign", "=cmd|'/c calc'!A1"])
        elif kind < 0.06 and rows:
            email = rnd.choice(rows)[0].upper()  # a duplicate of an earlier row
        row = [email, f"F{i}", f"L{i}", rnd.choice(titles), f"Co {i % 97}", f"https://co{i % 97}.example",
               rnd.choice(["250", "51-200", "10k", "lots", "", "5"]), rnd.choice(["Software", "Retail", "", "SaaS"]),
               rnd.choice(["US", "Germany", "North Korea", ""]), rnd.choice(["America/Chicago", "Mars/Base", ""]),
               rnd.choice(["2026-10-01T10:00:00Z", "yesterday-ish", ""])]
        if rnd.random() < 0.01:
            row[3] = "VP\x00 Sales"
        if rnd.random() < 0.005:
            row = row + ["extra", "cells"]
        rows.append(row)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(leads_io, "CHUNK", 400)  # many chunks, so duplicates fall across chunk boundaries
    # the test process runs other threads (pytest's, earlier tests' alert threads), where the engine would not
    # fork: the children here run nothing but the conversion, so fork anyway
    import multiprocessing as mp

    monkeypatch.setattr(leads_io, "_mp_context", lambda: mp.get_context("fork"))


def parsed(path, **kw):
    r = leads_io.parse_leads_csv(path, **kw)
    return r.rows, r.errors, r.total_rows, r.columns


def test_workers_give_the_one_process_result(tmp_path, small_chunks, settings):
    from functools import partial

    from engine.rules.icp import load_icp, scored_fields

    path = mixed_file(tmp_path / "mixed.csv")
    scorer = partial(scored_fields, icp=load_icp(settings.config_dir), customers=settings.customer_exclusions,
                     competitors=settings.competitor_exclusions)
    one = parsed(path, scorer=scorer, workers=1)
    progress = []
    many = parsed(path, scorer=scorer, workers=2, progress=lambda d, n: progress.append((d, n)))
    assert many == one
    rows, errors, total, _ = one
    assert len(rows) > 2500 and any("duplicate of row" in e["error"] for e in errors)
    assert all(leads_io.SCORED in r for r in rows)
    assert progress[0] == (0, total) and progress[-1] == (total, total) and len(progress) > 3
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_no_workers_where_threads_run():
    assert leads_io._workers(None, 10 * leads_io.PARALLEL_MIN) > 1 or threading.active_count() > 1
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert leads_io._mp_context() is None
        assert leads_io._workers(None, 10 * leads_io.PARALLEL_MIN) == 1
        assert leads_io._workers(4, 10 * leads_io.PARALLEL_MIN) == 1
    finally:
        stop.set()


def test_parallel_import_stores_the_same_scored_leads(app_factory, tmp_path, small_chunks):
    path = mixed_file(tmp_path / "mixed.csv")
    app = app_factory()

    def table():
        with app.store.read() as s:
            return [(r.email, r.title, r.employee_count, r.score, r.tier, r.icp, r.disqualified_reason, r.data)
                    for r in s.exec(select(Lead).order_by(Lead.email)).all()]

    out_one = app.import_leads(path, workers=1)
    stored = table()
    assert stored and all(score is not None for _, _, _, score, *_ in stored)
    with app.store.write_plain() as s:  # the same file again into an empty table, with workers
        s.exec(sa.delete(Lead))
    out_many = app.import_leads(path, workers=2)
    assert out_many == out_one
    assert table() == stored
    # stored scored: a rescore of the whole table changes nothing
    assert score_leads(app)["changed"] == 0
    # re-importing the file with changed titles rescores the leads it changes
    path.write_text(path.read_text().replace("Intern", "VP Sales"))
    again = app.import_leads(path, workers=2)
    assert again["updated"] > 0
    assert score_leads(app)["changed"] == 0
