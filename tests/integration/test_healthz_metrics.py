"""The webhook receiver's /healthz and /metrics over real loopback HTTP, on SQLite and PostgreSQL, and the real
`alpha webhooks serve` writing structured (JSON) logs.

Seen before (issue 14): /healthz answered {"ok": true} whatever the state of the database (a receiver on an
uninitialised or unreachable database looked healthy to its supervisor), there was no /metrics, and the receiver
logged through uvicorn's own plain-text format."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest

from engine.queries.health import WORKER, beat
from engine.entrypoints.webhooks import create_app
from tests.conftest import WORK_TIME
from tests.helpers import ROOT, alpha, alpha_env
from tests.integration.test_webhooks import ServerThread
from tests.unit.test_metrics import parse_exposition, value

TOKEN = "metrics-token-for-the-test-0123456789"


@pytest.fixture
def serve():
    servers = []

    def start(engine_app) -> httpx.Client:
        srv = ServerThread(create_app(engine_app, alert=lambda a: None))
        servers.append(srv)
        return httpx.Client(base_url=srv.url, timeout=15)

    yield start
    for s in servers:
        s.stop()


def test_healthz_is_200_on_a_migrated_database_with_a_fresh_worker(app_factory, serve):
    app = app_factory()
    beat(app.store, WORKER, {"interval": 5}, now=WORK_TIME - timedelta(seconds=1))
    r = serve(app).get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["status"] == "ok" and body["workers"] == 1
    c = body["components"]
    assert c["database"]["ok"] and c["schema"]["ok"] and c["worker"]["ok"]
    assert c["worker"]["state"] == "ok" and "1 worker running" in c["worker"]["detail"]
    assert {"webhook_receiver", "scheduler"} <= set(c)


def test_healthz_reports_a_missing_worker_without_failing(app_factory, serve):
    r = serve(app_factory()).get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["workers"] == 0
    assert body["components"]["worker"]["state"] == "down"
    assert "alpha worker" in body["components"]["worker"]["detail"]


def test_healthz_is_503_on_an_uninitialised_database(app_factory, serve):
    r = serve(app_factory(init=False)).get("/healthz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ok"] is False and body["status"] == "unavailable"
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["schema"]["state"] == "down"
    assert "alpha init" in body["components"]["schema"]["detail"]


def test_healthz_is_503_on_an_unreachable_database(settings, serve):
    from engine.app import App
    from engine.core.clock import FixedClock
    from engine.adapters.db import Store

    app = App(settings=settings, store=Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=3"),
              clock=FixedClock(WORK_TIME))
    r = serve(app).get("/healthz")
    assert r.status_code == 503
    body = r.json()
    assert body["ok"] is False and body["components"]["database"]["state"] == "down"
    assert "cannot reach the database" in body["components"]["database"]["detail"]


def test_metrics_are_open_without_a_token(app_factory, serve, monkeypatch):
    monkeypatch.delenv("ALPHA_METRICS_TOKEN", raising=False)
    r = serve(app_factory()).get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = parse_exposition(r.text)
    assert value(fams, "alpha_up") == 1 and "alpha_outbox_items" in fams


def test_metrics_need_the_token_when_it_is_set(app_factory, serve, monkeypatch):
    monkeypatch.setenv("ALPHA_METRICS_TOKEN", TOKEN)
    client = serve(app_factory())
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"},
                    {"authorization": f"Bearer {TOKEN}x"}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in r.text and "alpha_up" not in r.text
    r = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert value(parse_exposition(r.text), "alpha_up") == 1
    assert client.get("/healthz").status_code == 200  # health stays open for supervisors


def test_the_real_receiver_logs_json_lines_and_serves_both(db_url, config_factory, tmp_path):
    env = alpha_env(db_url, config_factory(), tmp_path, ALPHA_LOG_FORMAT="json", ALPHA_LOG_LEVEL="INFO",
                    ALPHA_METRICS_TOKEN=TOKEN)
    alpha(env, "init", check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "webhooks", "serve", "--port", str(port)],
                            env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, r = time.time() + 30, None
        while time.time() < deadline:
            try:
                r = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert r is not None and r.status_code == 200 and r.json()["ok"] is True
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        m = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert m.status_code == 200 and value(parse_exposition(m.text), "alpha_up") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=5)
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines, out
    records = []
    for line in lines:
        rec = json.loads(line)  # every line on standard error is one JSON object
        assert {"time", "level", "logger", "message"} <= set(rec), rec
        assert rec["time"].endswith("Z")
        records.append(rec)
    assert any(r["logger"].startswith("uvicorn") and "Uvicorn running" in r["message"] for r in records), lines
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("/healthz" in r["message"] and r["level"] == "INFO" for r in access), lines
    assert TOKEN not in err and TOKEN not in out
