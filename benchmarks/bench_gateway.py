"""(c) Gateway throughput: decisions per second through ``app.gateway.submit`` (one decision per call, each in
its own locked transaction, as every caller does today) on SQLite with one process and on PostgreSQL with one
and four processes, beside a bare transaction doing the same writes.

The decisions are first touches to distinct recipients over 200 domains under the repository's configuration
(phase shadow: every check runs, nothing is executed), so each one reads the control state, idempotency,
suppression, domain health, usage and agent rates and writes one outbox row and one audit row under the gate lock.

Bare: the same rows written per decision with the database driver directly, in the same locking pattern (BEGIN
IMMEDIATE on SQLite; SELECT ... FOR UPDATE of the audit head on PostgreSQL), the audit hash computed, one commit
per decision: the physical cost of these writes under this lock.

Goals: >= 500 decisions/s on SQLite and within 3x of bare; four PostgreSQL workers >= 2.5x one.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from datetime import datetime

from .common import CONFIG, Figure, Progress, database, make_app, median, pg_problem

NAME = "gateway"
TITLE = "Gateway decisions per second"
GOAL_SQLITE = 500.0
GOAL_RATIO = 3.0
GOAL_SCALE = 2.5
DOMAINS = 200


def action(i: int, tag: str) -> dict:
    from engine.core.config import load_settings

    from engine.rules.unsubscribe import unsubscribe_url

    sender = _settings(load_settings).production.sender
    to = f"person{i}@domain{i % DOMAINS}.example"
    secret = os.environ.get("ALPHA_UNSUBSCRIBE_SECRET", "bench-unsubscribe-secret-0123456789").encode()
    html = (f"<p>Hi, a short note about how your team reviews pipeline each week.</p>"
            f"<p>{sender.company_name}, {sender.postal_address}</p>"
            f'<p><a href="{unsubscribe_url(sender.unsubscribe_base_url, to, secret)}">Unsubscribe</a></p>')
    return {"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": f"{tag}-{i}",
            "to": to, "from": sender.from_addresses[0],
            "subject": "A question about your pipeline reviews", "html": html, "first_touch": True}


_SETTINGS = []


def _settings(load):
    if not _SETTINGS:
        _SETTINGS.append(load(CONFIG))
    return _SETTINGS[0]


# ------------------------------------------------------------------------------------------------ bare writes

class Bare:
    """One decision's writes with the driver directly: lock, outbox row, audit row (hash chained), commit."""

    def __init__(self, url: str, template: dict, audit_template: dict):
        from engine.adapters.models import AuditEntry, OutboxItem

        self.pg = url.startswith("postgresql")
        self.cols = [c.name for c in OutboxItem.__table__.columns if c.name != "id"]
        self.acols = [c.name for c in AuditEntry.__table__.columns]
        self.template, self.audit_template = template, audit_template
        ph = "%s" if self.pg else "?"
        self.ins_outbox = (f"INSERT INTO outbox ({', '.join(self.cols)}) VALUES ({', '.join([ph] * len(self.cols))})"
                           + (" RETURNING id" if self.pg else ""))
        self.ins_audit = f"INSERT INTO audit_log ({', '.join(self.acols)}) VALUES ({', '.join([ph] * len(self.acols))})"
        self.head = "SELECT last_seq, last_hash FROM audit_head WHERE id = 1" + (" FOR UPDATE" if self.pg else "")
        self.upd_head = f"UPDATE audit_head SET last_seq = {ph}, last_hash = {ph} WHERE id = 1"
        if self.pg:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        else:
            import sqlite3

            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
            for pragma in ("journal_mode=WAL", "busy_timeout=60000", "foreign_keys=ON", "synchronous=NORMAL"):
                self.conn.execute(f"PRAGMA {pragma}")

    def _value(self, v):
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        if isinstance(v, datetime) and not self.pg:
            return v.replace(tzinfo=None).isoformat(sep=" ")
        return v

    def write(self, key: str, to: str) -> None:
        row = {**self.template, "idempotency_key": key, "to_email": to, "to_domain": to.rsplit("@", 1)[1]}
        cur = self.conn.cursor()
        if not self.pg:
            cur.execute("BEGIN IMMEDIATE")
        seq, prev = cur.execute(self.head).fetchone()
        cur.execute(self.ins_outbox, [self._value(row[c]) for c in self.cols])
        oid = cur.fetchone()[0] if self.pg else cur.lastrowid
        a = {**self.audit_template, "seq": seq + 1, "ref": key, "outbox_id": oid, "prev_hash": prev}
        content = [a[k] for k in ("seq", "at", "actor", "agent", "event", "action", "status", "ref", "outbox_id",
                                  "reasons", "data", "prev_hash")]
        a["row_hash"] = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        cur.execute(self.ins_audit, [a[c] for c in self.acols])
        cur.execute(self.upd_head, (seq + 1, a["row_hash"]))
        if self.pg:
            self.conn.commit()
        else:
            cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _templates(url: str) -> tuple[dict, dict]:
    """One real decision's outbox row and audit row, as the bare writes' content."""
    from sqlmodel import select

    from engine.adapters.models import AuditEntry, OutboxItem

    app = make_app(url)
    res = app.gateway.submit(action(0, "template"))
    with app.store.read() as s:
        row = s.get(OutboxItem, res.outbox_id)
        entry = s.exec(select(AuditEntry).where(AuditEntry.outbox_id == res.outbox_id)).first()
        template = {c.name: getattr(row, c.name) for c in OutboxItem.__table__.columns}
        audit_template = {c.name: getattr(entry, c.name) for c in AuditEntry.__table__.columns}
    app.store.dispose()
    return template, audit_template


