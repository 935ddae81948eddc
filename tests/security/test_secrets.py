"""Secrets never leak: with distinctive test keys for every integration, the CLI is driven through successes and
failures (GHL 5xx and 401, Slack down, an LLM provider failing, a crash in a command), and then every byte the
system wrote - stdout, stderr, every row of every table, the files in its data folder - is scanned for the keys.
"""
from __future__ import annotations

import json
import socket

import pytest
from sqlalchemy import create_engine, inspect, text

from engine.adapters.ghl_sandbox import SandboxControl, start_sandbox
from tests.conftest import FORCE_INIT, LIVE, deep_merge
from tests.fake_servers import AnthropicFake, Reply, SlackWebhookFake
from tests.helpers import alpha, alpha_env, email

GHL_KEY = "pit-SECRET-ghl-7f3a9c1e5b2d4f6a8c0e"
SLACK_TOKEN = "SECRETslackpath9b8c7d6e5f4a3b2c1d0e"
ANTHROPIC_KEY = "sk-ant-SECRET-0a1b2c3d4e5f6a7b8c9d"
UNSUB_SECRET = "unsub-SECRET-5e6f7a8b9c0d1e2f3a4b"
COOKIE_KEY = "cookie-SECRET-1234567890abcdef1234567890abcdef"
RB2B_SECRET = "rb2b-SECRET-a1b2c3d4e5f6a7b8"
SECRETS = (GHL_KEY, SLACK_TOKEN, ANTHROPIC_KEY, UNSUB_SECRET, COOKIE_KEY, RB2B_SECRET)
AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})


def leaks(blob: str) -> list[str]:
    return [s for s in SECRETS if s in blob]


def dump_database(url: str) -> str:
    eng = create_engine(url)
    out = []
    try:
        with eng.connect() as c:
            for table in inspect(eng).get_table_names():
                for row in c.execute(text(f'SELECT * FROM "{table}"')):
                    out.append(f"{table}: {tuple(row)!r}")
    finally:
        eng.dispose()
    return "\n".join(out)


@pytest.fixture
def world(db_url, config_factory, tmp_path):
    server, ghl_url = start_sandbox(token=GHL_KEY)
    slack = SlackWebhookFake(token=SLACK_TOKEN).start()
    slack.always(Reply(500, "internal_error"))  # Slack is down: every alert fails and is logged
    llm = AnthropicFake(api_key=ANTHROPIC_KEY).start()
    llm.always(Reply(500, {"type": "error", "error": {"type": "api_error", "message": "overloaded"}}))
    cfg = config_factory(production=AUTONOMOUS, warmup={"enabled": False})
    env = alpha_env(db_url, cfg, tmp_path, GHL_API_KEY=GHL_KEY, GHL_LOCATION_ID="loc-sandbox",
                    GHL_BASE_URL=ghl_url, SLACK_WEBHOOK_URL=slack.url, ANTHROPIC_API_KEY=ANTHROPIC_KEY,
                    ANTHROPIC_BASE_URL=llm.base_url, ALPHA_UNSUBSCRIBE_SECRET=UNSUB_SECRET,
                    ALPHA_COOKIE_KEY=COOKIE_KEY, RB2B_WEBHOOK_SECRET=RB2B_SECRET)
    ctl = SandboxControl(ghl_url)
    yield env, ctl, tmp_path, db_url
    ctl.close()
    slack.stop()
    llm.stop()
    server.shutdown()


def test_no_secret_in_output_database_or_files(world):
    env, ctl, tmp, db_url = world
    out = []

    def run(*args, **kw):
        p = alpha(env, *args, **kw)
        out.append(f"$ alpha {' '.join(args)}\n{p.stdout}\n{p.stderr}")
        assert "Traceback" not in p.stderr, p.stderr
        return p

    run("init", *FORCE_INIT, check=True)
    run("verify", "--json")  # GHL passes, Slack fails, the LLM fails: each reported
    run("alert", "--test")  # Slack 500
    ctl.fault("500", count=2)  # two sends answered 500: in doubt, reconciled, never retried
    lines = [json.dumps(email(f"s{i}", to=f"buyer{i}@acme{i}.io")) for i in range(4)]
    run("submit", "-", input="\n".join(lines) + "\n")
    run("outbox", "reconcile")
    bad = {**env, "GHL_API_KEY": GHL_KEY + "-wrong"}  # 401 from GHL: the error names the problem, not the key
    p = alpha(bad, "submit", "-", input=json.dumps(email("s9", to="late@acme9.io")) + "\n")
    out.append(p.stdout + p.stderr)
    run("audit", "tail", "-n", "200")
    run("status", "--json")
    run("readiness", "--json")
    # an internal error's one-line message is redacted too
    crash = alpha({**env, "DATABASE_URL": f"sqlite:///{tmp}/nope/{GHL_KEY}.db"}, "status")
    out.append(crash.stdout + crash.stderr)
    assert "Traceback" not in crash.stderr

    blob = "\n".join(out)
    assert not leaks(blob), f"secrets printed by the CLI: {leaks(blob)}"
    db = dump_database(db_url)
    assert "buyer0@acme0.io" in db  # the dump really holds the data
    assert not leaks(db), f"secrets stored in the database: {leaks(db)}"
    files = "\n".join(p.read_text(errors="replace") for p in (tmp / "data").rglob("*")
                      if p.is_file() and p.name != "cookie.key")
    assert not leaks(files), f"secrets written to the data folder: {leaks(files)}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a log property: one backend is enough
def test_webhook_server_logs_carry_no_secret(world):
    """`alpha webhooks serve` answering forged, replayed and valid RB2B calls: its log never holds the secret."""
    import subprocess
    import sys
    import time

    import httpx

    from tests.helpers import ROOT

    env, _, tmp, _ = world
    alpha(env, "init", *FORCE_INIT, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "webhooks", "serve", "--port", str(port)],
                            env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        visitor = {"Business Email": "cara@fitco.io", "Title": "VP Sales", "Company Name": "Fitco"}
        assert httpx.post(f"{base}/webhooks/rb2b?secret=wrong-{RB2B_SECRET}", json=visitor).status_code == 401
        assert httpx.post(f"{base}/webhooks/rb2b?secret={RB2B_SECRET}", json=visitor).status_code == 200
        assert httpx.post(f"{base}/webhooks/ghl", content=b'{"type":"InboundMessage"}',
                          headers={"x-ghl-signature": "Zm9yZ2Vk", "content-type": "application/json"}
                          ).status_code == 401
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=10)
    assert "POST /webhooks/rb2b?[REDACTED]" in log  # the access lines are really there, credentials removed
    assert not leaks(log), f"secrets in the webhook server's log: {leaks(log)}"
