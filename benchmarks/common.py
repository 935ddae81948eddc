"""Shared pieces of the benchmarks: throwaway databases, Apps on them, a synthetic lead CSV, timing and machine
facts. Nothing here touches the user's .data: every database is a temporary SQLite file or a fresh PostgreSQL
database that is dropped afterwards."""
from __future__ import annotations

import contextlib
import csv
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
DEMO_CSV = ROOT / "data" / "demo_leads.csv"
PG_ADMIN_URL = os.environ.get("ALPHA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# A Tuesday, 10:00 in New York (15:00 UTC): inside default working hours (the same instant the tests use).
WORK_TIME = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ results

@dataclass
class Figure:
    """One measured quantity: ``runs`` samples, summarised by their median."""

    name: str
    unit: str
    samples: list[float]
    goal: str = ""
    passed: bool | None = None
    baseline: float | None = None     # the median of the bare cost of the same work (same unit)
    ratio: float | None = None        # median / baseline (or a ratio that is the figure's own goal)
    note: str = ""
    extra: dict = field(default_factory=dict)
    cpu: list[float] | None = None    # this process's CPU seconds per run, where the work runs in this process

    @property
    def median(self) -> float:
        return median(self.samples)

    def to_dict(self) -> dict:
        return {"name": self.name, "runs": len(self.samples), "median": round(self.median, 4),
                "min": round(min(self.samples), 4), "max": round(max(self.samples), 4), "unit": self.unit,
                "samples": [round(x, 4) for x in self.samples], "goal": self.goal, "passed": self.passed,
                "baseline": None if self.baseline is None else round(self.baseline, 4),
                "ratio": None if self.ratio is None else round(self.ratio, 3), "note": self.note,
                "cpu_median": None if not self.cpu else round(median(self.cpu), 4), **self.extra}


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, result). On a busy machine the CPU time is the steadier
    figure: the wall time also counts the time other processes held the cores."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


class Progress:
    """One line per run on stderr: ``[bench] shadow 3/5  12.34 s``."""

    def __init__(self, bench: str):
        self.bench = bench

    def run(self, what: str, i: int, n: int, value: float, unit: str = "s") -> None:
        log(f"[{self.bench}] {what} {i}/{n}  {value:,.3f} {unit}")

    def note(self, msg: str) -> None:
        log(f"[{self.bench}] {msg}")


# ------------------------------------------------------------------------------------------------ databases

def pg_problem() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001
        return (str(e).strip().splitlines() or [type(e).__name__])[0]


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (created and dropped like tests/conftest.py does)."""
    import psycopg

    name = f"alpha_bench_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def sqlite_database(tmp: Path) -> Iterator[str]:
    d = Path(tempfile.mkdtemp(prefix="db-", dir=tmp))
    try:
        yield f"sqlite:///{d / 'alpha.db'}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    with (pg_database() if backend == "postgres" else sqlite_database(tmp)) as url:
        yield url


def isolate_env(tmp: Path) -> None:
    """No benchmark sees the developer's .env, kill switch, data dir or API keys."""
    for var in ("EMERGENCY_STOP", "DATABASE_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GHL_API_KEY",
                "GHL_LOCATION_ID", "SLACK_WEBHOOK_URL"):
        os.environ.pop(var, None)
    os.environ["ALPHA_ENV_FILE"] = str(tmp / "bench.env")
    os.environ["ALPHA_DATA_DIR"] = str(tmp / "data")
    os.environ["ALPHA_CONFIG_DIR"] = str(CONFIG)
    os.environ.setdefault("ALPHA_UNSUBSCRIBE_SECRET", "bench-unsubscribe-secret-0123456789")


def make_app(url: str, clock=None, config_dir: Path | None = None, init: bool = True):
    """An initialised App on ``url`` with the repository's configuration and a fixed clock in working hours."""
    from engine.app import App
    from engine.core.clock import FixedClock
    from engine.core.config import load_settings
    from engine.adapters.db import Store

    app = App(settings=load_settings(config_dir or CONFIG), store=Store(url), clock=clock or FixedClock(WORK_TIME))
    if init:
        app.init("bench")
    return app


def insert_rows(s, table, rows: list[dict], chunk: int = 5000) -> int:
    """Bulk INSERT (executemany) in session ``s``, keeping only the columns ``table`` has (the schema grows while
    the benchmarks stay). Returns the number of rows."""
    import sqlalchemy as sa

    names = set(table.c.keys())
    rows = [{k: v for k, v in r.items() if k in names} for r in rows]
    for i in range(0, len(rows), chunk):
        s.connection().execute(sa.insert(table), rows[i:i + chunk])
    return len(rows)


# ------------------------------------------------------------------------------------------------ lead data

def _demo_pools() -> dict[str, list[str]]:
    with DEMO_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def write_leads_csv(path: Path, n: int, seed: int = 7) -> Path:
    """``n`` synthetic leads with unique emails, each column drawn from the demo CSV's values (so the mix of
    tiers, disqualifications, sequences, time zones and formats is the demo's, at any size)."""
    pools = _demo_pools()
    header = list(pools)
    rng = random.Random(seed)
    domains = [f"company{i}.example" for i in range(max(1, n // 8))]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            row = {k: rng.choice(v) for k, v in pools.items()}
            first = rng.choice(pools["First Name"]) or "Alex"
            last = rng.choice(pools["Last Name"]) or "Lee"
            dom = domains[i % len(domains)]
            row.update({"Email": f"{first.lower()}.{last.lower()}.{i}@{dom}", "First Name": first,
                        "Last Name": last, "Website": f"https://{dom}",
                        "Company": f"{rng.choice(pools['Company']) or 'Acme'} {i % 997}"})
            w.writerow([row[k] for k in header])
    return path


# ------------------------------------------------------------------------------------------------ machine

def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    import sqlite3

    import sqlalchemy

    pg = None
    if pg_problem() is None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")) as c:
            pg = c.execute("SHOW server_version").fetchone()[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram, "os": platform.platform(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "postgresql": pg,
            "sqlalchemy": sqlalchemy.__version__, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
