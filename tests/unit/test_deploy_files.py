"""The deploy files, parsed and linted (no container is built or run here): compose.yaml, the Dockerfile,
.dockerignore, the compose scheduler (deploy/daily-loop.sh) and the systemd units and timer.

Every `alpha` command they run must exist with the options given (resolved by the real CLI's parser), every
variable they use must be documented in .env.example, no secret is written in them, only the console and the
webhook receiver publish a port (on 127.0.0.1), and health checks use /healthz and /_stcore/health.

Seen before (issue 14): there was no Dockerfile, compose file or unit at all; the README only showed a cron line."""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOOP = ROOT / "deploy" / "daily-loop.sh"
UNITS = ROOT / "deploy" / "systemd"
ENV_EXAMPLE = ROOT / ".env.example"

APP_SERVICES = ("migrate", "worker", "webhooks", "console", "scheduler")
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY$|API_KEY|WEBHOOK_URL)")


def documented() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


# ---------------------------------------------------------------------------------------------- the CLI

def check_alpha_command(args: list[str]) -> None:
    """``args`` after `alpha`: every group and command exists and the options parse (nothing runs)."""
    import typer.main

    from engine.entrypoints.cli import cli

    cmd, path, rest = typer.main.get_command(cli), ["alpha"], list(args)
    while hasattr(cmd, "commands"):
        assert rest, f"`{' '.join(path)}` needs a subcommand"
        name = rest.pop(0)
        assert name in cmd.commands, f"`{' '.join(path)} {name}`: no such command (known: {sorted(cmd.commands)})"
        cmd, path = cmd.commands[name], path + [name]
    try:
        cmd.make_context(" ".join(path), rest)
    except Exception as e:  # noqa: BLE001 - click's UsageError (vendored by typer)
        raise AssertionError(f"`{' '.join(path + rest)}`: {e}") from None


def test_the_command_checker_refuses_what_does_not_exist():
    check_alpha_command(["webhooks", "serve", "--host", "0.0.0.0", "--port", "8787"])
    for bad in (["webhooks", "serv"], ["worker", "--intervall", "5"], ["daily"], ["migrate"]):
        with pytest.raises(AssertionError):
            check_alpha_command(bad)


# ---------------------------------------------------------------------------------------------- compose

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class Missing(Exception):
    pass


def interpolate(obj, env: dict):
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(obj, dict):
        return {k: interpolate(v, env) for k, v in obj.items()}
    if isinstance(obj, list):
        return [interpolate(v, env) for v in obj]
    if not isinstance(obj, str):
        return obj

    def sub(m):
        if m.group(1):
            return "$"
        name, op, arg = m.group(2) or m.group(5), m.group(3), m.group(4)
        val = env.get(name)
        unset_or_empty = val is None or (val == "" and op and op.startswith(":"))
        if op in (":-", "-"):
            return arg if unset_or_empty else val
        if op in (":?", "?"):
            if unset_or_empty:
                raise Missing(f"{name}: {arg}")
            return val
        return val or ""

    return _VAR.sub(sub, obj)