# ------------------------------------------------------------------------------------------------ workers

def _worker(url: str, mode: str, tag: str, start: int, n: int, ready, go, out, templates) -> None:
    """Submit ``n`` decisions (or bare writes) once ``go`` is set; report (t0, t1, seconds inside the lock)."""
    try:
        if mode in ("engine", "batch"):
            app = make_app(url, init=False)
            inside = [0.0]
            write = app.store.write

            from contextlib import contextmanager

            @contextmanager
            def timed_write():  # how long each decision holds the gate lock (the lock is taken inside)
                t = time.perf_counter()
                with write() as s:
                    yield s
                inside[0] += time.perf_counter() - t

            app.store.write = timed_write
            app.gateway.submit(action(start - 1, f"{tag}-warm"))  # connect, warm caches
            acts = [action(start + i, tag) for i in range(n)]
            ready.put(os.getpid())
            go.wait()
            inside[0] = 0.0
            c0 = time.process_time()
            t0 = time.monotonic()
            results = app.gateway.submit_many(acts) if mode == "batch" else (app.gateway.submit(a) for a in acts)
            for r in results:
                if r.status not in ("shadowed", "denied", "deferred"):
                    raise RuntimeError(f"unexpected decision {r.status}")
            t1 = time.monotonic()
            cpu = time.process_time() - c0
            app.store.dispose()
            out.put((t0, t1, inside[0], cpu))
        else:
            bare = Bare(url, *templates)
            bare.write(f"{tag}-warm-{start}", "warm@warm.example")
            ready.put(os.getpid())
            go.wait()
            t0 = time.monotonic()
            for i in range(n):
                bare.write(f"{tag}-{start + i}", f"person{start + i}@domain{(start + i) % DOMAINS}.example")
            t1 = time.monotonic()
            bare.close()
            out.put((t0, t1, None, None))
    except BaseException as e:  # noqa: BLE001 - report it to the parent, which fails the benchmark
        out.put(("error", f"{type(e).__name__}: {e}", None, None))


