"""Shared machinery of the fault injection suite (not a test module).

A ``Rig`` is one database, one config directory and one GHL sandbox (real HTTP over loopback, served from a
thread of the test process). Worker processes run the real CLI (`alpha worker`) with the LIVE GHL executor
pointed at the sandbox; the test process keeps an App of its own on the same database (queueing, a fresh
worker to finish a drain, reconciliation) whose executor is the same GHL executor.

The sandbox is the truth: it records every message it accepted, so the checks below compare what the
database says with what actually "went out".
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from engine.adapters import audit
from engine.adapters.ghl import GHLClient
from engine.adapters.ghl_executor import GHLExecutor, suppress_on_dnd
from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, GHLSandboxServer, start_sandbox
from engine.adapters.models import Approval, AuditEntry, OutboxItem
from tests.conftest import LIVE, deep_merge
from tests.helpers import ROOT, alpha_env, email

TOKEN = "pit-fault-suite-0123456789abcdef"
SEND_PATH = "/conversations/messages"
LOOKUP_PATH = "/contacts/search/duplicate"
CLIENT_TIMEOUT = 2.0  # GHL_TIMEOUT_SECONDS of every worker: a "timeout" fault holds longer than this

# The statuses a queued send may end in, and what each must carry.
WAITING_WITH_REASON = ("deferred",)          # a temporary reason and a not_before
FINAL_WITH_REASON = ("failed", "denied")     # a permanent reason (or a reconciliation's)
IN_DOUBT = ("reconcile", "sending")          # awaiting reconciliation


def seed_from_env(default: int) -> int:
    """ALPHA_FAULT_SEED replays a run; otherwise a fixed default so a failure can be reproduced."""
    raw = os.environ.get("ALPHA_FAULT_SEED")
    return int(raw) if raw else default


def production(*, hourly: int = 100000, per_domain: int = 100000, stale_seconds: int = 300) -> dict:
    """Assisted phase (every send needs a human: the queue is approved sends), live, no delays; the GHL
    breaker opens after 5 failures in a row and lets a trial through after 1 s."""
    return deep_merge(LIVE, {
        "rollout_phase": {"current": "assisted"},
        "email_limits": {"hourly_limit": hourly, "per_domain_hourly_limit": per_domain, "daily_limit": 100000,
                         "monthly_limit": 100000, "min_delay_seconds": 0},
        "circuit_breakers": {"apis": {"ghl": {"failure_threshold": 5, "recovery_timeout_seconds": 1,
                                              "success_threshold": 1}}},
        "reconciliation": {"sending_stale_seconds": stale_seconds},
    })


PERMS = {"agents": {"GHL_MASTER": {"rate_limits": {"per_minute": 1000000, "per_hour": 1000000}}}}
KEY_RE = re.compile(r"Ref ([A-Za-z0-9_.-]+):")


def item(key: str, to: str) -> dict:
    """One send; the key is written into the body so the sandbox's copy names its outbox key."""
    return email(key, to=to, body=f"Ref {key}: a short note about pipeline reviews.")


def _drain(f) -> str:
    f.seek(0)
    text = f.read()
    f.close()
    return text


def worker_stderr(p: subprocess.Popen) -> str:
    p.err.seek(0)
    return p.err.read()[-2000:]


class LaterClock:
    """The system clock, plus ``later`` seconds: lets the test's own App act "a little later" (an operator
    reconciling after `sending_stale_seconds`) without sleeping. Workers in other processes use real time."""

    def __init__(self):
        self.later = 0.0

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.later)


@dataclass
class Item:
    key: str
    to: str


