"""The built wheel, installed OUTSIDE the repository, runs `alpha init`, `alpha demo`, `alpha init --new-config` and
the console; a worker host (no console extra) runs init, demo, the worker and the webhook receiver.

The wheel is built from a copy of the sources (pip wheel, with the build requirements of pyproject.toml) and
installed into a fresh venv in a temporary folder. To stay fast, that venv sees the project venv's site-packages
through a .pth file (the dependencies are not installed again) but NOT its editable install of the engine: the
editable finder is a .pth of the project venv, and .pth files of a folder added that way are not processed. Every
command runs with its working directory outside the repository and a minimal environment, so nothing can come from
the checkout; the tests assert that `engine` and `console` are imported from the new venv.

A "worker host" is simulated by a sitecustomize that blocks streamlit and plotly (sys.modules[name] = None): any
import of them fails, as it would where the console extra is not installed.

Seen before: the default configuration and the demo CSV lived only in the repository (`alpha init` outside it
failed with "configuration folder not found"), the console was not in the wheel at all, and streamlit and plotly
were required dependencies of every host."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.core import defaults

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "engine", "console", "pages", "config", "data",
           ".streamlit")
BLOCK_CONSOLE = "import sys\nsys.modules.update(dict.fromkeys(('streamlit', 'plotly')))  # a host without the extra\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], *, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> SimpleNamespace:
    """Build the wheel from a copy of the sources, install it into a new venv; the paths of both."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "users.yaml")
    for name in SOURCES:
        path = ROOT / name
        (shutil.copytree(path, src / name, ignore=ignore) if path.is_dir() else shutil.copy2(path, src / name))
    (src / "config" / "users.yaml").write_text("# local state: must never be shipped\n")
    started = time.monotonic()
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(src)],
                 timeout=600, cwd=tmp)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    whl = next((tmp / "dist").glob("alpha_swarm-*.whl"))
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    purelib = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=tmp).stdout.strip())
    main_site = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "_project_venv.pth").write_text("".join(f"{p}\n" for p in sorted(main_site)))
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                      "--ignore-installed", str(whl)], cwd=tmp)
    assert installed.returncode == 0, f"installing the wheel failed:\n{installed.stdout}\n{installed.stderr}"
    blocker = tmp / "worker-host"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_CONSOLE)
    run = tmp / "run"   # the working directory of every command: outside the repository, no config/ or .env
    run.mkdir()
    home = tmp / "home"  # no ~/.streamlit or other per-user settings of this machine
    home.mkdir()
    print(f"wheel built and installed in {time.monotonic() - started:.1f} s")
    return SimpleNamespace(tmp=tmp, whl=whl, venv=venv, purelib=purelib, bin=venv / "bin", run=run, home=home,
                           blocker=blocker)


