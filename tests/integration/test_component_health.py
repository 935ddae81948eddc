"""Component health from the real processes: `alpha worker`, `alpha webhooks serve` and `alpha daily run` leave
heartbeats; `alpha status` shows what runs and what does not; `alpha verify` finds a receiver on another port.

Seen before: component health was hard-coded ok, and `alpha up` on other ports left the checks looking at the
default webhook address."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import ROOT, alpha, alpha_env

UNSET = {"GHL_API_KEY": "", "GHL_LOCATION_ID": "", "GHL_BASE_URL": "", "SLACK_WEBHOOK_URL": "",
         "ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "", "ALPHA_WEBHOOK_URL": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", *args], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(p: subprocess.Popen) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.stdout.read() if p.stdout else ""


def components(env: dict) -> dict:
    return json.loads(alpha(env, "status", "--json", check=True).stdout)["components"]


def wait_for(pred, what: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(db_url, config_factory, tmp_path):
    e = alpha_env(db_url, config_factory(), tmp_path, **UNSET)
    alpha(e, "init", check=True)
    return e


def test_status_shows_measured_components_of_the_real_processes(env):
    c = components(env)
    assert c["database"]["ok"] and c["schema"]["ok"]
    assert c["worker"]["state"] == "down" and c["webhook_receiver"]["state"] == "down"
    assert c["scheduler"]["state"] == "unknown" and "no daily run recorded" in c["scheduler"]["detail"]
    text = alpha(env, "status", check=True).stdout
    assert "components" in text
    worker_line = next(x for x in text.splitlines() if x.strip().startswith("worker"))
    assert "DOWN" in worker_line and "alpha worker" in worker_line

    port = free_port()
    receiver = spawn(env, "webhooks", "serve", "--port", str(port))
    worker = spawn(env, "worker", "--interval", "0.5")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: components(env)["webhook_receiver"]["ok"], "the receiver's heartbeat")
        wait_for(lambda: components(env)["worker"]["ok"], "the worker's heartbeat")
        c = components(env)
        assert url in c["webhook_receiver"]["detail"] and c["worker"]["seen_at"]
        assert httpx.get(f"{url}/healthz", timeout=5).json()["ok"] is True
        # `alpha verify` with no --webhook-url and no ALPHA_WEBHOOK_URL checks the receiver that runs
        report = json.loads(alpha(env, "verify", "--no-send", "--json").stdout)
        hook = next(x for x in report["checks"] if x["name"] == "webhooks")
        assert hook["status"] == "pass" and url in hook["reason"] and "heartbeat" in hook["reason"], hook
        assert report["webhook_url"] == {"url": url, "source": "the receiver's heartbeat"}
        assert alpha(env, "verify", "--no-send", "--sandbox").returncode == 0
    finally:
        out_w = stop(worker)
        out_r = stop(receiver)
    assert "worker stopped" in out_w, out_w
    c = components(env)
    assert c["worker"]["state"] == "down" and "stopped" in c["worker"]["detail"], c["worker"]
    assert c["webhook_receiver"]["state"] == "down" and url in c["webhook_receiver"]["detail"], out_r

    alpha(env, "daily", "run", check=True)
    sch = components(env)["scheduler"]
    assert sch["state"] == "ok" and "last daily run" in sch["detail"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a port clash, not storage
def test_a_receiver_that_cannot_bind_leaves_no_heartbeat(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = spawn(env, "webhooks", "serve", "--port", str(port))
        try:
            p.wait(30)
        finally:
            out = stop(p)
    assert p.returncode != 0, out
    assert components(env)["webhook_receiver"]["state"] == "down"
    assert "no webhook receiver has run" in components(env)["webhook_receiver"]["detail"]