def variables(obj) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(variables(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(variables(v) for v in obj)) if obj else set()
    if isinstance(obj, str):
        return {m.group(2) or m.group(5) for m in _VAR.finditer(obj) if not m.group(1)}
    return set()


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml: no services"
    return data


ENV = {"POSTGRES_PASSWORD": "pw-0123", "ALPHA_UNSUBSCRIBE_SECRET": "u" * 40}


def test_compose_parses_with_every_role(compose):
    assert set(compose["services"]) == {"postgres", *APP_SERVICES}
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        assert svc.get("image") or svc.get("build"), name
        for v in svc.get("volumes", []):
            source = v.split(":", 1)[0]
            assert not source.startswith((".", "/")), f"{name}: bind mount {v}: use a named volume"
            assert source in declared, f"{name}: volume {source} is not declared"
    images = {json.dumps([compose["services"][s].get("image"), compose["services"][s].get("build")])
              for s in APP_SERVICES}
    assert len(images) == 1, "every role runs the one image the Dockerfile builds"
    assert compose["services"]["migrate"]["build"] in (".", {"context": "."})
    assert all(compose["services"][s].get("pull_policy") == "build" for s in APP_SERVICES)


def test_postgres_then_migrations_then_everything_else(compose):
    svc = compose["services"]
    pg = svc["postgres"]
    assert re.fullmatch(r"postgres:\d+[\w.-]*", pg["image"]), "pin PostgreSQL's major version"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    mig = svc["migrate"]
    assert mig["command"] == ["alpha", "init"] and mig["restart"] == "no"
    assert mig["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("worker", "webhooks", "console", "scheduler"):
        assert svc[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}, name
        assert svc[name]["restart"] in ("unless-stopped", "always"), name
        assert svc[name].get("init") is True, f"{name}: signals need a real PID 1 (init: true)"


def test_roles_run_commands_that_exist(compose):
    svc = compose["services"]
    for name in APP_SERVICES:
        cmd = svc[name]["command"]
        assert isinstance(cmd, list), f"{name}: exec form (a list), not a shell string"
        if cmd[0] == "alpha":
            check_alpha_command(cmd[1:])
    assert svc["worker"]["command"][:2] == ["alpha", "worker"]
    assert svc["webhooks"]["command"][:3] == ["alpha", "webhooks", "serve"]
    assert svc["scheduler"]["command"] == ["alpha-daily-loop"]
    assert "alpha daily run" in LOOP.read_text()
    console = svc["console"]["command"]
    assert console[:3] == ["streamlit", "run", "console/app.py"] and (ROOT / console[2]).is_file()
    import streamlit.config as stc

    opts = console[3:]
    assert len(opts) % 2 == 0
    for flag, _ in zip(opts[::2], opts[1::2]):
        assert flag.startswith("--"), flag
        stc.get_option(flag[2:])  # raises for an option streamlit does not know


def test_workers_scale_and_the_scheduler_is_one(compose):
    svc = compose["services"]
    replicas = interpolate(svc["worker"]["deploy"]["replicas"], ENV)
    assert int(replicas) >= 2
    assert int(interpolate(svc["worker"]["deploy"]["replicas"], {**ENV, "ALPHA_WORKERS": "5"})) == 5
    assert "stop_grace_period" in svc["worker"]
    assert int((svc["scheduler"].get("deploy") or {}).get("replicas", 1)) == 1
    env = interpolate(svc["scheduler"]["environment"], ENV)
    assert env["ALPHA_DAILY_AT"] == "07:30" and env["ALPHA_DAILY_TZ"] == "UTC"
    assert env["DATABASE_URL"] == interpolate(svc["worker"]["environment"], ENV)["DATABASE_URL"]


def test_only_the_console_and_the_receiver_publish_a_port_on_loopback(compose):
    svc = compose["services"]
    published = {name: s["ports"] for name, s in svc.items() if s.get("ports")}
    assert published == {"webhooks": ["127.0.0.1:8787:8787"], "console": ["127.0.0.1:8501:8501"]}
    assert svc["webhooks"]["command"][-4:] == ["--host", "0.0.0.0", "--port", "8787"]
    c = svc["console"]["command"]
    assert c[c.index("--server.port") + 1] == "8501" and c[c.index("--server.address") + 1] == "0.0.0.0"


def test_health_checks(compose):
    svc = compose["services"]
    web = " ".join(svc["webhooks"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8787/healthz" in web
    con = " ".join(svc["console"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8501/_stcore/health" in con
    for name in ("migrate", "worker", "scheduler"):  # the image's HEALTHCHECK probes the receiver: not theirs
        assert svc[name]["healthcheck"] == {"disable": True}, name
    for name in ("webhooks", "console"):
        hc = svc[name]["healthcheck"]
        assert hc["test"][0] == "CMD" and not hc.get("disable") and hc.get("interval"), name
        code = hc["test"][-1]
        compile(code, f"{name} healthcheck", "exec")  # the python -c snippet is valid Python


def test_no_secret_is_written_in_compose(compose):
    svc = compose["services"]
    for name, s in svc.items():
        for key, raw in (s.get("environment") or {}).items():
            raw = str(raw)
            if key == "DATABASE_URL":
                from sqlalchemy.engine import make_url

                url = make_url(interpolate(raw, ENV))
                assert url.password == ENV["POSTGRES_PASSWORD"] and url.host == "postgres"
                assert re.search(r":\$\{POSTGRES_PASSWORD:\?[^}]+\}@", raw), raw
            elif SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", raw), f"{name}: {key} must be ${{VAR:?why}}"
    for name in APP_SERVICES:
        assert svc[name]["env_file"] == [{"path": ".env", "required": False}], name
    # compose refuses to start without the two secrets
    for missing in ENV:
        with pytest.raises(Missing, match=missing):
            interpolate(compose, {k: v for k, v in ENV.items() if k != missing})
    with pytest.raises(Missing):
        interpolate(compose, {**ENV, "POSTGRES_PASSWORD": ""})
    resolved = interpolate(compose, ENV)
    pg = resolved["services"]["postgres"]["environment"]
    from sqlalchemy.engine import make_url

    url = make_url(resolved["services"]["worker"]["environment"]["DATABASE_URL"])
    assert (url.drivername, url.username, url.password, url.database, url.port) == (
        "postgresql+psycopg", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"], 5432)


def test_every_variable_compose_uses_is_documented(compose):
    names = variables(compose)
    for s in APP_SERVICES:
        names |= set(compose["services"][s].get("environment") or {})
    missing = sorted(n for n in names if n not in documented())
    assert missing == [], f"document these in .env.example: {missing}"


# ---------------------------------------------------------------------------------------------- Dockerfile

def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each logical line: continuations joined, comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continuation"
    return out


def ignored(path: str) -> bool:
    import fnmatch

    pats = [x.strip() for x in DOCKERIGNORE.read_text().splitlines() if x.strip() and not x.startswith("#")]
    hit = False
    for p in pats:
        neg = p.startswith("!")
        p = p.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p):
            hit = not neg
    return hit


def test_dockerfile_lint():
    ins = dockerfile()
    kinds = [k for k, _ in ins]
    assert kinds.count("FROM") == 1 and ins[0] == ("FROM", "python:3.11-slim-bookworm")
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert kinds.index("CMD") > max(i for i, k in enumerate(kinds) if k == "USER")
    runs = " ".join(a for k, a in ins if k == "RUN")
    install = re.search(r"pip install ([^&;]*)", runs)
    assert install and any(re.fullmatch(r"\.(\[[\w,-]+\])?", a) for a in shlex.split(install.group(1))), \
        "installs the package with pip install . (or .[extra])"
    if "-c" in shlex.split(install.group(1)):
        lock = shlex.split(install.group(1))[shlex.split(install.group(1)).index("-c") + 1]
        assert (ROOT / lock).is_file(), lock
    hc = [a for k, a in ins if k == "HEALTHCHECK"]
    assert len(hc) == 1 and "/healthz" in hc[0] and "CMD" in hc[0]
    cmd = json.loads(next(a for k, a in ins if k == "CMD"))
    assert cmd[0] == "alpha"
    check_alpha_command(cmd[1:])
    assert set(next(a for k, a in ins if k == "EXPOSE").split()) == {"8787", "8501"}
    for k, a in ins:
        if k == "COPY":
            parts = [p for p in shlex.split(a) if not p.startswith("--")]
            for src in parts[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
                assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
        if k == "ENV":
            for key in re.findall(r"([A-Z][A-Z0-9_]*)=", a):
                assert not SECRET_KEY.search(key), f"ENV {key}: a secret in the image"
                if key.startswith("ALPHA_"):
                    assert key in documented(), key
    copied = " ".join(a for k, a in ins if k == "COPY")
    assert "deploy/daily-loop.sh /usr/local/bin/alpha-daily-loop" in copied


def test_dockerignore_keeps_secrets_and_local_state_out():
    for path in (".env", ".env.production", ".venv", ".data", ".git", "config/users.yaml", "tests",
                 "engine/__pycache__/x.pyc"):
        assert ignored(path), path
    for path in ("engine", "console", "pages", "config", "data", "pyproject.toml", "README.md",
                 "requirements.lock", ".streamlit", "deploy/daily-loop.sh"):
        assert not ignored(path), path


# ---------------------------------------------------------------------------------------------- scheduler

def _loop(env: dict, *args, path_dir: Path | None = None) -> subprocess.CompletedProcess:
    e = {"PATH": os.environ["PATH"], **env}
    if path_dir is not None:
        e["PATH"] = f"{path_dir}:{e['PATH']}"
    return subprocess.run(["sh", str(LOOP), *args], env=e, capture_output=True, text=True, timeout=30)


def test_scheduler_script_syntax_and_settings():
    assert subprocess.run(["sh", "-n", str(LOOP)], capture_output=True).returncode == 0
    r = _loop({}, "--next")
    assert r.returncode == 0 and re.search(r"next daily run: \d{4}-\d\d-\d\d 07:30 UTC \(in \d+ s\)", r.stdout)
    for name, bad in (("ALPHA_DAILY_AT", "7:5"), ("ALPHA_DAILY_AT", "24:00"), ("ALPHA_DAILY_TZ", "Nowhere/City")):
        r = _loop({name: bad}, "--next")
        assert r.returncode == 2 and f"{name}={bad}" in r.stderr, (name, bad, r.stderr)
    assert _loop({}, "--bogus").returncode == 2
    for var in re.findall(r"\$\{(ALPHA_[A-Z_]+)", LOOP.read_text()):
        assert var in documented(), var


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/Europe/Berlin").exists(), reason="no system time zone data")
def test_scheduler_skips_the_weekend(tmp_path):
    """On a Friday evening the next run is Monday at ALPHA_DAILY_AT in ALPHA_DAILY_TZ (a `date` shim fixes now)."""
    real = shutil.which("date")
    shim = tmp_path / "date"
    shim.write_text(f"""#!{sys.executable}
import os, sys
now = os.environ["FAKE_NOW"]
args = sys.argv[1:]
args = ["-d", now, "+%s"] if args == ["+%s"] else [a.replace("today", now.split()[0]) for a in args]
os.execv({real!r}, ["date", *args])
""")
    shim.chmod(0o755)
    r = _loop({"FAKE_NOW": "2026-12-04 20:00 CET", "ALPHA_DAILY_AT": "07:30", "ALPHA_DAILY_TZ": "Europe/Berlin"},
              "--next", path_dir=tmp_path)  # 2026-12-04 is a Friday
    assert r.returncode == 0, r.stderr
    assert "next daily run: 2026-12-07 07:30 CET" in r.stdout, r.stdout
    r = _loop({"FAKE_NOW": "2026-12-07 06:00 CET", "ALPHA_DAILY_TZ": "Europe/Berlin"}, "--next", path_dir=tmp_path)
    assert "2026-12-07 07:30 CET (in 5400 s)" in r.stdout, r.stdout


def test_scheduler_runs_alpha_daily_run_and_survives_a_failed_run(tmp_path):
    calls = tmp_path / "calls"
    (tmp_path / "sleep").write_text("#!/bin/sh\nexit 0\n")  # no waiting in a test
    (tmp_path / "alpha").write_text(f"""#!/bin/sh
echo "$*" >> {calls}
n=$(wc -l < {calls})
if [ "$n" -ge 2 ]; then kill -TERM $PPID; exit 0; fi
exit 1
""")
    for f in ("sleep", "alpha"):
        (tmp_path / f).chmod(0o755)
    r = _loop({"ALPHA_LOG_FORMAT": "json"}, path_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert calls.read_text().splitlines() == ["daily run", "daily run"]
    recs = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert all({"time", "level", "logger", "message"} <= set(x) and x["logger"] == "alpha.scheduler" for x in recs)
    assert any(x["level"] == "ERROR" and "daily run failed (exit 1)" in x["message"] for x in recs), recs
    assert any(x["message"] == "scheduler stopped" for x in recs), recs


# ---------------------------------------------------------------------------------------------- systemd

def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((UNITS / name).read_text(), source=name)
    return cp


def unit_values(name: str, key: str) -> list[str]:
    """Every value of ``key`` (a unit may repeat Environment=; configparser keeps only the last)."""
    return [line.split("=", 1)[1] for line in (UNITS / name).read_text().splitlines() if line.startswith(f"{key}=")]


SERVICES = ("alpha-migrate.service", "alpha-worker@.service", "alpha-webhooks.service", "alpha-console.service",
            "alpha-daily.service")
BIN = "/opt/alpha-swarm/.venv/bin/"


def test_systemd_units_parse_and_run_commands_that_exist():
    assert sorted(p.name for p in UNITS.iterdir()) == sorted([*SERVICES, "alpha-daily.timer"])
    for name in SERVICES:
        u = unit(name)
        assert u["Unit"]["Description"], name
        s = u["Service"]
        assert s["User"] == "alpha" and s["User"] != "root", name
        assert s["WorkingDirectory"] == "/opt/alpha-swarm"
        argv = shlex.split(s["ExecStart"])
        assert argv[0].startswith(BIN), name
        if argv[0] == BIN + "alpha":
            check_alpha_command(argv[1:])
        else:
            assert argv[0] == BIN + "streamlit" and argv[1:3] == ["run", "console/app.py"], name
        env = dict(v.split("=", 1) for v in unit_values(name, "Environment"))
        assert env["ALPHA_ENV_FILE"] == "/etc/alpha/alpha.env", name
        assert all(k in documented() for k in env), (name, env)
        if name != "alpha-migrate.service":
            assert "alpha-migrate.service" in u["Unit"]["Requires"] and "alpha-migrate.service" in u["Unit"]["After"]
    assert shlex.split(unit("alpha-migrate.service")["Service"]["ExecStart"])[1:] == ["init"]
    assert unit("alpha-migrate.service")["Service"]["Type"] == "oneshot"
    assert unit("alpha-daily.service")["Service"]["Type"] == "oneshot"
    assert shlex.split(unit("alpha-daily.service")["Service"]["ExecStart"])[1:] == ["daily", "run"]
    assert "%i" in unit("alpha-worker@.service")["Unit"]["Description"]
    for name in ("alpha-worker@.service", "alpha-webhooks.service", "alpha-console.service"):
        assert unit(name)["Service"]["Restart"] in ("on-failure", "always"), name
        assert unit(name)["Install"]["WantedBy"] == "multi-user.target", name
    assert "--host 127.0.0.1" in unit("alpha-webhooks.service")["Service"]["ExecStart"]
    assert "--server.address 127.0.0.1" in unit("alpha-console.service")["Service"]["ExecStart"]


def test_the_daily_timer():
    t = unit("alpha-daily.timer")["Timer"]
    assert t["OnCalendar"] == "Mon..Fri *-*-* 07:30:00"
    assert t["Persistent"] == "true" and t["Unit"] == "alpha-daily.service"
    assert unit("alpha-daily.timer")["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """systemd's own parser: the units pointed at this checkout's virtualenv (the binaries must exist)."""
    venv_bin = Path(sys.executable).parent
    for p in UNITS.iterdir():
        text = p.read_text().replace(BIN, f"{venv_bin}/").replace("WorkingDirectory=/opt/alpha-swarm",
                                                                   f"WorkingDirectory={ROOT}")
        (tmp_path / p.name).write_text(text)
    if not (venv_bin / "alpha").exists() or not (venv_bin / "streamlit").exists():
        pytest.skip("alpha or streamlit is not installed in this virtualenv")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    cal = subprocess.run(["systemd-analyze", "calendar", unit("alpha-daily.timer")["Timer"]["OnCalendar"]],
                         capture_output=True, text=True, timeout=30)
    assert cal.returncode == 0, cal.stderr