def _env(w, *, worker_host: bool = False, **extra: str) -> dict:
    """A minimal environment: the new venv's bin first on PATH, nothing of the project's (no PYTHONPATH, no
    ALPHA_*, no DATABASE_URL: the database is the default .data/alpha.db in the working directory)."""
    env = {"PATH": f"{w.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(w.home),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    if worker_host:
        env["PYTHONPATH"] = str(w.blocker)
    env.update(extra)
    return env


def _alpha(w, *args: str, worker_host: bool = False, input: str | None = None, cwd: Path | None = None,
           **extra: str) -> subprocess.CompletedProcess:
    return _run([str(w.bin / "alpha"), *args], cwd=cwd or w.run, input=input,
                env=_env(w, worker_host=worker_host, **extra))


def _py(w, code: str, *, worker_host: bool = False, **extra: str) -> subprocess.CompletedProcess:
    return _run([str(w.bin / "python"), "-c", code], cwd=w.run, env=_env(w, worker_host=worker_host, **extra))


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the server exited with {proc.returncode}: {proc.stdout.read()}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.stdout.read()


@pytest.fixture(scope="module")
def demo_db(wheel) -> SimpleNamespace:
    """`alpha init` then `alpha demo` on a worker host (no console extra), from outside the repository."""
    init = _alpha(wheel, "init", worker_host=True)
    assert init.returncode == 0, init.stdout + init.stderr
    demo = _alpha(wheel, "demo", worker_host=True)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    return SimpleNamespace(init=init, demo=demo)


# ------------------------------------------------------------------------------------------------ the wheel

def test_the_wheel_ships_the_defaults_the_console_and_the_migrations_but_no_local_state(wheel):
    names = set(zipfile.ZipFile(wheel.whl).namelist())
    shipped_config = {f"engine/defaults/config/{rel.as_posix()}" for rel in defaults.config_files(ROOT / "config")}
    assert shipped_config and shipped_config <= names, sorted(shipped_config - names)
    # every file kept in config/ is one the package ships (a new kind of file would otherwise be silently left out)
    local = {p.relative_to(ROOT / "config").as_posix() for p in (ROOT / "config").rglob("*")
             if p.is_file() and p.name != "users.yaml"}
    assert local == {rel.as_posix() for rel in defaults.config_files(ROOT / "config")}
    assert not [n for n in names if n.endswith("users.yaml")], "the local users file went into the wheel"
    assert "engine/defaults/demo_leads.csv" in names
    assert {f"console/pages/{p.name}" for p in (ROOT / "pages").glob("*.py")} <= names
    assert {"console/app.py", "console/.streamlit/config.toml"} <= names
    migrations = {p.relative_to(ROOT).as_posix() for p in (ROOT / "engine" / "adapters" / "migrations").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert migrations and migrations <= names, sorted(migrations - names)
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "engine" / "data").glob("*.jsonl")} <= names
    metadata = zipfile.ZipFile(wheel.whl).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for heavy in ("streamlit", "plotly"):
        mine = [r for r in requires if re.match(rf"Requires-Dist: {heavy}\b(?!-)", r)]
        assert mine and all('extra == "console"' in r for r in mine), mine


def test_engine_and_console_are_imported_from_the_installed_wheel(wheel):
    r = _py(wheel, "import engine, console; from engine.core.config import default_config_dir; "
                   "print(engine.__file__); print(console.__file__); print(default_config_dir())")
    assert r.returncode == 0, r.stderr
    engine_file, console_file, config_dir = map(Path, r.stdout.split())
    for path in (engine_file, console_file, config_dir):
        assert path.is_relative_to(wheel.purelib), f"{path} is not inside the new venv {wheel.purelib}"
    assert config_dir == wheel.purelib / "engine" / "defaults" / "config"


# ------------------------------------------------------------------------------------------------ a worker host

def test_init_and_demo_outside_the_repository_without_the_console_extra(wheel, demo_db):
    blocked = _py(wheel, "import streamlit", worker_host=True)
    assert blocked.returncode != 0, "the worker-host simulation does not block streamlit"
    assert "schema: empty -> " in demo_db.init.stdout
    assert (wheel.run / ".data" / "alpha.db").is_file()
    out = demo_db.demo.stdout
    assert "demo: imported " in out and "demo: shadow run " in out and "(nothing sent)" in out, out


