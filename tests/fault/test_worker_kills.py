"""`alpha worker` killed with SIGKILL at random points of a send, 25 trials on SQLite and 25 on PostgreSQL.

Each trial queues a few approved sends (fresh keys and recipients, one database per backend), starts a real
`alpha worker` process against the GHL sandbox (LIVE executor, real HTTP; forked from a process that imported
the engine once, tests/fault/zygote.py, so a trial costs no interpreter start-up), kills it after a random delay
(seeded; the seed is printed, ALPHA_FAULT_SEED replays the schedule), then does what an operator's restart
does: once the dead worker's claims have run out, a fresh worker finishes the drain, and every send in doubt
is resolved from what GHL (the sandbox) actually received.

In every trial: no recipient got a message twice, no item was lost (each ends sent, or failed through
reconciliation with its reason), and the database agrees with the provider. The audit chain verifies at the
end. Some sends are made slow so that kills land while the call is in flight, the case where the message
goes out after the process is gone.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.fault.harness import (LOOKUP_PATH, SEND_PATH, Item, Zygote, check_accounted, check_db_matches_sandbox,
                                 check_no_double_send, close_rig, make_rig, production, seed_from_env)

pytestmark = pytest.mark.slow

TRIALS = 25  # per backend: 50 in total


def _wait_for_request(rig, keys, n: int, timeout: float = 10) -> None:
    """Until the sandbox has seen ``n`` API requests in all, or the trial's sends are all done."""
    deadline = time.monotonic() + timeout
    polls = 0
    while len(rig.server.state.requests) < n and time.monotonic() < deadline:
        polls += 1
        if polls % 25 == 0:
            c = rig.counts(keys)
            if not c["pending_approval"] and not c["sending"]:
                return
        time.sleep(0.002)


def _landing(rows, received) -> str:
    """Where the kill landed, from what the database and the provider say right after it."""
    st = Counter(r.status for r in rows.values())
    if st["sending"]:
        gone = any(received[k] for k, r in rows.items() if r.status == "sending")
        return "mid-send, message out" if gone else "mid-send, message not out"
    if st["pending_approval"] == len(rows):
        return "before the first send"
    if st["pending_approval"]:
        return "between sends"
    return "after the drain"


def test_workers_killed_at_random_points_never_send_twice_nor_lose(db_url, app_factory, config_factory,
                                                                  tmp_path):
    base = seed_from_env(7)
    seed = base + (1 if db_url.startswith("postgresql") else 0)  # another schedule on each backend
    rng = random.Random(seed)
    print(f"\nkill seed {seed} (ALPHA_FAULT_SEED={base} replays it); {TRIALS} trials")
    # a row left `sending` is listed for reconciliation after 1 s (the operator below looks 2 s later)
    rig = make_rig(app_factory, config_factory, tmp_path, production(stale_seconds=1))
    landings: Counter = Counter()
    outcomes: Counter = Counter()
    zygote = Zygote(rig.env(), tmp_path)
    try:
        # calibrate: how long one uninterrupted worker takes per send on this machine, now (for time-based kills)
        cal = [Item(f"cal-{i}", f"cal{i}@cal.example.io") for i in range(4)]
        rig.queue(cal, rng=rng)
        p = zygote.spawn("worker", "--interval", "0.05")
        p.ready()
        t0 = time.monotonic()
        while rig.counts([c.key for c in cal])["sent"] < len(cal):
            time.sleep(0.01)
            assert time.monotonic() - t0 < 60, "the calibration drain did not finish"
        per_send = (time.monotonic() - t0) / len(cal)
        assert p.terminate() == 0, p.err.read_text()

        for t in range(TRIALS):
            k = rng.randint(2, 5)
            items = [Item(f"kill{t}-{i}", f"t{t}n{i}@k{i % 3}.example.io") for i in range(k)]
            keys = [it.key for it in items]
            rig.queue(items, rng=rng)
            shape = rng.choice(["plain", "slow send", "slow look-up"])
            slow = round(rng.uniform(0.05, 0.4), 3)
            if shape == "slow send":
                rig.fault("slow", count=k, path=SEND_PATH, seconds=slow)
            elif shape == "slow look-up":
                rig.fault("slow", count=k, path=LOOKUP_PATH, seconds=slow)
            mode = rng.choice(["after a random time", "at a random API request"])
            requests_before = len(rig.server.state.requests)
            worker = zygote.spawn("worker", "--interval", "0.05")
            worker.ready()
            if mode == "after a random time":  # anywhere, database steps included
                span = per_send * k + (slow * k if shape != "plain" else 0)
                time.sleep(rng.uniform(0, span * 1.1))
            else:  # when GHL has received the j-th request of the ~2 a send makes (look-up, send), plus a jitter
                _wait_for_request(rig, keys, requests_before + rng.randint(1, 2 * k))
                time.sleep(rng.uniform(0, 0.03))
            code = worker.kill()  # SIGKILL: no cleanup, no rollback, no goodbye
            assert code == -9, (code, worker.err.read_text()[-2000:])  # it was alive until then
            rig.settle()
            received = rig.received_keys()
            landings[_landing(rig.rows(keys), received)] += 1

            # the restart: the dead worker's claims run out; a fresh worker drains; in-doubt sends are resolved
            rig.clear_faults()
            rig.finish(keys)
            rig.settle()
            resolved = rig.reconcile(keys, later=2)
            outcomes.update(resolved.values())

            final = check_accounted(rig, keys, allow_in_doubt=False)
            assert set(final) <= {"sent", "failed"}, (t, final)
            assert final["failed"] == sum(1 for v in resolved.values() if v == "failed"), (t, final, resolved)
            check_db_matches_sandbox(rig, keys)
            check_no_double_send(rig, keys)

        print(f"per send {per_send * 1000:.0f} ms; kills landed: {dict(landings)}; "
              f"reconciled: {dict(outcomes)}")
        # the kills did land inside sends (otherwise this proves little)
        assert landings["mid-send, message out"] + landings["mid-send, message not out"] >= 2, landings
        rig.audit_ok()
    finally:
        zygote.close()
        close_rig(rig)
