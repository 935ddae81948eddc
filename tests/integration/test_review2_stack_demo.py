"""Second review of `alpha demo` run on its own (engine/entrypoints/cli/pipeline.py): a demo stopped during its
shadow run is finished by the next `alpha demo`, as `make run` does, without loading or making anything twice."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CONFIG
from tests.helpers import ROOT, alpha

DEMO_CSV = str(ROOT / "data" / "demo_leads.csv")


def _env(d: Path) -> dict:
    drop = ("EMERGENCY_STOP", "DATABASE_URL", "GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL", "ALPHA_DEMO")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"DATABASE_URL": f"sqlite:///{d / 'alpha.db'}", "ALPHA_DATA_DIR": str(d / "data"),
                "ALPHA_CONFIG_DIR": str(CONFIG), "ALPHA_ENV_FILE": str(d / "dot.env"), "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1", "ALPHA_UNSUBSCRIBE_SECRET": "test-unsubscribe-secret-0123456789"})
    (d / "dot.env").write_text("")
    return env


def _counts(db: Path) -> dict:
    with sqlite3.connect(db) as c:
        one = lambda q: c.execute(q).fetchone()[0]  # noqa: E731
        return {
            "leads": one("select count(*) from lead"),
            "runs": one("select count(*) from shadow_run"),
            "finished": one("select count(*) from shadow_run where finished_at is not null"),
            "drafts": one("select count(*) from draft"),
            "draft_keys": one("select count(*) from (select distinct lead_id, sequence, step from draft)"),
            "outbox": one("select count(*) from outbox"),
            "envelopes": one("select count(*) from envelope"),
            "review_sets": one("select count(distinct set_id) from review_item"),
            "review_items": one("select count(*) from review_item"),
        }


def test_alpha_demo_alone_finishes_a_shadow_run_that_was_stopped_and_duplicates_nothing(tmp_path):
    """Observed: `alpha demo` stopped (Ctrl-C, SIGTERM) during its shadow run left the demo leads and no finished
    run; every later `alpha demo` said 'nothing loaded' and never made one, so Shadow review stayed empty unless
    `make run` was used. Now `alpha demo` makes the missing shadow run once, and a further `alpha demo` adds
    nothing."""
    env = _env(tmp_path)
    alpha(env, "init", check=True)
    proc = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "demo", "--file", DEMO_CSV], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if "demo: imported" in line:
            time.sleep(0.5)  # into the shadow run
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(seen)
    proc.wait(30)
    before = _counts(tmp_path / "alpha.db")
    assert before["leads"] > 500 and before["finished"] == 0, ("the demo was not stopped in its shadow run", before)

    first = alpha(env, "demo", "--file", DEMO_CSV, check=True)
    after = _counts(tmp_path / "alpha.db")
    assert "shadow run never finished" in first.stdout, first.stdout
    assert after["finished"] == 1, (first.stdout, after)
    assert after["leads"] == before["leads"]  # nothing loaded again
    assert after["drafts"] == after["draft_keys"]  # one draft per lead and step, none twice
    assert after["review_sets"] == 1 and after["review_items"] == 50

    again = alpha(env, "demo", "--file", DEMO_CSV, check=True)
    assert "shadow run never finished" not in again.stdout and "set 1 exists" in again.stdout, again.stdout
    assert _counts(tmp_path / "alpha.db") == after  # a further `alpha demo` makes nothing
