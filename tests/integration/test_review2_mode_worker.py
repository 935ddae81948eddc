"""Second review of issue 13 item 5 with the real processes: `alpha worker` says in its heartbeat where it sends,
and `alpha status` run with OTHER credentials than the worker's shows the worker's mode and that they differ.

Seen: `alpha status` (and the console header) said SANDBOX from its own environment while the worker, started
with GHL credentials, would send through GHL."""
from __future__ import annotations

import json

from tests.helpers import alpha
from tests.integration.test_component_health import env, spawn, stop, wait_for  # noqa: F401 - the env fixture

REMOTE_GHL = "http://192.0.2.10:9"  # TEST-NET-1: looks like a real provider, never reached (nothing is queued)


def status(e: dict) -> dict:
    return json.loads(alpha(e, "status", "--json", check=True).stdout)


def test_status_shows_what_the_running_worker_sends_through(env):  # noqa: F811
    with_ghl = {**env, "GHL_API_KEY": "token-123456", "GHL_LOCATION_ID": "loc-1", "GHL_BASE_URL": REMOTE_GHL}
    st = status(env)
    assert st["mode"] == "SANDBOX" and st["sending"]["state"] == "not_running"
    line = next(x for x in alpha(env, "status", check=True).stdout.splitlines() if x.startswith("mode"))
    assert "SANDBOX  [NOT RUNNING]" in line and "no worker is running" in line, line

    w = spawn(with_ghl, "worker", "--interval", "0.5")
    try:
        st = wait_for(lambda: (s := status(env))["components"]["worker"]["ok"] and s, "the worker's heartbeat")
        # the console's environment has no GHL credentials; the worker's has
        assert st["mode"] == "LIVE" and st["mode_here"] == "SANDBOX", st["sending"]
        assert st["sending"]["state"] == "differs"
        assert st["sending"]["workers"][0]["ghl_url"] == REMOTE_GHL
        assert st["components"]["executor"]["state"] == "warn"
        line = next(x for x in alpha(env, "status", check=True).stdout.splitlines() if x.startswith("mode"))
        assert "LIVE  [DIFFERS]" in line and REMOTE_GHL in line and "configured for SANDBOX" in line, line
        # read with the worker's own credentials: they agree
        st = status(with_ghl)
        assert st["mode"] == "LIVE" and st["sending"]["state"] == "ok"
    finally:
        out = stop(w)
    assert "worker stopped" in out, out
    st = status(env)
    assert st["mode"] == "SANDBOX" and st["sending"]["state"] == "not_running"
