"""PostgreSQL briefly unavailable while four `alpha worker` processes drain approved sends through the GHL
sandbox: what a server restart looks to its clients (every connection cut, new ones refused for ~2 s), done
only to this test's own database so nothing else on a shared server is disturbed:

    ALTER DATABASE <db> WITH ALLOW_CONNECTIONS false; pg_terminate_backend(every session on <db>);
    ~2 s; ALTER DATABASE <db> WITH ALLOW_CONNECTIONS true      (from the maintenance database)

The workers survive it (they back off and reconnect; none exits), go on draining, and afterwards: no message
twice, nothing lost (a send whose outcome could not be written stays `sending` and is reconciled from what
GHL received), the database and the provider agree, the audit chain verifies.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime, timezone

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from tests.fault.harness import (SEND_PATH, Item, check_accounted, check_db_matches_sandbox, check_no_double_send,
                                 close_rig, make_rig, production, seed_from_env, wait_until, worker_stderr)

pytestmark = pytest.mark.slow


# PostgreSQL only: the conftest's own fixture (a fresh database; fails under CI=true when the server is missing)
ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                      indirect=True)


def _admin():
    return psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def restart_database(dbname: str, down_for: float = 2.0) -> int:
    """Cut every session of ``dbname`` and refuse new ones for ``down_for`` seconds. Returns how many
    sessions were cut."""
    with _admin() as c:
        try:
            c.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
            cut = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchone()[0]
            time.sleep(down_for)
        finally:
            c.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
    return cut


def _sent(rig, keys) -> int:
    """The number sent, or -1 while the database refuses this process too."""
    try:
        return rig.counts(keys)["sent"]
    except Exception:  # noqa: BLE001 - the outage reaches this process's connections too
        return -1


@ON_POSTGRES
def test_workers_survive_a_database_restart(db_url, app_factory, config_factory, tmp_path):
    seed = seed_from_env(5432)
    n = 200
    print(f"\noutage seed {seed}; {n} sends, 4 workers")
    rig = make_rig(app_factory, config_factory, tmp_path, production(stale_seconds=1))
    dbname = db_url.rsplit("/", 1)[1]
    try:
        items = [Item(f"db-{i}", f"lead{i}@o{i % 20}.example.io") for i in range(n)]
        keys = [it.key for it in items]
        rig.queue(items, rng=random.Random(seed))
        # slow the sends a little, so the drain is still going when the database goes away
        rig.fault("slow", count=n, path=SEND_PATH, seconds=0.05)
        workers = [rig.spawn_worker(interval=0.2) for _ in range(4)]

        def alive() -> bool:
            dead = [(p.returncode, worker_stderr(p)) for p in workers if p.poll() is not None]
            assert not dead, f"a worker exited: {dead}"
            return True

        try:
            wait_until(lambda: alive() and _sent(rig, keys) >= n // 5, 120, what=f"{n // 5} sends before the outage")
            before = _sent(rig, keys)
            cut = restart_database(dbname, down_for=2.0)
            back = datetime.now(timezone.utc)
            assert cut >= 4, f"only {cut} sessions were cut: the workers were not connected?"

            # the workers reconnect and go on: every row ends up handled, or held by a claim the outage left
            # behind (it runs out with its lease), or `sending` from before the outage (in doubt)
            def settled() -> bool:
                rows = rig.rows(keys).values()
                now = datetime.now(timezone.utc)
                return all(r.status not in ("pending_approval", "sending")
                           or (r.status == "pending_approval" and r.claimed_until and r.claimed_until > now)
                           or (r.status == "sending" and r.reserved_at < back.replace(tzinfo=r.reserved_at.tzinfo))
                           for r in rows)

            wait_until(lambda: alive() and _sent(rig, keys) > before + 20, 60, what="sends after the outage")
            wait_until(lambda: alive() and settled(), 120, what="the workers to drain after the outage")
        finally:
            stopped = rig.stop_workers()
        for code, _out, err in stopped:
            assert code == 0, err[-3000:]
        # they noticed the outage (and lived): the worker logs each retry
        assert sum("database unavailable" in err for _c, _o, err in stopped) >= 2, [e[-500:] for _c, _o, e in stopped]

        during = rig.counts(keys)
        claimed = sum(1 for r in rig.rows(keys).values() if r.status == "pending_approval")
        # what the outage left: claims that run out with their lease (120 s), sends in doubt
        rig.clear_faults()
        rig.expire_leases(keys)
        rig.app.gateway.process_due(100000)
        rig.settle()
        resolved = rig.reconcile(keys, later=5)
        final = check_accounted(rig, keys, allow_in_doubt=False)
        print(f"{cut} sessions cut after {before} sends; when the workers stopped: {dict(during)} "
              f"({claimed} still claimed); reconciled {dict(Counter(resolved.values()))}; final {dict(final)}")
        assert set(final) <= {"sent", "failed"}, final
        check_db_matches_sandbox(rig, keys)
        check_no_double_send(rig, keys)
        rig.audit_ok()
    finally:
        close_rig(rig)


def test_the_worker_loop_backs_off_and_goes_on_when_the_database_fails(monkeypatch):
    """The loop of `alpha worker`, without a server: a pass that fails with a database error is retried after
    0.5 s, 1 s, 2 s...; the first pass that works resets the backoff; any other error still ends the worker."""
    from sqlalchemy.exc import OperationalError

    from engine.services import approvals

    naps: list[float] = []
    monkeypatch.setattr(approvals.time, "sleep", lambda s: naps.append(s))
    monkeypatch.setattr(approvals.time, "monotonic", lambda: sum(naps))
    script = ["down", "down", "down", {"results": [1]}, "down", {"results": []}, "stop"]
    passes = []

    def process():
        step = script[len(passes)]
        passes.append(step)
        if step == "down":
            raise OperationalError("SELECT 1", {}, Exception("terminating connection due to administrator command"))
        if step == "stop":
            raise RuntimeError("a bug")
        return step

    svc = approvals.ApprovalService(app=None)
    svc.process = process
    with pytest.raises(RuntimeError):
        svc.run_forever(interval=7.0)
    assert len(passes) == len(script)
    retry_naps = [x for x in naps if x != 7.0]
    # 0.5 + 1 + 2 while down (in naps of at most 0.2 s, so a SIGTERM is obeyed), none after a busy pass,
    # 0.5 again at the next failure (the backoff was reset), the idle interval once
    assert sum(retry_naps) == pytest.approx(0.5 + 1 + 2 + 0.5)
    assert max(retry_naps) <= 0.2 and naps.count(7.0) == 1
