"""(a) Import and score: a generated CSV of 100,000 leads imported into a fresh SQLite database and scored against
the ICP (``App.import_leads``: every new or changed lead is stored scored, the rows parsed and scored by one worker
process per core and saved while the next ones are read). Goal: under 10 s on 2 cores.

Also measured, not part of the goal: a rescore of the whole table afterwards (``pipeline.score_leads``, what an ICP
change needs), which must find nothing to change.

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
    from engine.adapters.models import Lead

    with path.open(newline="", encoding="utf-8") as f:
        rows = [{"email": r["Email"].strip().lower(), "first_name": r["First Name"], "last_name": r["Last Name"],
                 "title": r["Title"], "company": r["Company"], "industry": r["Industry"], "country": r["Country"],
                 "timezone": r["Time Zone"] or None, "source": r["Source"], "status": "new", "sequence_step": 0,
                 "website_visits": 0} for r in csv.DictReader(f)]
    with app.store.write_plain() as s:
        return insert_rows(s, Lead.__table__, rows)


def run(ctx) -> list[Figure]:
    from sqlmodel import func, select

    from engine.adapters.leads_csv import _workers
    from engine.adapters.models import Lead
    from engine.services.pipeline import score_leads

    p = Progress(NAME)
    n, runs = ctx.size(300, 100_000), ctx.runs(3)
    path = write_leads_csv(ctx.tmp / f"leads_{n}.csv", n)
    total, rescore, bare, cpu = [], [], [], []
    report = scored = None
    for i in range(1, runs + 1):
        with database("sqlite", ctx.tmp) as url:
            app = make_app(url)
            t_imp, c_imp, report = timed_cpu(lambda app=app: app.import_leads(path))
            with app.store.read() as s:
                unscored = s.exec(select(func.count()).select_from(Lead).where(Lead.score.is_(None))).one()
            if unscored:
                raise RuntimeError(f"{unscored} imported leads were stored without a score")
            t_score, scored = timed(lambda app=app: score_leads(app))
            if scored["changed"]:
                raise RuntimeError(f"a rescore after the import changed {scored['changed']} leads")
            app.store.dispose()
        with database("sqlite", ctx.tmp) as url:
            app = make_app(url)
            t_bare, _ = timed(lambda app=app: _bare(app, path))
            app.store.dispose()
        total.append(t_imp)
        rescore.append(t_score)
        cpu.append(c_imp)
        bare.append(t_bare)
        p.run(f"{n:,} rows: import and score {t_imp:.2f} s (rescore of the table afterwards {t_score:.2f} s, "
              f"0 changed), bare", i, runs, t_bare)
    fig = Figure(f"Import and score {n:,} CSV rows (SQLite)", "s", total, goal=f"< {GOAL_SECONDS:g} s",
                 baseline=median(bare), cpu=cpu)
    fig.passed = fig.median < GOAL_SECONDS
    fig.ratio = fig.median / fig.baseline
    workers = _workers(None, report["rows"])
    fig.extra = {"rescore_s": {"median": round(median(rescore), 3), "samples": [round(x, 3) for x in rescore]},
                 "rows": n, "imported": report["imported"], "rejected": report["rejected"],
                 "by_tier": scored["by_tier"], "rows_per_s": round(n / fig.median), "worker_processes": workers}
    fig.note = (f"imported and scored in one pass, {workers} worker process{'es' if workers > 1 else ''} parsing "
                f"and scoring (CPU = the importing process only); {report['rejected']:,} rows rejected by validation "
                f"(the demo data's bad values); a rescore of the whole table afterwards took {median(rescore):.2f} s "
                f"and changed nothing")
    return [fig]
