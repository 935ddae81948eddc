"""Second review of `alpha up` (engine/entrypoints/cli/serve.py): the address every part it starts is given for the
webhook receiver is the receiver it starts, whatever an earlier ALPHA_WEBHOOK_URL in .env or the environment says.

`alpha up` is run in this process (CliRunner) with the receiver's serve() and the sandbox replaced by recorders,
so nothing listens; the ports are checked free first (18500-18999)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import CONFIG
from tests.helpers import ROOT

STALE = "http://127.0.0.1:8787"  # an earlier run's receiver, kept in .env


def _free_pair() -> tuple[int, int]:
    found = []
    for port in range(18600, 18700):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                continue
        found.append(port)
        if len(found) == 2:
            return found[0], found[1]
    pytest.fail("no two free ports in 18600-18699")


@pytest.fixture
def up_env(tmp_path, monkeypatch):
    """An initialised database; .env holds a stale ALPHA_WEBHOOK_URL; os.environ restored afterwards (`alpha up`
    writes into it)."""
    saved = dict(os.environ)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'alpha.db'}")
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(CONFIG))
    for k in ("ALPHA_WEBHOOK_URL", "GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    subprocess.run([sys.executable, "-m", "engine.entrypoints.cli", "init"],
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, check=True, capture_output=True,
                   timeout=120)
    (tmp_path / "test.env").write_text(f"ALPHA_WEBHOOK_URL={STALE}\n")  # ALPHA_ENV_FILE (tests/conftest.py)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def _run_up(monkeypatch, *args: str) -> tuple[object, dict]:
    import engine.adapters.ghl_sandbox as sandbox
    import engine.entrypoints.webhooks as webhooks
    from engine.entrypoints.cli import cli

    seen: dict = {}

    def serve(host, port, engine_app=None):  # what the receiver (and anything else in this process) is told
        from engine.services.verify import resolve_webhook_url

        seen.update(host=host, port=port, env=os.environ.get("ALPHA_WEBHOOK_URL"),
                    checked=resolve_webhook_url(None), ghl=os.environ.get("GHL_BASE_URL"))

    monkeypatch.setattr(webhooks, "serve", serve)
    monkeypatch.setattr(sandbox, "start_sandbox", lambda host, port: (None, f"http://{host}:{port}"))
    result = CliRunner().invoke(cli, ["up", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result, seen


def test_up_on_other_ports_replaces_a_stale_webhook_address_from_dot_env(up_env, monkeypatch):
    """Observed: `alpha up --webhook-port N` kept ALPHA_WEBHOOK_URL from .env (setdefault), so every part of that
    stack, and `alpha verify` run in it, checked the old receiver at 8787 while the new one listened on N."""
    ghl, hooks = _free_pair()
    result, seen = _run_up(monkeypatch, "--ghl-port", str(ghl), "--webhook-port", str(hooks))
    assert seen["port"] == hooks
    assert seen["env"] == f"http://127.0.0.1:{hooks}", result.output
    assert seen["checked"] == (f"http://127.0.0.1:{hooks}", "ALPHA_WEBHOOK_URL")
    assert seen["ghl"] == f"http://127.0.0.1:{ghl}"
    assert STALE in result.output and "is not the receiver started here" in result.output


def test_up_on_every_address_gives_a_reachable_receiver_address(up_env, monkeypatch):
    """`alpha up --host 0.0.0.0`: the parts are told http://127.0.0.1:N (where a local client reaches the
    receiver), never http://0.0.0.0:N."""
    ghl, hooks = _free_pair()
    result, seen = _run_up(monkeypatch, "--host", "0.0.0.0", "--ghl-port", str(ghl), "--webhook-port", str(hooks))
    assert seen["host"] == "0.0.0.0"
    assert seen["env"] == f"http://127.0.0.1:{hooks}", result.output
    assert f"webhook receiver on http://127.0.0.1:{hooks}" in result.output
