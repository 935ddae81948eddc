"""engine/queries/health.py: component health is measured from heartbeats and the database, never assumed, on both
backends.

Seen before: `status()["components"]` was hard-coded ok (database, config, executor) whatever ran or not."""
from __future__ import annotations

from datetime import timedelta

import pytest

from engine.queries.health import (RECEIVER, SCHEDULER, WORKER, Beater, beat, component_health, latest_receiver_url,
                           mark_stopped)
from engine.adapters.models import CheckRun
from sqlmodel import select

KEYS = {"database", "schema", "worker", "webhook_receiver", "scheduler"}


def check_shape(components: dict) -> None:
    assert KEYS <= set(components)
    for name, c in components.items():
        assert {"ok", "state", "detail", "seen_at"} <= set(c), name
        assert c["state"] in ("ok", "stale", "down", "not_configured", "sandbox", "unknown"), name
        assert c["ok"] is (c["state"] == "ok"), name
        assert c["detail"], name


def test_a_fresh_engine_reports_what_does_not_run(app_factory):
    app = app_factory()
    c = app.status()["components"]
    check_shape(c)
    assert c["database"]["ok"] and c["database"]["url"] and c["schema"]["ok"]
    assert c["worker"]["state"] == "down" and "no worker has run" in c["worker"]["detail"]
    assert "`alpha worker`" in c["worker"]["detail"]
    assert c["webhook_receiver"]["state"] == "down" and "alpha webhooks serve" in c["webhook_receiver"]["detail"]
    assert c["scheduler"] == {"ok": False, "state": "unknown", "seen_at": None,
                              "detail": c["scheduler"]["detail"]}
    assert c["scheduler"]["detail"].startswith("no daily run recorded")
    assert c["executor"]["state"] == "sandbox" and not c["executor"]["ok"]  # nothing reaches a real inbox


def test_worker_heartbeat_fresh_stale_stopped(app_factory):
    app = app_factory()
    now = app.clock()
    beat(app.store, WORKER, {"interval": 5.0}, now=now - timedelta(seconds=20))
    w = component_health(app)["worker"]
    assert w["state"] == "ok" and w["ok"] and "1 worker running" in w["detail"]
    assert w["seen_at"] is not None
    app.clock.advance(minutes=4)
    w = component_health(app)["worker"]
    assert w["state"] == "stale" and not w["ok"]
    assert w["detail"].startswith("no worker heartbeat for 4 min") and "`alpha worker`" in w["detail"]
    beat(app.store, WORKER, {"interval": 60.0}, now=app.clock() - timedelta(minutes=3))  # a slow interval
    assert component_health(app)["worker"]["state"] == "ok"
    mark_stopped(app.store, WORKER, now=app.clock())
    w = component_health(app)["worker"]
    assert w["state"] == "down" and "stopped" in w["detail"] and "start `alpha worker`" in w["detail"]


def test_receiver_heartbeat_carries_its_url(app_factory):
    app = app_factory()
    assert latest_receiver_url(app.store) is None
    beat(app.store, RECEIVER, {"url": "http://127.0.0.1:9911"}, now=app.clock() - timedelta(seconds=5))
    r = component_health(app)["webhook_receiver"]
    assert r["state"] == "ok" and "http://127.0.0.1:9911" in r["detail"]
    assert latest_receiver_url(app.store) == "http://127.0.0.1:9911"
    app.clock.advance(minutes=2)
    r = component_health(app)["webhook_receiver"]
    assert r["state"] == "down" and "http://127.0.0.1:9911" in r["detail"] and "2 min" in r["detail"]


def test_scheduler_from_the_daily_run_record_or_its_heartbeat(app_factory):
    app = app_factory()
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="daily", at=app.clock() - timedelta(hours=3), ok=True,
                       results=[{"day": "2026-11-24", "leads": 42, "by_status": {}}]))
    sch = component_health(app)["scheduler"]
    assert sch["state"] == "ok" and "3 h ago" in sch["detail"] and "42 leads" in sch["detail"]
    app.clock.advance(hours=24)  # 27 h since the last run
    sch = component_health(app)["scheduler"]
    assert sch["state"] == "stale" and not sch["ok"] and "alpha daily run" in sch["detail"]
    beat(app.store, SCHEDULER, {"leads": 7}, now=app.clock() - timedelta(minutes=1))
    sch = component_health(app)["scheduler"]
    assert sch["state"] == "ok" and "7 leads" in sch["detail"]