def measure(url: str, mode: str, procs: int, total: int, tag: str,
            templates) -> tuple[float, float | None, float | None]:
    """Decisions per second of ``procs`` processes sharing ``total`` decisions, and (engine mode) the share of the
    time the lock was held and the CPU milliseconds each decision cost the submitting process."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    per = total // procs
    ps = [ctx.Process(target=_worker, args=(url, mode, f"{tag}-p{k}", k * per + 1, per, ready, go, out, templates))
          for k in range(procs)]
    for p in ps:
        p.start()
    try:
        for _ in ps:
            ready.get(timeout=300)
        cpu0 = _machine_cpu()
        go.set()
        results = [out.get(timeout=1800) for _ in ps]
        cpu1 = _machine_cpu()
    finally:
        for p in ps:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise RuntimeError(f"gateway worker failed: {errors[0]}")
    t0, t1 = min(r[0] for r in results), max(r[1] for r in results)
    rate = per * procs / (t1 - t0)
    held = cpu_ms = None
    if mode != "bare":
        held = sum(r[2] for r in results) / sum(r[1] - r[0] for r in results)
        cpu_ms = 1000 * sum(r[3] for r in results) / (per * procs)
    BUSY[(url.split(":", 1)[0], mode, procs)] = _busy_cores(cpu0, cpu1)
    return rate, held, cpu_ms


BUSY: dict = {}  # (backend, mode, processes) -> cores the whole machine kept busy during the last measurement


def _machine_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of every core since boot (/proc/stat), None where there is none."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def _busy_cores(a, b) -> float | None:
    if a is None or b is None or b[1] <= a[1]:
        return None
    return round((b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1), 2)


def _batched(ctx, p: Progress, runs: int, total: int, setups: list[tuple[str, int]], found: dict) -> list[Figure]:
    """Gateway.submit_many (many decisions per locked transaction, the path the shadow pipeline takes): the same
    decisions, measured the same way, beside one submit per decision."""
    figs = []
    for backend, procs in setups:
        rates, held = [], []
        for i in range(1, runs + 1):
            with database(backend, ctx.tmp) as url:
                r, h, _ = measure(url, "batch", procs, total, f"m{i}", _templates(url))
            rates.append(r)
            held.append(h)
            p.run(f"{backend} x{procs}: {total:,} decisions, submit_many", i, runs, r, "decisions/s")
        base = found[(backend, procs)].baseline
        fig = Figure(f"Gateway submit_many, {backend}, {procs} process{'es' if procs > 1 else ''}", "decisions/s",
                     rates, baseline=base)
        fig.ratio = fig.baseline / fig.median
        busy = BUSY.get((url.split(":", 1)[0], "batch", procs))
        fig.extra = {"lock_held_share": round(median(held), 3), "busy_cores_last_run": busy}
        fig.note = (f"the same decisions as submit, in transactions of up to 200; bare (one transaction per "
                    f"decision) {fig.baseline:,.0f}/s; lock held {100 * median(held):.0f}% of the time"
                    + (f"; the machine's {os.cpu_count()} cores were {busy:.2f} busy" if busy is not None else ""))
        if backend == "sqlite":
            fig.goal = f">= {GOAL_SQLITE:g}/s and within {GOAL_RATIO:g}x of bare"
            fig.passed = fig.median >= GOAL_SQLITE and fig.ratio <= GOAL_RATIO
        found[(backend, procs, "batch")] = fig
        figs.append(fig)
    one, four = found.get(("postgres", 1, "batch")), found.get(("postgres", 4, "batch"))
    if one and four:
        scale = four.median / one.median
        four.goal = f">= {GOAL_SCALE:g}x one process"
        four.passed = scale >= GOAL_SCALE
        four.extra["scale_vs_one"] = round(scale, 2)
        four.note += f"; {scale:.2f}x one process"
        busy = one.extra.get("busy_cores_last_run")
        if busy:
            four.note += (f"; one process already kept {busy:.2f} of {os.cpu_count()} cores busy (itself and "
                          f"PostgreSQL), so at most {(os.cpu_count() or 1) / busy:.2f}x is possible on this machine")
        one.goal = "reference for 4 processes"
    return figs


def run(ctx) -> list[Figure]:
    runs = ctx.runs(5)
    p = Progress(NAME)
    total = ctx.size(40, 1000)
    figs = []
    setups = [("sqlite", 1)]
    if pg_problem() is None:
        setups += [("postgres", 1), ("postgres", 4)]
    else:
        p.note(f"PostgreSQL not reachable ({pg_problem()}): its figures are skipped")
    found: dict[tuple[str, int], Figure] = {}
    for backend, procs in setups:
        eng, bare, held, cpu = [], [], [], []
        for i in range(1, runs + 1):
            with database(backend, ctx.tmp) as url:
                templates = _templates(url)
                r, h, c = measure(url, "engine", procs, total, f"e{i}", templates)
                b, _, _ = measure(url, "bare", procs, total, f"b{i}", templates)
            eng.append(r)
            bare.append(b)
            held.append(h)
            cpu.append(c)
            p.run(f"{backend} x{procs}: {total:,} decisions, lock held {100 * h:.0f}% of the time, bare {b:,.0f}/s, "
                  f"submit", i, runs, r, "decisions/s")
        fig = Figure(f"Gateway submit, {backend}, {procs} process{'es' if procs > 1 else ''}", "decisions/s", eng,
                     baseline=median(bare))
        fig.ratio = fig.baseline / fig.median  # how many times slower than the bare writes
        fig.extra = {"decisions": total, "bare_samples": [round(x, 1) for x in bare],
                     "lock_held_share": round(median(held), 3), "cpu_ms_per_decision": round(median(cpu), 3)}
        fig.note = (f"bare {fig.baseline:,.0f}/s; {fig.ratio:.1f}x slower than bare; the gate lock is held "
                    f"{100 * median(held):.0f}% of each worker's time; {median(cpu):.2f} ms of CPU per decision in "
                    f"the submitting process")
        if backend == "sqlite":
            fig.goal = f">= {GOAL_SQLITE:g}/s and within {GOAL_RATIO:g}x of bare"
            fig.passed = fig.median >= GOAL_SQLITE and fig.ratio <= GOAL_RATIO
        found[(backend, procs)] = fig
        figs.append(fig)
    figs += _batched(ctx, p, runs, total, setups, found)
    one, four = found.get(("postgres", 1)), found.get(("postgres", 4))
    if one and four:
        scale = four.median / one.median
        bare_scale = four.baseline / one.baseline
        four.goal = f">= {GOAL_SCALE:g}x one process"
        four.passed = scale >= GOAL_SCALE
        four.extra.update(scale_vs_one=round(scale, 2), bare_scale_vs_one=round(bare_scale, 2))
        four.note += (f"; {scale:.2f}x one process (bare: {bare_scale:.2f}x); at most "
                      f"{1 / max(one.extra['lock_held_share'], 1e-9):.1f}x is possible while one process holds the "
                      f"lock {100 * one.extra['lock_held_share']:.0f}% of its time, and {os.cpu_count()} cores")
        one.goal = "reference for 4 processes"
    return figs
