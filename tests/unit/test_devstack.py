"""The `make run` supervisor (engine/entrypoints/devstack.py, `alpha dev`), with stand-in parts: a busy port is
refused before
anything starts; a part that exits stops every other part (its process group included) and the supervisor exits
non-zero naming it; SIGTERM stops everything; every part gets one environment, bound to 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from io import StringIO

import pytest

from engine.entrypoints import devstack
from engine.entrypoints.devstack import Part, PortBusy, Supervisor
from tests.conftest import CONFIG
from tests.helpers import ROOT

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int, wait: float = 5.0) -> bool:
    """Still running after ``wait`` seconds (a zombie waiting for a reaper counts as gone)."""
    deadline = time.monotonic() + wait
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return True


def sleeper(name: str, ready: str = "up") -> Part:
    return Part(name, [PY, "-c", f"import time; print({ready!r}, flush=True); time.sleep(120)"], ready_text=ready)


def spawner(name: str) -> Part:
    """A part with a grandchild of its own (as streamlit or a shell might have): it prints the grandchild's pid."""
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "print('grandchild', p.pid, flush=True); time.sleep(120)")
    return Part(name, [PY, "-c", code], ready_text="grandchild")


def http_part(name: str, port: int) -> Part:
    return Part(name, [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"], port, f"--{name}-port",
                health=f"http://127.0.0.1:{port}/", url=f"http://127.0.0.1:{port}")


def supervisor(parts, tmp_path, **kw) -> tuple[Supervisor, StringIO, StringIO]:
    out, err = StringIO(), StringIO()
    kw.setdefault("ready_timeout", 20)
    return Supervisor(parts, dict(os.environ), tmp_path / "logs", cwd=ROOT, out=out, err=err, poll=0.05,
                      stop_timeout=5, **kw), out, err


def grandchild_pid(part: Part) -> int:
    line = next(line for line in devstack.tail(part.log_path) if line.startswith("grandchild"))
    return int(line.split()[1])


# ------------------------------------------------------------------------------------------ ports

def test_a_busy_port_is_refused_before_anything_starts(tmp_path):
    """Observed: a busy port's error scrolled away while Streamlit went on. Now `alpha dev` refuses at once with
    one message naming the port, the part and the option, and starts nothing: no init, no database, no logs."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("EMERGENCY_STOP", "ALPHA_DEMO_PASSWORD")}
        env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'alpha.db'}", "ALPHA_DATA_DIR": str(tmp_path / "data"),
                    "ALPHA_CONFIG_DIR": str(CONFIG), "ALPHA_ENV_FILE": str(tmp_path / "empty.env"),
                    "PYTHONPATH": str(ROOT)})
        p = subprocess.run([PY, "-m", "engine.entrypoints.cli", "dev", "--console-port", str(port), "--ghl-port",
                            str(_free_port()), "--webhook-port", str(_free_port())],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"port {port} on 127.0.0.1 (for the console) is already in use" in p.stderr
    assert "nothing was started" in p.stderr and "--console-port" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "alpha init" not in p.stdout
    assert not (tmp_path / "alpha.db").exists() and not (tmp_path / "data").exists()


def test_the_same_port_for_two_parts_is_refused():
    port = _free_port()
    with pytest.raises(PortBusy, match=f"port {port} is given to both ghl-sandbox .*--ghl-port.* and webhooks"):
        devstack.check_ports(devstack.stack_parts(_free_port(), port, port))


def test_a_listener_on_any_address_makes_the_port_busy():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not devstack.port_free(port)
    assert devstack.port_free(_free_port())


# ------------------------------------------------------------------------------------------ supervision

def test_a_part_that_dies_stops_the_others_and_the_supervisor_exits_non_zero_naming_it(tmp_path):
    web = http_part("web", _free_port())
    dying = Part("worker", [PY, "-c", "import time; print('worker started', flush=True); time.sleep(1.5); "
                                      "print('database is gone: giving up', flush=True); raise SystemExit(3)"],
                 ready_text="worker started")
    parts = [spawner("sandbox"), web, dying, sleeper("console")]
    sup, out, err = supervisor(parts, tmp_path)
    shown = []
    rc = sup.run(lambda: shown.append(True) or "READY " + devstack.READY_MARK)
    assert rc == 1
    assert shown, "every part answered first, so the ready block was printed"
    msg = err.getvalue()
    assert "the worker exited with exit code 3; stopping everything" in msg
    assert "database is gone: giving up" in msg  # the last lines of its log
    assert "stopped because the worker exited (exit code 3)" in msg
    for p in parts:
        assert p.proc.poll() is not None, f"{p.name} still runs"
    assert not alive(grandchild_pid(parts[0])), "a part's own child outlived the stop"


def test_sigterm_stops_every_part_and_exits_zero(tmp_path):
    parts = [spawner("sandbox"), sleeper("worker", "worker started"), sleeper("console")]
    sup, out, err = supervisor(parts, tmp_path)
    before = signal.getsignal(signal.SIGTERM)

    def ready() -> str:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return "READY"

    started = time.monotonic()
    rc = sup.run(ready)
    assert rc == 0, err.getvalue()
    assert time.monotonic() - started < 15
    assert "SIGTERM: stopped console, worker, sandbox." in out.getvalue()
    assert all(p.proc.poll() is not None for p in parts)
    assert not alive(grandchild_pid(parts[0]))
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are given back


def test_a_part_that_never_answers_stops_everything(tmp_path):
    silent = Part("console", [PY, "-c", "import time; time.sleep(120)"], _free_port(), "--console-port",
                  health=f"http://127.0.0.1:{_free_port()}/_stcore/health")
    other = sleeper("worker", "worker started")
    sup, out, err = supervisor([other, silent], tmp_path, ready_timeout=1.5)
    assert sup.run(lambda: "READY") == 1
    assert "the console did not answer within 2 s" in err.getvalue()
    assert "READY" not in out.getvalue()
    assert other.proc.poll() is not None and silent.proc.poll() is not None


def test_a_part_that_exits_during_start_up_is_named(tmp_path):
    bad = Part("webhooks", [PY, "-c", "import sys; print('address already in use', flush=True); sys.exit(4)"],
               health="http://127.0.0.1:9/healthz")
    sup, out, err = supervisor([sleeper("worker"), bad], tmp_path)
    assert sup.run(lambda: "READY") == 1
    assert "the webhooks exited with exit code 4" in err.getvalue()
    assert "address already in use" in err.getvalue()


# ------------------------------------------------------------------------------------------ the stack's wiring

def test_every_part_binds_localhost_and_gets_one_environment():
    """Observed: `alpha up` on other ports left the console checking the default webhook address. Every part now
    gets ALPHA_WEBHOOK_URL and the sandbox's address for the ports this stack serves."""
    parts = {p.name: p for p in devstack.stack_parts(18501, 18765, 18787)}
    assert set(parts) == {"console", "ghl-sandbox", "webhooks", "worker"}
    assert parts["console"].argv[parts["console"].argv.index("--server.address") + 1] == "127.0.0.1"
    assert parts["console"].argv[parts["console"].argv.index("--server.port") + 1] == "18501"
    for name in ("ghl-sandbox", "webhooks"):
        argv = parts[name].argv
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert parts["worker"].argv[-3:-2] == ["worker"]
    env = devstack.child_env({"ALPHA_USERS_FILE": "/etc/real-users.yaml", "GHL_API_KEY": "real-key",
                              "GHL_BASE_URL": "https://services.leadconnectorhq.com"},
                             ghl_port=18765, webhook_port=18787, password="a-demo-password-123")
    assert env["ALPHA_WEBHOOK_URL"] == "http://127.0.0.1:18787"
    assert env["GHL_BASE_URL"] == "http://127.0.0.1:18765" and env["GHL_API_KEY"] == devstack.SANDBOX_TOKEN
    assert env["ALPHA_DEMO"] == "1" and env["ALPHA_DEMO_PASSWORD"] == "a-demo-password-123"
    assert "ALPHA_USERS_FILE" not in env  # demo users never go to the production users file


def test_the_demo_config_sends_only_with_the_demo_marks(tmp_path):
    from engine.core.config import load_settings
    from engine.services.control import live_sending_allowed

    src = tmp_path / "src"
    shutil.copytree(CONFIG, src)
    (src / "users.yaml").write_text("credentials: {usernames: {}}\n")
    dest = devstack.demo_config(src, tmp_path / "demo-config")
    settings = load_settings(dest)
    assert live_sending_allowed("assisted", settings)
    assert settings.production.working_hours.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert not (dest / "users.yaml").exists()
    assert "DEMO configuration" in (dest / "README.txt").read_text()
    assert json.loads((src / "production.json").read_text())["email_behavior"]["actually_send"] is False


@pytest.mark.parametrize("email,reserved", [
    ("ana@customer-one.example", True), ("x@Foo.Test", True), ("a@example.com", True), ("a@mail.example.org", True),
    ("a@acme.io", False), ("a@example.com.evil.io", False), ("not-an-email", False), ("", False),
])
def test_reserved_addresses(email, reserved):
    assert devstack.is_reserved_address(email) is reserved
