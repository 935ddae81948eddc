"""Four `alpha worker` processes drain a queue of approved sends through the LIVE GHL executor while the GHL
sandbox (real HTTP over loopback) answers with 429 bursts, 5xx, slow answers, timeouts, connections dropped
before and after processing, and the 422-that-still-creates quirk, injected on a seeded random schedule.

SQLite and PostgreSQL (several workers are supported on both: README "Approvals"; on SQLite the claim is
serialized). The per-domain and hourly caps are set so that both bind.

Checked, in the sandbox's own record of what it received: no message twice (per outbox key and per
recipient), no 60 minutes over a cap; in the database: every item sent, deferred (with its reason and time),
failed/denied (with its reason) or awaiting reconciliation; after the faults stop and reconciliation (by the
sandbox's truth), the database and the provider agree exactly; the audit chain verifies.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.fault.harness import (Chaos, Item, check_accounted, check_db_matches_sandbox, check_limits,
                                 check_no_double_send, close_rig, make_rig, production, seed_from_env, worker_stderr)

pytestmark = pytest.mark.slow

PER_DOMAIN_CAP = 8
LIMIT_CODES = {"LIMIT_HOURLY", "LIMIT_DOMAIN_HOURLY"}


def _drained(rig, keys) -> bool:
    """Nothing approved is waiting, nothing is mid-send, and nothing deferred is due within a few seconds."""
    rows = rig.rows(keys).values()
    soon = time.time() + 3
    for r in rows:
        if r.status in ("pending_approval", "sending"):
            return False
        if r.status == "deferred" and r.not_before is not None and r.not_before.timestamp() < soon:
            return False
    return True


def test_four_workers_drain_through_ghl_faults(db_url, app_factory, config_factory, tmp_path):
    seed = seed_from_env(20261124)
    pg = db_url.startswith("postgresql")
    n = 200 if pg else 160
    domains = n // 10  # 10 sends per domain, 8 allowed per domain and hour
    hourly = n * 3 // 4  # binds too: fewer than the domain caps would allow (domains * PER_DOMAIN_CAP)
    print(f"\nfault seed {seed} (ALPHA_FAULT_SEED={seed} replays this fault schedule); {n} sends, "
          f"caps {PER_DOMAIN_CAP}/domain/hour and {hourly}/hour")
    rig = make_rig(app_factory, config_factory, tmp_path, production(hourly=hourly, per_domain=PER_DOMAIN_CAP))
    try:
        items = [Item(f"gf-{i}", f"lead{i}@d{i % domains}.example.io") for i in range(n)]
        keys = [it.key for it in items]
        rig.queue(items, rng=random.Random(seed))

        chaos = Chaos(rig, seed, gap=(4, 12), budget=n // 4)
        workers = [rig.spawn_worker(interval=0.2) for _ in range(4)]
        chaos.start()
        started = time.monotonic()
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and not _drained(rig, keys):
                dead = [(p.returncode, worker_stderr(p)) for p in workers if p.poll() is not None]
                assert not dead, f"a worker died during the drain: {dead}"
                time.sleep(0.5)
            assert _drained(rig, keys), f"not drained in time: {rig.counts(keys)}"
        finally:
            chaos.stop()
            stopped = rig.stop_workers()
        drain_s = time.monotonic() - started
        for code, _out, err in stopped:
            assert code == 0 and "Traceback" not in err, err[-3000:]

        # during the faults: nothing twice, caps held, every item somewhere with its reason
        check_no_double_send(rig, keys)
        check_limits(rig, PER_DOMAIN_CAP, hourly)
        during = check_accounted(rig, keys, allow_in_doubt=True)
        requests = rig.server.state.requests
        faults_hit = Counter(r["fault"] for r in requests if r["fault"])
        print(f"drained in {drain_s:.1f}s; injected {dict(chaos.injected)}; hit {dict(faults_hit)}; "
              f"states {dict(during)}")
        # the faults really happened (otherwise this test proves nothing)
        assert sum(faults_hit.values()) >= 20 and len(faults_hit) >= 5, faults_hit
        assert during["reconcile"] >= 1, "no send was ever in doubt: the faults did not reach the sends"

        # the faults stop; time passes (backoffs, breaker recovery); a fresh worker finishes the drain
        rig.clear_faults()
        for _ in range(6):
            rig.expire_leases(keys)
            rig.fast_forward_deferred(keys)
            rig.app.gateway.process_due(100000)
            waiting = [r for r in rig.rows(keys).values()
                       if r.status == "deferred" and not {x["code"] for x in r.reasons} <= LIMIT_CODES]
            if not waiting:
                break
            time.sleep(1.1)  # an open breaker lets a trial through after 1 s
        after = rig.counts(keys)
        assert not waiting, [(r.idempotency_key, r.reasons) for r in waiting][:5]
        assert after["pending_approval"] == 0 and after["sending"] == 0, after

        # reconciliation: an operator resolves each send in doubt from GHL's own log (the sandbox)
        resolved = rig.reconcile(keys)
        final = check_accounted(rig, keys, allow_in_doubt=False)
        print(f"after the faults: {dict(after)}; reconciled {dict(Counter(resolved.values()))}; final {dict(final)}")
        check_db_matches_sandbox(rig, keys)
        received = check_no_double_send(rig, keys)
        check_limits(rig, PER_DOMAIN_CAP, hourly)
        # what is still deferred is held by a cap, and only because the caps are full
        held = [r for r in rig.rows(keys).values() if r.status == "deferred"]
        assert all({x["code"] for x in r.reasons} <= LIMIT_CODES for r in held)
        assert final["sent"] == sum(received.values()) >= hourly // 2, (final, hourly)
        rig.audit_ok()
    finally:
        close_rig(rig)
