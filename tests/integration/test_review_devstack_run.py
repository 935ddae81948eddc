"""Review of `make run` (`alpha dev`, engine/entrypoints/devstack.py) as a newcomer and as someone who leaves it
running: what it must refuse, what it must stop, and what its first screens must not promise.

Each test starts the real `alpha dev` (or the real CLI) in a scratch folder with its own database, data folder,
ports and .env; whatever it started is stopped by pid at the end."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.entrypoints import devstack
from tests.conftest import CONFIG
from tests.helpers import ROOT, alpha

PY = sys.executable
DEMO_CSV = str(ROOT / "data" / "demo_leads.csv")
START_TIMEOUT = 180.0
# what the stack decides for itself: the developer's environment must not leak in
DROP = ("EMERGENCY_STOP", "ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_USERS_FILE", "ALPHA_WEBHOOK_URL",
        "GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL", "DATABASE_URL", "SLACK_WEBHOOK_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_using(marker: str) -> list[int]:
    """Pids of running processes whose environment mentions ``marker`` (this test's scratch folder)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if marker.encode() in f.read() and _running(int(d)):
                    found.append(int(d))
        except OSError:
            continue
    return found


def wait_gone(marker: str, wait: float = 15.0) -> list[int]:
    deadline = time.monotonic() + wait
    while processes_using(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_using(marker)


def base_env(d: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update({"DATABASE_URL": f"sqlite:///{d / 'alpha.db'}", "ALPHA_DATA_DIR": str(d / "data"),
                "ALPHA_CONFIG_DIR": str(CONFIG), "ALPHA_ENV_FILE": str(d / "dot.env"), "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1", "ALPHA_UNSUBSCRIBE_SECRET": "test-unsubscribe-secret-0123456789"})
    env.update(extra)
    if not (d / "dot.env").exists():
        (d / "dot.env").write_text("")
    return env


class Dev:
    """`alpha dev` in a session of its own (as a terminal would run it), its output collected."""

    def __init__(self, d: Path, env: dict, *args: str):
        self.dir, self.env = d, env
        self.ports = [_free_port(), _free_port(), _free_port()]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [PY, "-m", "engine.entrypoints.cli", "dev", "--console-port", str(self.ports[0]), "--ghl-port",
             str(self.ports[1]), "--webhook-port", str(self.ports[2]), *args],
            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                time.sleep(0.3)
                pytest.fail(f"`alpha dev` exited with {self.proc.returncode} before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"`alpha dev` did not print {text!r} within {timeout:.0f} s:\n{self.output}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def pids(self) -> dict[str, int]:
        procs = re.search(r"^\s*Processes\s+(.+)$", self.output, re.M).group(1)  # type: ignore[union-attr]
        return {name: int(pid) for name, pid in (p.strip().rsplit(" ", 1) for p in procs.split(","))}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(30) is None:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def devs():
    started: list[Dev] = []
    yield started
    for d in started:
        d.close()
    for d in started:  # anything left running from this test's folder (a stopped step, an orphaned part)
        for pid in processes_using(str(d.dir)):
            os.kill(pid, signal.SIGKILL)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------------------------ a real database

def test_make_run_refuses_a_database_with_real_leads_named_only_in_dot_env(tmp_path, devs):
    """Observed: with DATABASE_URL in .env pointing at a database of real leads (a deployment's), `make run`
    started the whole demo stack over it: demo users with a printed password administering it and a worker that
    executes its approved sends into the local sandbox (marked sent, never reaching the person). Now it is refused
    before anything starts, naming the database and a real lead."""
    real = tmp_path / "real.db"
    env = base_env(tmp_path)
    env.pop("DATABASE_URL")
    (tmp_path / "dot.env").write_text(f"DATABASE_URL=sqlite:///{real}\n")
    csv = tmp_path / "real.csv"
    csv.write_text("email,company,title,employee_count,industry,country\n"
                   "jane@acme.io,Acme,VP Sales,120,B2B SaaS,US\n", encoding="utf-8")
    alpha(env, "init", check=True)
    alpha(env, "leads", "import", str(csv), check=True)
    dev = Dev(tmp_path, env)
    devs.append(dev)
    rc = dev.wait_exit(90)
    assert rc is not None, f"`alpha dev` ran on a database of real leads:\n{dev.output}"
    assert rc != 0
    assert "jane@acme.io" in dev.output and "nothing was started" in dev.output and str(real) in dev.output
    assert "Traceback" not in dev.output and "Demo password" not in dev.output
    assert "$ alpha" not in dev.output  # not even `alpha init` ran
    assert not (tmp_path / "data" / "logs").exists()
    assert not any(listening(p) for p in dev.ports)


def test_slack_from_the_environment_or_dot_env_is_never_used_by_the_stack(tmp_path):
    """Observed: SLACK_WEBHOOK_URL (environment or .env) reached every part, so the demo's hot-lead alerts and SLA
    escalations of its 425 approvals would post to a real Slack channel. Every part now sees it empty, and the
    engine there counts Slack as not configured."""
    hook = "https://hooks.slack.com/services/T000/B000/realchannel"
    (tmp_path / "dot.env").write_text(f"SLACK_WEBHOOK_URL={hook}\n")
    for base in ({"SLACK_WEBHOOK_URL": hook}, {}):
        env = devstack.child_env({**base_env(tmp_path), **base}, ghl_port=1, webhook_port=2, password="x" * 16)
        code = ("from engine.core.envfile import load_env_file; load_env_file(); import os; "
                "from engine.adapters.slack import SlackAlerter; "
                "print(repr(os.environ.get('SLACK_WEBHOOK_URL')), SlackAlerter.from_env(None, None)._url)")
        out = subprocess.run([PY, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["''", "None"], (base, out.stdout)


# ------------------------------------------------------------------------------------------ two at once

def test_a_second_make_run_on_the_same_data_folder_is_refused_and_the_first_stays_usable(tmp_path, devs):
    """Observed: a second `make run` on other ports (RUN_ARGS) and the same data folder re-keyed the demo users,
    so the password the first one printed stopped working. Now it is refused at once, naming the first; the first
    stack binds 127.0.0.1 only, its password works, and Ctrl-C stops all four parts (no process, no port left)."""
    from engine.adapters import users

    env = base_env(tmp_path)
    first = Dev(tmp_path, env)
    devs.append(first)
    first.wait_for(devstack.READY_MARK)
    password = re.search(r"^\s*Demo password\s+(\S+)", first.output, re.M).group(1)  # type: ignore[union-attr]
    pids = first.pids()

    # every listening socket of the four parts is on 127.0.0.1
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    for name, pid in pids.items():
        mine = [line.split()[3] for line in ss.splitlines() if f"pid={pid}," in line]
        assert name == "worker" or mine, (name, ss)
        assert all(addr.startswith("127.0.0.1:") for addr in mine), (name, mine)

    second = Dev(tmp_path, env)
    devs.append(second)
    rc = second.wait_exit(90)
    assert rc is not None, f"a second `alpha dev` started on the same data folder:\n{second.output}"
    assert rc == 2 and "already runs on the data folder" in second.output and "Traceback" not in second.output
    assert f"pid {first.proc.pid}" in second.output and str(first.ports[0]) in second.output
    assert "Demo password" not in second.output

    demo_file = tmp_path / "data" / "demo_users.yaml"
    for name in ("ae", "approver", "ops", "admin"):
        assert users.verify_login(name, password, demo_file), name
    assert first.proc.poll() is None

    os.killpg(first.proc.pid, signal.SIGINT)  # Ctrl-C in its terminal
    assert first.wait_exit(60) == 0, first.output
    assert "SIGINT: stopped console, worker, webhooks, ghl-sandbox" in first.output
    assert not [pid for pid in pids.values() if _running(pid)]
    assert not wait_gone(str(tmp_path))
    assert not any(listening(p) for p in first.ports)


# ------------------------------------------------------------------------------------------ stopped early

def test_sigterm_during_the_demo_stops_it_and_the_next_run_finishes_the_demo(tmp_path, devs):
    """Observed: SIGTERM (kill, a service manager, a closed session) while `alpha dev` prepared the demo killed
    `alpha dev` silently and left `alpha demo` running on as an orphan; a stop during the demo's shadow run left
    the demo leads with no shadow run, and every later `make run` said 'nothing loaded' and never made one (an
    empty Shadow review for good). Now the step is stopped with it, it says so, and the next run makes the
    missing shadow run."""
    env = base_env(tmp_path)
    dev = Dev(tmp_path, env)
    devs.append(dev)
    dev.wait_for("demo: imported", timeout=120)
    dev.proc.send_signal(signal.SIGTERM)  # to `alpha dev` only, as `kill PID` does
    rc = dev.wait_exit(30)
    assert rc is not None, dev.output
    assert "SIGTERM during `alpha demo`: stopped; nothing was started" in dev.output, dev.output
    assert not wait_gone(str(tmp_path), wait=10), "a preparation step runs on after `alpha dev` stopped"

    again = Dev(tmp_path, env)
    devs.append(again)
    again.wait_for(devstack.READY_MARK)
    assert "shadow run never finished" in again.output and "$ alpha shadow run --contacts 543" in again.output
    import sqlite3

    with sqlite3.connect(tmp_path / "alpha.db") as c:
        finished = c.execute("select count(*) from shadow_run where finished_at is not null").fetchone()[0]
        review = c.execute("select count(*) from review_item").fetchone()[0]
    assert finished == 1 and review == 50
    again.close()
    assert again.proc.returncode == 0
    assert not wait_gone(str(tmp_path))


# ------------------------------------------------------------------------------------------ what it promises

def test_after_the_assisted_demo_a_plain_run_does_not_promise_sends_its_configuration_holds(tmp_path, monkeypatch):
    """Observed: `make run` after `make run DEMO=assisted` keeps the database in assisted with 425 sends waiting,
    but runs with the default configuration (shadow_mode): the ready block still said 'approve one, the worker
    sends it' and the Welcome page 'the worker sends an approved email within seconds', while the gate holds every
    approved send. Both now say the approved send is held and how to have it sent; with the demo configuration
    they still promise the send."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from engine.adapters import users

    demo_cfg = devstack.demo_config(CONFIG, tmp_path / "demo-config")
    env = base_env(tmp_path)
    alpha({**env, "ALPHA_CONFIG_DIR": str(demo_cfg)}, "init", check=True)
    alpha({**env, "ALPHA_CONFIG_DIR": str(demo_cfg)}, "demo", "--file", DEMO_CSV, "--assisted", check=True)

    held = devstack.stack_facts(env)
    assert held["phase"] == "assisted" and held["pending"] > 0
    line = devstack._phase_line(held, assisted=False)
    assert "the worker sends it" not in line and "held" in line and "make run DEMO=assisted" in line
    sending = devstack.stack_facts({**env, "ALPHA_CONFIG_DIR": str(demo_cfg)})
    assert "the worker sends it" in devstack._phase_line(sending, assisted=True)

    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for k in ("DATABASE_URL", "ALPHA_DATA_DIR", "ALPHA_CONFIG_DIR", "ALPHA_ENV_FILE"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.setenv("ALPHA_DEMO", "1")
    monkeypatch.delenv("ALPHA_USERS_FILE", raising=False)
    users.demo_users("welcome-test-password-42")

    def welcome(config_dir: Path) -> str:
        monkeypatch.setenv("ALPHA_CONFIG_DIR", str(config_dir))
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "pages" / "welcome.py"), default_timeout=60)
        at.session_state["authentication_status"] = True
        at.session_state["username"] = "approver"
        at.session_state["name"] = "approver"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return "\n".join(str(e.value) for e in [*at.warning, *at.info, *at.markdown])

    try:
        page = welcome(CONFIG)
        assert "sends an approved email within seconds" not in page
        assert "held" in page and "make run DEMO=assisted" in page
        page = welcome(demo_cfg)
        assert "sends an approved email within seconds" in page and "held" not in page
    finally:
        st.cache_resource.clear()
