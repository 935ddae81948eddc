"""(a) Import and score: a generated CSV of 100,000 leads imported (leads_io.import_leads) and scored
(pipeline.score_leads) into a fresh SQLite database. Goal: under 10 s.

Bare baseline, measured in the same run: reading the same file with csv.DictReader and inserting every row in
one bulk INSERT (no validation, no aliases, no scoring): the floor for getting these bytes into the table.
"""
from __future__ import annotations

import csv

from .common import Figure, Progress, database, insert_rows, make_app, median, timed, timed_cpu, write_leads_csv

NAME = "import"
TITLE = "Import and score a CSV"
GOAL_SECONDS = 10.0


def _bare(app, path) -> int:
    from engine.models import Lead

    with path.open(newline="", encoding="utf-8") as f:
        rows = [{"email": r["Email"].strip().lower(), "first_name": r["First Name"], "last_name": r["Last Name"],
                 "title": r["Title"], "company": r["Company"], "industry": r["Industry"], "country": r["Country"],
                 "timezone": r["Time Zone"] or None, "source": r["Source"], "status": "new", "sequence_step": 0,
                 "website_visits": 0} for r in csv.DictReader(f)]
    with app.store.write_plain() as s:
        return insert_rows(s, Lead.__table__, rows)


def run(ctx) -> list[Figure]:
    from engine.leads_io import import_leads
    from engine.pipeline import score_leads

    p = Progress(NAME)
    n, runs = ctx.size(300, 100_000), ctx.runs(3)
    path = write_leads_csv(ctx.tmp / f"leads_{n}.csv", n)
    total, imp, score, bare, cpu = [], [], [], [], []
    report = scored = None
    for i in range(1, runs + 1):
        with database("sqlite", ctx.tmp) as url:
            app = make_app(url)
            t_imp, c_imp, report = timed_cpu(lambda: import_leads(app.store, path, app.clock))
            t_score, c_score, scored = timed_cpu(lambda: score_leads(app))
            app.store.dispose()
        with database("sqlite", ctx.tmp) as url:
            app = make_app(url)
            t_bare, _ = timed(lambda: _bare(app, path))
            app.store.dispose()
        imp.append(t_imp)
        score.append(t_score)
        total.append(t_imp + t_score)
        cpu.append(c_imp + c_score)
        bare.append(t_bare)
        p.run(f"{n:,} rows: import {t_imp:.2f} s + score {t_score:.2f} s, bare", i, runs, t_bare)
    fig = Figure(f"Import and score {n:,} CSV rows (SQLite)", "s", total, goal=f"< {GOAL_SECONDS:g} s",
                 baseline=median(bare), cpu=cpu)
    fig.passed = fig.median < GOAL_SECONDS
    fig.ratio = fig.median / fig.baseline
    fig.extra = {"import_s": {"median": round(median(imp), 3), "samples": [round(x, 3) for x in imp]},
                 "score_s": {"median": round(median(score), 3), "samples": [round(x, 3) for x in score]},
                 "rows": n, "imported": report["imported"], "rejected": report["rejected"],
                 "by_tier": scored["by_tier"], "rows_per_s": round(n / fig.median)}
    fig.note = (f"import {median(imp):.2f} s + score {median(score):.2f} s; "
                f"{report['rejected']:,} rows rejected by validation (the demo data's bad values)")
    return [fig]
