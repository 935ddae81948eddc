"""Start-up refusals (issue 14): an unreachable database is reported as unreachable, not "not initialised"; on
PostgreSQL (several hosts) a long-running process refuses to start without a shared ALPHA_UNSUBSCRIBE_SECRET,
while SQLite (one host) keeps its generated key file; a bad environment variable is refused, named."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from engine.core.envcheck import EnvError
from tests.conftest import create_pg_database, drop_pg_database, require_pg
from tests.helpers import ROOT, alpha, alpha_env

CLOSED_PORT_URL = "postgresql+psycopg://alpha:pg-pass-w0rd@127.0.0.1:1/alpha"


def _no_secret(env: dict) -> dict:
    return {k: v for k, v in env.items() if k != "ALPHA_UNSUBSCRIBE_SECRET"}


def _one_clear_failure(p, code: int) -> str:
    assert p.returncode == code, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p.stderr


# ---------------------------------------------------------------------------------------------- the database

@pytest.mark.parametrize("command", [("status",), ("init",), ("worker",)])
def test_a_postgres_server_that_is_down_is_reported_unreachable_not_uninitialised(config_factory, tmp_path,
                                                                                  command):
    """Seen: with DATABASE_URL pointing at a PostgreSQL server that is down, `alpha status` said the database was
    "not initialised: run `alpha init`"."""
    env = alpha_env(CLOSED_PORT_URL, config_factory(), tmp_path)
    err = _one_clear_failure(alpha(env, *command, timeout=60), 3)
    assert "not initialised" not in err and "alpha init" not in err
    assert "unreachable" in err and "127.0.0.1:1" in err and "Connection refused" in err  # where, and the reason
    assert "Check that PostgreSQL is running" in err and "DATABASE_URL" in err  # what to check
    assert "pg-pass-w0rd" not in err


def test_an_empty_postgres_database_is_reachable_but_not_initialised(config_factory, tmp_path):
    require_pg()
    name, url = create_pg_database()
    try:
        env = alpha_env(url, config_factory(), tmp_path)
        err = _one_clear_failure(alpha(env, "status", timeout=60), 3)
        assert "not initialised" in err and "run `alpha init`" in err and "unreachable" not in err
        alpha(env, "init", check=True)
        assert alpha(env, "status", timeout=60).returncode == 0
    finally:
        drop_pg_database(name)


def test_a_missing_postgres_database_and_a_refused_login_say_so(config_factory, tmp_path):
    require_pg()
    from tests.conftest import PG_ADMIN_URL

    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    env = alpha_env(f"{base}/alpha_no_such_db_4f1c", config_factory(), tmp_path)
    err = _one_clear_failure(alpha(env, "status", timeout=60), 3)
    assert "has no database 'alpha_no_such_db_4f1c'" in err and "createdb" in err and "not initialised" not in err
    host = base.split("@", 1)[1]
    env = alpha_env(f"postgresql+psycopg://no_such_role_4f1c:pw-4f1c@{host}/test", config_factory(), tmp_path)
    err = _one_clear_failure(alpha(env, "status", timeout=60), 3)
    assert "refused the login of user 'no_such_role_4f1c'" in err and "pw-4f1c" not in err


# ---------------------------------------------------------------------------------------------- shared secret

@pytest.fixture
def initialised(db_url, config_factory, tmp_path):
    env = _no_secret(alpha_env(db_url, config_factory(), tmp_path))
    alpha(env, "init", check=True)  # a short command: allowed without the secret, on either database
    return db_url, env


def test_worker_refuses_at_once_on_postgres_without_a_shared_secret_and_runs_on_sqlite(initialised, tmp_path):
    db_url, env = initialised
    if db_url.startswith("postgresql"):
        t0 = time.monotonic()
        p = alpha(env, "worker", "--interval", "0.2", timeout=60)
        assert time.monotonic() - t0 < 45
        err = _one_clear_failure(p, 2)
        assert "ALPHA_UNSUBSCRIBE_SECRET" in err and "the worker" in err
        assert "secrets.token_urlsafe(32)" in err and "SAME value on every host" in err
        assert "worker started" not in p.stdout
        for command in (("webhooks", "serve", "--port", "1"), ("daily", "run")):
            err = _one_clear_failure(alpha(env, *command, timeout=60), 2)
            assert "ALPHA_UNSUBSCRIBE_SECRET" in err
        assert alpha(env, "status", timeout=60).returncode == 0  # diagnosing (and `alpha kill`) still works
        with_secret = {**env, "ALPHA_UNSUBSCRIBE_SECRET": "x" * 43}
        assert _worker_starts(with_secret)
    else:
        assert _worker_starts(env)  # SQLite (one host): as before, a key generated into the data folder
        assert (tmp_path / "data" / "unsubscribe.key").is_file()


def _worker_starts(env: dict) -> bool:
    p = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "worker", "--interval", "0.2"], env=env,
                         cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = p.stdout.readline()
        while line and "worker started" not in line:
            line = p.stdout.readline()
        return "worker started" in line
    finally:
        p.terminate()
        p.wait(30)


def test_the_console_refuses_on_postgres_without_a_shared_secret(app_factory, db_url, monkeypatch):
    """The console builds its engine with App() and app.check_ready() (console/runtime.py)."""
    app = app_factory()
    monkeypatch.delenv("ALPHA_UNSUBSCRIBE_SECRET")
    if db_url.startswith("postgresql"):
        with pytest.raises(EnvError) as e:
            app.check_ready()
        assert "ALPHA_UNSUBSCRIBE_SECRET" in str(e.value) and "every host" in str(e.value)
    else:
        app.check_ready()
    monkeypatch.setenv("ALPHA_UNSUBSCRIBE_SECRET", "y" * 40)
    app.check_ready()


# ---------------------------------------------------------------------------------------------- bad values

def test_a_bad_boolean_is_refused_naming_the_variable(config_factory, tmp_path):
    env = alpha_env(f"sqlite:///{tmp_path / 'a.db'}", config_factory(), tmp_path, ALPHA_DEMO="maybe")
    err = _one_clear_failure(alpha(env, "status", timeout=60), 2)
    assert "invalid environment" in err and "ALPHA_DEMO='maybe': not a boolean" in err
    assert not (tmp_path / "a.db").exists()  # refused before anything was touched


def test_every_bad_variable_is_listed_including_those_from_the_env_file(config_factory, tmp_path):
    env_file = tmp_path / "proc.env"  # alpha_env's ALPHA_ENV_FILE
    env_file.write_text("ALPHA_LLM_CONCURRENCY=lots\nALPHA_UNSUBSCRIBE_SECRT=abc\n")
    env = alpha_env(f"sqlite:///{tmp_path / 'a.db'}", config_factory(), tmp_path, GHL_BASE_URL="ftp://ghl.example",
                    ALPHA_UNSUBSCRIBE_SECRET="short")
    for command in (("worker",), ("config-check",)):
        err = _one_clear_failure(alpha(env, *command, timeout=60), 2)
        assert "ALPHA_LLM_CONCURRENCY='lots': not a whole number" in err
        assert "GHL_BASE_URL='ftp://ghl.example': unsupported scheme 'ftp'" in err
        assert "ALPHA_UNSUBSCRIBE_SECRET=<secret, 5 characters>: too short" in err and "=short" not in err
        assert "ALPHA_UNSUBSCRIBE_SECRT: not a variable the engine reads; probably a typo of " \
               "ALPHA_UNSUBSCRIBE_SECRET" in err