def test_worker_and_webhook_receiver_run_without_the_console_extra(wheel, demo_db):
    port = _free_port()
    procs = {name: subprocess.Popen([str(wheel.bin / "alpha"), *args], cwd=wheel.run, env=_env(wheel, worker_host=True),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, args in (("worker", ("worker", "--interval", "0.2")),
                                ("webhooks", ("webhooks", "serve", "--port", str(port))))}
    worker = procs["worker"]
    try:
        status, _ = _wait_http(f"http://127.0.0.1:{port}/healthz", procs["webhooks"])
        assert status == 200
        seen = ""
        while "worker started" not in seen:
            line = worker.stdout.readline()
            assert line, f"the worker exited ({worker.wait()}) before it started:\n{seen}"
            seen += line
    finally:
        logs = {name: _stop(proc) for name, proc in procs.items()}
    assert worker.returncode == 0 and "worker stopped" in logs["worker"], logs["worker"]


def test_console_command_says_to_install_the_console_extra(wheel):
    r = _alpha(wheel, "console", worker_host=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "alpha-swarm[console]" in r.stderr and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------------ configuration

def test_new_config_writes_an_editable_copy_and_never_overwrites(wheel, demo_db):
    target = wheel.tmp / "site-config"
    r = _alpha(wheel, "init", "--new-config", str(target), worker_host=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ALPHA_CONFIG_DIR={target}" in r.stdout
    shipped = defaults.config_files(wheel.purelib / "engine" / "defaults" / "config")
    assert defaults.config_files(target) == shipped and (target / "production.json").is_file()
    (target / "production.json").write_text((target / "production.json").read_text() + "\n")  # the operator's
    edited = (target / "production.json").read_bytes()
    again = _alpha(wheel, "init", "--new-config", str(target), worker_host=True)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr, again.stdout + again.stderr
    assert str(target / "production.json") in again.stderr
    assert (target / "production.json").read_bytes() == edited
    used = _alpha(wheel, "config-check", worker_host=True, ALPHA_CONFIG_DIR=str(target))
    assert used.returncode == 0 and str(target) in used.stdout, used.stdout + used.stderr
    # the packaged defaults are read-only: console users go to the operator's folder, never into site-packages
    refused = _alpha(wheel, "users", "add", "root", "--name", "Root", "--email", "root@example.com", "--role",
                     "admin", input="a-long-enough-password-1\n" * 2, worker_host=True)
    assert refused.returncode != 0 and "read-only" in refused.stderr, refused.stdout + refused.stderr
    assert not list(wheel.purelib.glob("engine/defaults/config/*.yaml"))
    added = _alpha(wheel, "users", "add", "root", "--name", "Root", "--email", "root@example.com", "--role", "admin",
                   input="a-long-enough-password-1\n" * 2, worker_host=True, ALPHA_CONFIG_DIR=str(target))
    assert added.returncode == 0 and (target / "users.yaml").is_file(), added.stdout + added.stderr


# ------------------------------------------------------------------------------------------------ the console

def test_the_installed_console_serves_and_its_pages_run(wheel, demo_db):
    port = _free_port()
    console = subprocess.Popen([str(wheel.bin / "alpha"), "console", "--port", str(port)], cwd=wheel.run,
                               env=_env(wheel, ALPHA_DEMO="1", ALPHA_DEMO_PASSWORD="wheel-test-password-42"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, body = _wait_http(f"http://127.0.0.1:{port}/_stcore/health", console, timeout=60)
        assert status == 200 and body.strip() == "ok", body
        status, page = _wait_http(f"http://127.0.0.1:{port}/", console)
        assert status == 200 and '<div id="root">' in page, page[:500]
    finally:
        log = _stop(console)
    assert "Traceback" not in log, log
    # the installed entry script, run as Streamlit runs it: log in as a demo user, the Welcome page from
    # console/pages renders without an exception
    script = f"""
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(wheel.purelib / "console" / "app.py")!r}, default_timeout=90).run()
assert not at.exception, [e.value for e in at.exception]
next(w for w in at.text_input if w.label == "Username").input("admin")
next(w for w in at.text_input if w.label == "Password").input("wheel-test-password-42")
next(b for b in at.button if b.label == "Log in").click()
at.run()
assert not at.exception, [e.value for e in at.exception]
print("TITLES", [t.value for t in at.title])
"""
    r = _py(wheel, script, ALPHA_DEMO="1", ALPHA_DEMO_PASSWORD="wheel-test-password-42")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Welcome" in r.stdout, r.stdout