@dataclass
class Rig:
    url: str
    cfg_dir: Path
    tmp: Path
    app: object                      # engine.app.App, in this process
    server: GHLSandboxServer
    base_url: str
    procs: list = field(default_factory=list)

    # ------------------------------------------------------------------------------------ environment
    def env(self, **extra) -> dict:
        return alpha_env(self.url, self.cfg_dir, self.tmp, GHL_API_KEY=TOKEN, GHL_LOCATION_ID=DEFAULT_LOCATION,
                         GHL_BASE_URL=self.base_url, GHL_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT),
                         PYTHONUNBUFFERED="1", **extra)

    # ------------------------------------------------------------------------------------ the queue
    def queue(self, items: list[Item], seed_contacts: float = 0.85, rng: random.Random | None = None) -> None:
        """Submit every item (assisted: each becomes pending_approval) and approve them all at once.

        Most recipients already exist in GHL (seeded with Email DND inactive, so a send is a look-up and a
        send); the rest are created by the executor's upsert."""
        rng = rng or random.Random(0)
        for it in items:
            if rng.random() < seed_contacts:
                self.server.state.seed({"email": it.to, "firstName": "Lead",
                                        "dndSettings": {"Email": {"status": "inactive"}}})
        for it in items:
            r = self.app.gateway.submit(item(it.key, it.to))
            assert r.status == "pending_approval", (it.key, r.to_dict())
        keys = [it.key for it in items]
        ids = select(OutboxItem.approval_id).where(OutboxItem.idempotency_key.in_(keys))
        with self.app.store.write_plain() as s:
            s.exec(sa.update(Approval).where(Approval.id.in_(ids)).values(
                status="approved", decided_by="approver-bob", decided_at=datetime.now(timezone.utc)))

    # ------------------------------------------------------------------------------------ workers
    def spawn_worker(self, interval: float = 0.1) -> subprocess.Popen:
        """`alpha worker` in a process of its own; its output goes to files (a pipe nobody reads would fill up
        with the GHL client's retry warnings and block it)."""
        n = len(list(self.tmp.glob("spawned*.out")))
        out, err = open(self.tmp / f"spawned{n}.out", "w+"), open(self.tmp / f"spawned{n}.err", "w+")
        p = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "worker", "--interval", str(interval)],
                             env=self.env(), cwd=str(ROOT), stdout=out, stderr=err, text=True)
        p.out, p.err = out, err
        self.procs.append(p)
        return p

    def stop_workers(self, timeout: float = 60) -> list[tuple[int, str, str]]:
        """SIGTERM every worker (each stops after its current pass); (returncode, stdout, stderr) each."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        out = []
        for p in self.procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            out.append((p.returncode, *(_drain(f) for f in (p.out, p.err))))
        self.procs = []
        return out

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.out.close()
            p.err.close()
        self.procs = []

    # ------------------------------------------------------------------------------------ database views
    def rows(self, keys: list[str] | None = None) -> dict[str, OutboxItem]:
        with self.app.store.read() as s:
            q = select(OutboxItem)
            if keys is not None:
                q = q.where(OutboxItem.idempotency_key.in_(keys))
            return {r.idempotency_key: r for r in s.exec(q).all()}

    def counts(self, keys: list[str] | None = None) -> Counter:
        return Counter(r.status for r in self.rows(keys).values())

    def expire_leases(self, keys: list[str] | None = None) -> int:
        """Let claims run out (a dead worker's lease lasts 120 s): the time a fresh worker would wait."""
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        q = sa.update(OutboxItem).where(OutboxItem.claimed_until.is_not(None))
        if keys is not None:
            q = q.where(OutboxItem.idempotency_key.in_(keys))
        with self.app.store.write_plain() as s:
            return s.exec(q.values(claimed_until=past)).rowcount

    def fast_forward_deferred(self, keys: list[str] | None = None) -> int:
        """Make deferred rows due now: the time a provider backoff or a breaker's recovery would take.
        Every check re-runs when they are resumed, so a row held by a limit stays held."""
        now = datetime.now(timezone.utc) - timedelta(seconds=1)
        q = sa.update(OutboxItem).where(OutboxItem.status == "deferred")
        if keys is not None:
            q = q.where(OutboxItem.idempotency_key.in_(keys))
        with self.app.store.write_plain() as s:
            return s.exec(q.values(not_before=now)).rowcount

    def finish(self, keys: list[str], timeout: float = 30) -> None:
        """A fresh worker (this process's App) drains what is left of ``keys``, pass after pass like
        `alpha worker`: a dead worker's row locks go only when its server session notices the death."""
        deadline = time.monotonic() + timeout
        while True:
            self.expire_leases(keys)
            self.app.gateway.process_due(100000)
            if not self.counts(keys)["pending_approval"] or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    # ------------------------------------------------------------------------------------ the sandbox
    def messages(self) -> list[dict]:
        with self.server.state.lock:
            return [dict(m) for m in self.server.state.messages]

    def received_keys(self) -> Counter:
        out: Counter = Counter()
        for m in self.messages():
            found = KEY_RE.search(m.get("html") or m.get("message") or "")
            out[found.group(1) if found else f"?{m.get('to')}"] += 1
        return out

    def fault(self, name: str, count: int = 1, **kw) -> None:
        self.server.state.add_fault({"fault": name, "count": count, **kw})

    def settle(self, timeout: float = 10) -> None:
        """Wait until the sandbox has finished every request it took (a slow answer to a killed client still
        records its message when the wait is over)."""
        wait_until(lambda: all(r["status"] is not None for r in list(self.server.state.requests)), timeout,
                   every=0.05, what="the sandbox to finish its requests")

    def clear_faults(self) -> None:
        with self.server.state.lock:
            self.server.state.faults = []

    # ------------------------------------------------------------------------------------ reconciliation
    def reconcile(self, keys: list[str] | None = None, later: float = 0.0) -> dict[str, str]:
        """Resolve every send in doubt from the provider's truth (the sandbox's record), as an operator would
        after looking at GHL, ``later`` seconds from now (past `sending_stale_seconds`). Returns {key: outcome}."""
        self.app.clock.later = later
        try:
            return self._reconcile(keys)
        finally:
            self.app.clock.later = 0.0

    def _reconcile(self, keys: list[str] | None) -> dict[str, str]:
        received = self.received_keys()
        wanted = set(keys) if keys is not None else None
        done = {}
        for row in self.app.reconciliation():
            if wanted is not None and row.idempotency_key not in wanted:
                continue
            there = received[row.idempotency_key] > 0
            self.app.resolve(row.id, "sent" if there else "failed",
                             "GHL's message log shows it" if there else "not in GHL's message log",
                             "ops:fault-suite")
            done[row.idempotency_key] = "sent" if there else "failed"
        return done

    def audit_ok(self) -> None:
        with self.app.store.read() as s:
            r = audit.verify(s)
        assert r.ok, r.to_dict()


def make_rig(app_factory, config_factory, tmp_path, prod: dict, executor_timeout: float = CLIENT_TIMEOUT,
             burst_max: int = 100000) -> Rig:
    """A rig on the test's database (``app_factory`` is bound to the ``db_url`` fixture)."""
    server, base = start_sandbox(token=TOKEN)
    server.state.reset(burst_max=burst_max)
    client = GHLClient(TOKEN, DEFAULT_LOCATION, base_url=base, timeout=executor_timeout)
    ex = GHLExecutor(client)
    app = app_factory(production=prod, warmup={"enabled": False}, permissions=PERMS, clock=LaterClock(),
                      executors={"email": ex, "crm": ex})
    ex.on_dnd = suppress_on_dnd(app)
    cfg = config_factory(production=prod, warmup={"enabled": False}, permissions=PERMS)
    return Rig(app.store.url, cfg, tmp_path, app, server, base)


def close_rig(rig: Rig) -> None:
    rig.kill_all()
    rig.app.executors["email"].client.close()
    rig.server.shutdown()


class Forked:
    """A worker forked by the zygote: its pid and the files holding its stdout and stderr."""

    def __init__(self, zygote: "Zygote", pid: int, out: Path, err: Path):
        self.zygote, self.pid, self.out, self.err = zygote, pid, out, err

    def ready(self, timeout: float = 30) -> None:
        """Wait for the worker's "worker started" line (its App is built; its first pass begins)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.out.exists() and "worker started" in self.out.read_text():
                return
            time.sleep(0.002)
        raise AssertionError(f"worker {self.pid} did not start: {self.err.read_text()[-2000:]}")

    def kill(self) -> int:
        """SIGKILL: no cleanup, no rollback. Returns the exit code (-9)."""
        os.kill(self.pid, signal.SIGKILL)
        return self.zygote.wait(self.pid)

    def terminate(self) -> int:
        os.kill(self.pid, signal.SIGTERM)
        return self.zygote.wait(self.pid)


class Zygote:
    """tests/fault/zygote.py: forks `alpha worker` processes without paying Python's start-up each time."""

    def __init__(self, env: dict, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.p = subprocess.Popen([sys.executable, "-m", "tests.fault.zygote"], env=env, cwd=str(ROOT),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, line: str) -> int:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline()
        assert answer.strip(), f"the zygote died (exit {self.p.poll()})"
        return int(answer)

    def spawn(self, *argv: str) -> Forked:
        self.n += 1
        out, err = self.tmp / f"worker{self.n}.out", self.tmp / f"worker{self.n}.err"
        return Forked(self, self._ask(" ".join(["spawn", str(out), str(err), *argv])), out, err)

    def wait(self, pid: int) -> int:
        return self._ask(f"wait {pid}")

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=30)


# ---------------------------------------------------------------------------------------- invariants

def sliding_max(times: list[datetime], window: timedelta) -> int:
    """The most events any window of that length holds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _sent_at(m: dict) -> datetime:
    return datetime.fromisoformat(m["sentAt"].replace("Z", "+00:00"))


def check_no_double_send(rig: Rig, keys: list[str]) -> Counter:
    received = rig.received_keys()
    twice = {k: n for k, n in received.items() if n > 1}
    assert not twice, f"sent more than once (sandbox copies per outbox key): {twice}"
    unknown = set(received) - set(rig.rows())
    assert not unknown, f"the sandbox received messages no outbox row knows: {sorted(unknown)[:10]}"
    per_to = Counter(m["to"] for m in rig.messages())
    assert max(per_to.values(), default=0) <= 1, [t for t, n in per_to.items() if n > 1]
    return received


def check_limits(rig: Rig, per_domain: int | None, hourly: int | None) -> None:
    """In the sandbox's received log: no 60 minutes hold more than a cap, overall or for one domain."""
    msgs = rig.messages()
    hour = timedelta(hours=1)
    if hourly is not None:
        worst = sliding_max([_sent_at(m) for m in msgs], hour)
        assert worst <= hourly, f"{worst} messages received within an hour; hourly_limit is {hourly}"
    if per_domain is not None:
        by_dom = defaultdict(list)
        for m in msgs:
            by_dom[m["to"].rsplit("@", 1)[1].lower()].append(_sent_at(m))
        over = {d: sliding_max(t, hour) for d, t in by_dom.items() if sliding_max(t, hour) > per_domain}
        assert not over, f"per-domain hourly cap {per_domain} exceeded: {over}"


def check_accounted(rig: Rig, keys: list[str], allow_in_doubt: bool) -> Counter:
    """None lost: every item has its row, in a state that says where it is and why."""
    rows = rig.rows(keys)
    missing = set(keys) - set(rows)
    assert not missing, f"items with no outbox row: {sorted(missing)[:10]}"
    allowed = {"sent", *WAITING_WITH_REASON, *FINAL_WITH_REASON} | (set(IN_DOUBT) if allow_in_doubt else set())
    bad = {k: r.status for k, r in rows.items() if r.status not in allowed}
    assert not bad, f"items in a state they should not end in: {dict(list(bad.items())[:10])}"
    with rig.app.store.read() as s:
        reconciled = {e.ref: e for e in s.exec(select(AuditEntry).where(AuditEntry.event == "outbox.reconciled",
                                                                        AuditEntry.ref.in_(keys))).all()}
    for k, r in rows.items():
        if r.status == "deferred":
            assert r.reasons and r.not_before is not None, (k, r.reasons, r.not_before)
        elif r.status in FINAL_WITH_REASON:
            assert r.reasons or (k in reconciled and _data(reconciled[k]).get("reason")), (k, r.status)
        elif r.status == "reconcile":
            assert r.last_error, (k, "in reconciliation without the error that put it there")
    return Counter(r.status for r in rows.values())


def _data(e: AuditEntry) -> dict:
    return json.loads(e.data) if isinstance(e.data, str) else (e.data or {})


def check_db_matches_sandbox(rig: Rig, keys: list[str]) -> None:
    """After reconciliation the database and the provider agree: sent <=> received."""
    rows = rig.rows(keys)
    received = rig.received_keys()
    sent = {k for k, r in rows.items() if r.status == "sent"}
    got = {k for k in keys if received[k] > 0}
    assert sent == got, {"sent in the database, not received": sorted(sent - got)[:10],
                         "received, not sent in the database": sorted(got - sent)[:10]}


# ---------------------------------------------------------------------------------------- chaos

FAULT_MENU = (
    # (weight, builder(rng) -> fault spec)
    (4, lambda r: {"fault": "429", "count": r.randint(2, 6), "retry_after": r.choice([None, "0", "1"]),
                   "path": r.choice([None, SEND_PATH])}),
    (3, lambda r: {"fault": r.choice(["500", "502", "503"]), "count": r.randint(1, 2),
                   "path": r.choice([SEND_PATH, LOOKUP_PATH])}),
    (1, lambda r: {"fault": "504", "count": 1, "path": SEND_PATH}),
    (3, lambda r: {"fault": "slow", "count": r.randint(1, 4), "seconds": round(r.uniform(0.1, 0.8), 2)}),
    (2, lambda r: {"fault": "timeout", "count": 1, "seconds": CLIENT_TIMEOUT + 0.5, "process": r.random() < 0.6,
                   "path": r.choice([SEND_PATH, SEND_PATH, LOOKUP_PATH])}),
    (2, lambda r: {"fault": "drop_before", "count": 1, "path": r.choice([SEND_PATH, LOOKUP_PATH])}),
    (2, lambda r: {"fault": "drop_after", "count": 1, "path": SEND_PATH}),
    (1, lambda r: {"fault": "upsert_422_creates", "count": 1}),
)


class Chaos(threading.Thread):
    """Adds a random fault (seeded) to the sandbox after every ``gap`` API requests it sees (a random gap
    between ``gap[0]`` and ``gap[1]``), so the density of faults does not depend on the machine's speed,
    until stopped or ``budget`` faults are injected."""

    def __init__(self, rig: Rig, seed: int, gap: tuple[int, int] = (4, 12), budget: int = 40):
        super().__init__(name="fault-chaos", daemon=True)
        self.rig, self.rng, self.gap, self.budget = rig, random.Random(seed), gap, budget
        self.stopped = threading.Event()
        self.injected: Counter = Counter()

    def run(self) -> None:
        weights = [w for w, _ in FAULT_MENU]
        state = self.rig.server.state
        next_at = len(state.requests) + self.rng.randint(*self.gap)
        while not self.stopped.wait(0.02) and self.budget > 0:
            if len(state.requests) < next_at:
                continue
            _, build = self.rng.choices(FAULT_MENU, weights=weights)[0]
            spec = {k: v for k, v in build(self.rng).items() if v is not None}
            state.add_fault(spec)
            self.injected[spec["fault"]] += spec["count"]
            self.budget -= 1
            next_at = len(state.requests) + self.rng.randint(*self.gap)

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def wait_until(pred, timeout: float, every: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
