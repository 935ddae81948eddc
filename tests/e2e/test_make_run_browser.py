"""`make run` in a real browser: the stack `alpha dev` starts (what the Makefile's `run` target calls) brings up a
worker that executes an approved item, and stops everything when a part fails.

Observed before: `make run` started no worker (nothing approved was ever executed), the demo made no blind-review
set and stayed in shadow (empty approval queue). Each test starts the stack the way `make run` does, on free ports,
with its own database, data dir, config copy and an empty .env (the developer's data is untouched), waits for the
printed ready block and logs in with the printed demo password. The approver approves the item in focus on the
Approvals page; the worker must then send it to the GHL sandbox within 30 s. Screenshots: welcome.png,
make-run-approvals.png, make-run-approved.png, make-run-blind-review.png.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.entrypoints.devstack import READY_MARK
from tests.conftest import write_config
from tests.e2e.conftest import ROOT, TIMEOUT_MS, _bin, _free_port, _require_browser, open_page, screenshot, settle

pytestmark = pytest.mark.browser

START_TIMEOUT = 180.0  # init + demo (+ the assisted step and a daily run) + four parts answering, on 2 cores
STOP_TIMEOUT = 30.0
# what the stack decides for itself: the developer's environment must not leak in
DROP = ("EMERGENCY_STOP", "ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_USERS_FILE", "ALPHA_WEBHOOK_URL",
        "GHL_API_KEY", "GHL_LOCATION_ID", "GHL_BASE_URL", "DATABASE_URL")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def gone(pids, wait: float = 10.0) -> list[int]:
    """The pids still running after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _running(p)]


