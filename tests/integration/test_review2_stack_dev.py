"""Second review of `make run` (`alpha dev`, engine/entrypoints/devstack.py): no outside setting from the
environment or .env reaches the demo stack's parts, and a console port taken on the IPv6 loopback is refused.

Every port used here is in 18500-18999 and checked free first; whatever is started is stopped by pid."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tests.integration.test_review_devstack_run as first_review  # module import: its tests are not re-collected
from engine.entrypoints import devstack

PY = sys.executable
START_TIMEOUT = 240.0


def _taken(port: int) -> bool:
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as s:
            s.settimeout(0.3)
            if s.connect_ex((addr, port)) == 0:
                return True
        with socket.socket(family) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return True
    return False


def _listening(port: int) -> bool:
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as s:
            s.settimeout(0.3)
            if s.connect_ex((addr, port)) == 0:
                return True
    return False


def _ports(n: int, start: int) -> list[int]:
    found = [p for p in range(start, start + 200) if not _taken(p)][:n]
    if len(found) < n:
        pytest.fail(f"not {n} free ports from {start}")
    return found


def _dev(d: Path, env: dict, console: int, ghl: int, hooks: int) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "engine.entrypoints.cli", "dev", "--console-port", str(console),
                             "--ghl-port", str(ghl), "--webhook-port", str(hooks)],
                            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _environ_of(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}


# ------------------------------------------------------------------------------------------ outside settings

class _Anchor(BaseHTTPRequestHandler):
    """A deployment's audit anchor service: records every checkpoint POSTed to it."""

    posts: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        n = int(self.headers.get("content-length") or 0)
        type(self).posts.append(self.rfile.read(n))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"ok": True}).encode())

    def log_message(self, *a):
        pass


def test_make_run_blanks_every_outside_setting_for_its_parts_and_says_which(tmp_path):
    """Observed: `alpha dev` gave its parts every outside setting from the environment or .env except Slack: an
    http(s) ALPHA_AUDIT_CHECKPOINTS received the demo's signed audit checkpoints (the worker posts one at once),
    and the LLM keys were there for the demo's drafting to spend. Now every part sees them empty (the demo's
    checkpoints go to its own data folder), and one line at the start names what was ignored."""
    console, ghl, hooks, anchor_port = _ports(4, 18800)
    _Anchor.posts = []
    anchor = ThreadingHTTPServer(("127.0.0.1", anchor_port), _Anchor)
    threading.Thread(target=anchor.serve_forever, daemon=True).start()
    anchor_url = f"http://127.0.0.1:{anchor_port}/checkpoints"
    (tmp_path / "dot.env").write_text(
        f"ALPHA_AUDIT_CHECKPOINTS={anchor_url}\n"
        "ANTHROPIC_API_KEY=sk-ant-real-account-key\n"
        "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/realchannel\n"
        "GHL_API_KEY=pit-real-ghl-token\nGHL_LOCATION_ID=real-location\n")
    env = first_review.base_env(tmp_path, OPENAI_API_KEY="sk-real-openai-key")  # one from the environment
    for k in ("ALPHA_AUDIT_CHECKPOINTS", "ANTHROPIC_API_KEY"):
        env.pop(k, None)
    lines: list[str] = []
    proc = _dev(tmp_path, env, console, ghl, hooks)
    threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any(devstack.READY_MARK in line for line in lines):
            assert proc.poll() is None, "\n".join(lines)
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.2)
        out = "\n".join(lines)
        said = [line for line in lines if "outside settings" in line]
        assert len(said) == 1, out
        for name in ("ALPHA_AUDIT_CHECKPOINTS", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SLACK_WEBHOOK_URL",
                     "GHL_API_KEY"):
            assert name in said[0], (name, said[0])
        assert "sk-" not in out and anchor_url not in out  # names, never the values

        procs = next(line for line in lines if line.strip().startswith("Processes")).split(None, 1)[1]
        pids = {n: int(p) for n, p in (x.strip().rsplit(" ", 1) for x in procs.split(","))}
        for name, pid in pids.items():
            seen = _environ_of(pid)
            for k in ("ALPHA_AUDIT_CHECKPOINTS", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SLACK_WEBHOOK_URL"):
                assert seen.get(k) == "", (name, k)
            assert seen["GHL_BASE_URL"] == f"http://127.0.0.1:{ghl}", name

        # the worker writes its first checkpoint at once: into the demo's data folder, never to the anchor
        local = tmp_path / "data" / "audit-checkpoints.jsonl"
        deadline = time.monotonic() + 60
        while not (local.exists() or _Anchor.posts) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not _Anchor.posts, f"{len(_Anchor.posts)} demo checkpoints were posted to the anchor service"
        assert local.exists() and local.read_text().strip(), "the worker wrote no checkpoint"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        anchor.shutdown()
        anchor.server_close()
        for pid in first_review.wait_gone(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, "\n".join(lines)
    assert not any(_listening(p) for p in (console, ghl, hooks))


def test_no_outside_setting_set_means_no_line():
    assert devstack.ignored_line(devstack.ignored_settings({"GHL_BASE_URL": "http://127.0.0.1:8765",
                                                            "GHL_API_KEY": "sandbox-token",
                                                            "SLACK_WEBHOOK_URL": " "})) is None


# ------------------------------------------------------------------------------------------ IPv6 loopback

def _v6_listener(port: int, addr: str) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen()
    return s


@pytest.mark.parametrize("addr", ["::1", "::"])
def test_a_console_port_taken_only_on_ipv6_is_refused(tmp_path, addr):
    """Observed: a program listening only on [::1]:PORT (or an IPv6-only [::]:PORT) on the console port did not
    stop `alpha dev`: the console bound 127.0.0.1:PORT and started, while a browser opening localhost:PORT (::1
    first) reached the other program. Now it is refused like any busy port, naming the IPv6 address; nothing
    is started and the database is not touched."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    console, ghl, hooks = _ports(3, 18900)
    other = _v6_listener(console, addr)
    try:
        assert not devstack.port_free(console)
        env = first_review.base_env(tmp_path)
        proc = _dev(tmp_path, env, console, ghl, hooks)
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    finally:
        other.close()
    assert proc.returncode == 2, out
    assert f"port {console} on [::1] (for the console) is already in use" in out, out
    assert "localhost" in out and "--console-port" in out and "Traceback" not in out
    assert not (tmp_path / "alpha.db").exists() and not (tmp_path / "data").exists()
    assert devstack.port_free(console)