def test_uninitialised_database_is_reported_not_raised(app_factory):
    app = app_factory(init=False)
    c = component_health(app)
    check_shape(c)
    assert c["database"]["ok"] and c["schema"]["state"] == "down" and "alpha init" in c["schema"]["detail"]
    assert c["worker"]["state"] == "unknown" and "alpha init" in c["worker"]["detail"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database answer, not storage
def test_unreachable_database_is_down_with_the_error(app_factory, tmp_path):
    from engine.app import App
    from engine.adapters.db import Store

    good = app_factory()
    app = App(settings=good.settings, store=Store("postgresql+psycopg://nobody@127.0.0.1:1/none"),
              clock=good.clock)
    try:
        c = component_health(app)
    finally:
        app.store.dispose()
    check_shape(c)
    assert c["database"]["state"] == "down" and "cannot reach the database" in c["database"]["detail"]
    assert all(c[k]["state"] == "unknown" for k in ("schema", "worker", "webhook_receiver", "scheduler"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_beater_is_throttled_and_never_raises(app_factory):
    app = app_factory()
    t = [100.0]
    b = Beater(app.store, WORKER, every=5.0, info={"interval": 5.0}, monotonic=lambda: t[0])
    assert b() is True and b() is False  # once per interval, however often the loop asks
    t[0] += 5.1
    assert b() is True

    class Broken:
        def write_plain(self):
            raise RuntimeError("database gone")

    bad = Beater(Broken(), WORKER, every=5.0, monotonic=lambda: t[0])
    assert bad() is False and "database gone" in bad.error


def test_a_process_first_beat_forgets_processes_silent_for_a_week(app_factory):
    """Every worker restart is a new (host, pid) row: rows of processes silent for a week are deleted, so the
    table stays as small as the fleet."""
    from engine.adapters.models import Heartbeat

    app = app_factory()
    now = app.clock()
    with app.store.write_plain() as s:
        s.add(Heartbeat(component=WORKER, instance="old-host:1", started_at=now - timedelta(days=30),
                        beat_at=now - timedelta(days=8)))
        s.add(Heartbeat(component=WORKER, instance="recent-host:2", started_at=now - timedelta(days=2),
                        beat_at=now - timedelta(days=1)))
        s.add(Heartbeat(component=RECEIVER, instance="old-host:3", started_at=now - timedelta(days=30),
                        beat_at=now - timedelta(days=8)))
    beat(app.store, WORKER, {"interval": 5.0}, now=now)
    with app.store.read() as s:
        left = {(h.component, h.instance) for h in s.exec(select(Heartbeat)).all()}
    assert ("worker", "old-host:1") not in left
    assert {("worker", "recent-host:2"), ("webhook_receiver", "old-host:3")} <= left


def test_a_stale_webhook_address_in_the_environment_names_the_receivers_own(app_factory, monkeypatch):
    """`alpha up --webhook-port N` beside an old ALPHA_WEBHOOK_URL in .env: a console started on its own checked the
    old address and only said "not reachable". The failure now names the address the receiver's heartbeat reports."""
    import socket

    from engine.services.verify import FAIL, check_webhooks

    app = app_factory()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("ALPHA_WEBHOOK_URL", f"http://127.0.0.1:{dead}")
    beat(app.store, RECEIVER, {"url": "http://127.0.0.1:18911"}, now=app.clock())
    c = check_webhooks(app=app)
    assert c.status == FAIL and f"127.0.0.1:{dead}" in c.reason
    assert "heartbeat names http://127.0.0.1:18911" in c.reason
    assert "ALPHA_WEBHOOK_URL=http://127.0.0.1:18911" in c.reason
    monkeypatch.delenv("ALPHA_WEBHOOK_URL")  # without the env value the heartbeat's address is the one checked
    again = check_webhooks(app=app).reason
    assert "18911" in again and "heartbeat names" not in again
