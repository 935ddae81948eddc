"""Second review of issue 13 item 5, "nothing shows green without evidence": LIVE/SANDBOX in the header, `alpha
status` and ``App.status()`` came from the environment of the process that READ it (the console), while the worker
is the process that sends. A console without GHL credentials said SANDBOX while its worker sent through the real
GHL (and the reverse). Each worker now reports where it sends in its heartbeat; the status shows what the running
workers report, says so when they disagree (with each other or with the reader), and with no worker running gives
the configured mode marked as not running."""
from __future__ import annotations

from datetime import timedelta

from engine.adapters.models import Heartbeat
from engine.queries.health import WORKER, component_health
from tests.conftest import LIVE, deep_merge

REAL = {"mode": "LIVE", "executor": "ghl", "ghl_url": "https://services.leadconnectorhq.com",
        "label": "LIVE (ghl at https://services.leadconnectorhq.com)"}
LOCAL = {"mode": "SANDBOX", "executor": "sandbox", "ghl_url": None,
         "label": "SANDBOX (the local sandbox executor: no GHL credentials)"}


def worker(app, instance: str, sending: dict | None, ago: float = 2.0) -> None:
    """A running worker's heartbeat as `alpha worker` writes it (info: interval, pid, where it sends)."""
    at = app.clock() - timedelta(seconds=ago)
    info = {"interval": 5.0, "pid": 1}
    if sending is not None:
        info["sending"] = sending
    with app.store.write_plain() as s:
        s.add(Heartbeat(component=WORKER, instance=instance, started_at=at, beat_at=at, info=info))


def test_a_live_worker_behind_a_sandbox_console_is_shown_live_and_differing(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}))
    assert app.mode == "SANDBOX" and app.executor_mode() == LOCAL  # this process has no GHL credentials
    worker(app, "host-a:11", REAL)
    st = app.status()
    assert st["phase"] == "autonomous"
    assert st["mode"] == "LIVE", st["sending"]  # was "SANDBOX": the console's own environment
    assert st["mode_here"] == "SANDBOX"
    assert st["sending"]["state"] == "differs" and "host-a:11" in st["sending"]["detail"]
    assert "configured for SANDBOX" in st["sending"]["detail"]
    assert st["live_sending"] is True  # a real inbox can be reached: the worker sends through the real GHL
    ex = st["components"]["executor"]
    assert ex["state"] == "warn" and not ex["ok"] and ex["mode"] == "LIVE"


def test_a_sandbox_worker_behind_a_live_console_is_not_live(app_factory):
    class RealGHL:  # as the engine sees a GHL executor with real credentials; never sends
        name, api, live = "ghl", "ghl", True
        client = type("C", (), {"base_url": "https://user:pw@services.leadconnectorhq.com/"})()

        def execute(self, item):  # pragma: no cover
            raise AssertionError

    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                      executors={"email": RealGHL(), "crm": RealGHL()})
    assert app.executor_mode() == REAL  # shown and compared without credentials
    worker(app, "host-b:12", LOCAL)
    st = app.status()
    assert st["mode"] == "SANDBOX" and st["mode_here"] == "LIVE" and st["sending"]["state"] == "differs"
    assert st["live_sending"] is False  # the one running worker records sends locally
    assert st["components"]["executor"]["state"] == "warn"


def test_workers_that_disagree_are_mixed(app_factory):
    app = app_factory()
    worker(app, "host-a:11", REAL)
    worker(app, "host-b:12", LOCAL)
    s = app.status()["sending"]
    assert s["state"] == "differs" and s["mode"] == "MIXED" and "the workers differ" in s["label"]
    assert "host-a:11" in s["detail"] and "host-b:12" in s["detail"]
    assert app.status()["mode"] == "MIXED"


def test_workers_that_agree_with_the_console_are_ok(app_factory):
    app = app_factory()
    worker(app, "host-a:11", LOCAL)
    worker(app, "host-b:12", LOCAL)
    st = app.status()
    assert st["mode"] == "SANDBOX" and st["sending"]["state"] == "ok" and "2 running workers" in \
        st["sending"]["detail"]
    assert st["components"]["executor"]["state"] == "sandbox"


def test_without_a_running_worker_the_mode_is_the_configured_one_marked_not_running(app_factory):
    app = app_factory()
    st = app.status()
    assert st["mode"] == "SANDBOX" and st["sending"]["state"] == "not_running"
    assert st["sending"]["label"] == "SANDBOX, not running" and "no worker is running" in st["sending"]["detail"]
    worker(app, "host-a:11", REAL, ago=3600)  # a worker that sent LIVE an hour ago, stuck or gone since
    st = app.status()
    assert st["mode"] == "SANDBOX" and st["sending"]["state"] == "not_running" and st["sending"]["workers"] == []


def test_a_worker_that_does_not_report_where_it_sends_is_not_taken_as_agreeing(app_factory):
    app = app_factory()
    worker(app, "host-old:9", None)  # an older `alpha worker`
    s = app.status()["sending"]
    assert s["state"] == "differs" and s["mode"] == "UNKNOWN" and "does not report" in s["detail"]
    assert component_health(app)["executor"]["state"] == "warn"