class Stack:
    """`alpha dev` in a subprocess (a session of its own), its output collected line by line."""

    def __init__(self, d: Path, assisted: bool):
        self.dir = d
        env = {k: v for k, v in os.environ.items() if k not in DROP}
        (d / "empty.env").write_text("")
        env.update({"DATABASE_URL": f"sqlite:///{d / 'alpha.db'}", "ALPHA_DATA_DIR": str(d / "data"),
                    "ALPHA_CONFIG_DIR": str(write_config(d / "config")), "ALPHA_ENV_FILE": str(d / "empty.env"),
                    "PYTHONUNBUFFERED": "1"})
        self.env = env
        self.ports = SimpleNamespace(console=_free_port(), ghl=_free_port(), webhook=_free_port())
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [_bin("alpha"), "dev", "--console-port", str(self.ports.console), "--ghl-port", str(self.ports.ghl),
             "--webhook-port", str(self.ports.webhook), *(["--assisted"] if assisted else [])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.pids: dict[str, int] = {}

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not any(READY_MARK in line for line in self.lines):
            if self.proc.poll() is not None:
                time.sleep(0.2)
                pytest.fail(f"`alpha dev` exited with {self.proc.returncode} before it was ready:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"`alpha dev` did not print its ready block within {START_TIMEOUT:.0f} s:\n{self.output}")
            time.sleep(0.2)
        self.password = re.search(r"^\s*Demo password\s+(\S+)", self.output, re.M).group(1)
        procs = re.search(r"^\s*Processes\s+(.+)$", self.output, re.M).group(1)
        self.pids = {name: int(pid) for name, pid in (p.strip().rsplit(" ", 1) for p in procs.split(","))}
        assert set(self.pids) == {"console", "ghl-sandbox", "webhooks", "worker"}, procs
        self.url = f"http://127.0.0.1:{self.ports.console}"
        self.sandbox = f"http://127.0.0.1:{self.ports.ghl}"
        assert self.url in self.output and self.sandbox in self.output

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`alpha ...` against the stack's database, as its parts see it (the demo users, the demo config)."""
        env = {**self.env, "ALPHA_DEMO": "1"}
        demo_config = self.dir / "data" / "demo-config"
        if demo_config.is_dir():
            env["ALPHA_CONFIG_DIR"] = str(demo_config)
        return subprocess.run([_bin("alpha"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    def cli_json(self, *args: str):
        out = self.cli(*args, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def close(self) -> None:
        """Whatever a failed test left running: the supervisor, then its parts, by pid."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in gone(self.pids.values(), wait=5):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_stack(tmp_path):
    _require_browser()
    stacks = []

    def start(assisted: bool) -> Stack:
        d = tmp_path / f"stack{len(stacks)}"
        d.mkdir()
        s = Stack(d, assisted)
        stacks.append(s)
        s.wait_ready()
        return s

    yield start
    for s in stacks:
        s.close()


@pytest.fixture
def page(chromium_browser, request):
    context = chromium_browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    p.test_name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    try:
        yield p
    finally:
        context.close()


def login(page, stack: Stack, username: str) -> None:
    page.goto(stack.url)
    settle(page)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(stack.password)
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)


def sandbox_messages(stack: Stack) -> list[dict]:
    with urllib.request.urlopen(f"{stack.sandbox}/_sandbox/messages", timeout=5) as r:
        return json.loads(r.read())["messages"]


def test_make_run_brings_up_a_worker_that_executes_an_approved_item(start_stack, page):
    stack = start_stack(assisted=True)
    assert "rollout phase -> assisted (DEMO OVERRIDE" in stack.output
    assert "sends wait in Approvals" in stack.output
    assert sandbox_messages(stack) == []

    login(page, stack, "approver")
    # demo mode opens on the Welcome page: what each demo user can do
    page.get_by_role("heading", name="Try this as each role").wait_for()
    for who in ("Account executive (user `ae`)", "Approver (user `approver`)", "Operations (user `ops`)"):
        assert who.replace("`", "") in page.inner_text("body")
    screenshot(page, "welcome", prefix=False)
    open_page(page, "Approvals")
    screenshot(page, "make-run-approvals", prefix=False)

    pending = {r["id"]: r for r in stack.cli_json("approvals", "list", "--kind", "send")}
    assert pending, "the assisted demo queued sends for approval"
    # approve the item in focus in the browser, as the approver
    button = page.get_by_role("button", name=re.compile(r"^Approve #\d+")).first
    approval_id = int(re.search(r"#(\d+)", button.inner_text()).group(1))
    item = pending[approval_id]
    button.click()
    page.get_by_text(f"Approved: #{approval_id}.").wait_for()
    settle(page)
    screenshot(page, "make-run-approved", prefix=False)
    decided = stack.cli_json("approvals", "list", "--status", "approved")
    assert [(r["id"], r["status"]) for r in decided] == [(approval_id, "approved")]

    deadline = time.monotonic() + 30
    sent = []
    while time.monotonic() < deadline:
        msgs = [m for m in sandbox_messages(stack) if m.get("to") == item["to"]]
        sent = [r for r in stack.cli_json("outbox", "list", "--status", "sent") if r["id"] == item["outbox_id"]]
        if msgs and sent:
            break
        time.sleep(0.5)
    else:
        worker_log = (stack.dir / "data" / "logs" / "worker.log").read_text()[-3000:]
        pytest.fail(f"the worker did not execute approval {item['id']} within 30 s (sandbox: {msgs}, outbox sent: "
                    f"{sent}); worker log:\n{worker_log}")
    assert msgs[0]["subject"] == item["subject"]
    assert sent[0]["to"] == item["to"]
    assert len(sandbox_messages(stack)) == 1, "only the approved send left"

    # Observed: `alpha up` on other ports left the console checking the default webhook address. Every part of this
    # stack runs with the receiver and the sandbox it actually serves.
    for name, pid in stack.pids.items():
        environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode()
                       .split("\0") if "=" in kv)
        assert environ["ALPHA_WEBHOOK_URL"] == f"http://127.0.0.1:{stack.ports.webhook}", name
        assert environ["GHL_BASE_URL"] == stack.sandbox, name

    # Ctrl-C stops everything
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=STOP_TIMEOUT) == 0, stack.output
    assert not gone(stack.pids.values()), f"parts still running after Ctrl-C: {stack.pids}"
    assert "SIGINT: stopped console, worker, webhooks, ghl-sandbox." in stack.output


def test_make_run_gives_the_ae_a_blind_review_and_stops_everything_when_the_worker_dies(start_stack, page):
    stack = start_stack(assisted=False)
    assert "blind-review set 1 of 50 leads for the AE" in stack.output

    login(page, stack, "ae")
    page.get_by_role("heading", name="Try this as each role").wait_for()
    open_page(page, "Blind review")
    page.get_by_role("button", name="Tier 1").wait_for()  # a lead to label, not an empty page
    screenshot(page, "make-run-blind-review", prefix=False)

    os.kill(stack.pids["worker"], signal.SIGKILL)
    rc = stack.proc.wait(timeout=STOP_TIMEOUT)
    stack._reader.join(timeout=5)
    assert rc != 0
    assert "the worker exited with exit code -9 (killed by SIGKILL); stopping everything" in stack.output
    assert "stopped because the worker exited" in stack.output
    assert not gone(stack.pids.values()), f"parts still running after the worker died: {stack.pids}"
