"""Review of issue 13 item 5: component health is only ok on evidence. A heartbeat dated in the future (a host whose
clock runs ahead, or a row written by hand) is no evidence that a process runs now.

Seen in review: a worker whose host clock ran an hour ahead and that died right after its last beat stayed
"1 worker running" for the whole hour (likewise the webhook receiver and the scheduler's last daily run), because
a negative age passed every "is it recent" test."""
from __future__ import annotations

from datetime import timedelta

from engine.adapters.models import CheckRun
from engine.queries.health import RECEIVER, SCHEDULER, WORKER, beat, component_health


def test_a_worker_heartbeat_from_the_future_is_not_a_running_worker(app_factory):
    app = app_factory()
    beat(app.store, WORKER, {"interval": 5.0}, now=app.clock() + timedelta(hours=1))
    w = component_health(app)["worker"]
    assert w["ok"] is False and w["state"] != "ok", w
    assert "future" in w["detail"] and "clock" in w["detail"], w


def test_a_receiver_heartbeat_from_the_future_is_not_a_running_receiver(app_factory):
    app = app_factory()
    beat(app.store, RECEIVER, {"url": "http://127.0.0.1:8787"}, now=app.clock() + timedelta(hours=1))
    r = component_health(app)["webhook_receiver"]
    assert r["ok"] is False and "future" in r["detail"], r


def test_a_daily_run_heartbeat_dated_in_the_future_is_not_a_recent_daily_run(app_factory):
    app = app_factory()
    beat(app.store, SCHEDULER, {"leads": 3}, now=app.clock() + timedelta(days=2))
    sch = component_health(app)["scheduler"]
    assert sch["ok"] is False and "future" in sch["detail"], sch


def test_a_daily_run_record_dated_in_the_future_is_not_a_recent_daily_run(app_factory):
    app = app_factory()
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="daily", at=app.clock() + timedelta(days=2), ok=True, results=[{"leads": 3}]))
    sch = component_health(app)["scheduler"]
    assert sch["ok"] is False and "future" in sch["detail"], sch


def test_a_small_clock_difference_still_counts(app_factory):
    """Hosts a few seconds apart are normal: a beat 5 s ahead is a running worker."""
    app = app_factory()
    beat(app.store, WORKER, {"interval": 5.0}, now=app.clock() + timedelta(seconds=5))
    assert component_health(app)["worker"]["state"] == "ok"


def test_a_live_worker_beside_a_future_dated_row_is_still_seen(app_factory):
    """One host's wrong clock does not hide a worker that beats correctly."""
    from engine.adapters.models import Heartbeat

    app = app_factory()
    now = app.clock()
    with app.store.write_plain() as s:
        s.add(Heartbeat(component=WORKER, instance="skewed:1", started_at=now, beat_at=now + timedelta(hours=1),
                        info={"interval": 5.0}))
    beat(app.store, WORKER, {"interval": 5.0}, now=now - timedelta(seconds=3))
    w = component_health(app)["worker"]
    assert w["state"] == "ok" and w["workers"] == 1, w
