"""Shared fixtures.

Backends: tests that take ``db_url`` run on SQLite (a file in tmp) and on PostgreSQL (a fresh database per
test on the server at ALPHA_TEST_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Without a reachable server those tests skip with a message saying how to enable them, except under CI=true,
where a missing prerequisite fails the run.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
PG_ADMIN_URL = os.environ.get("ALPHA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# A Tuesday, 10:00 in New York (15:00 UTC): inside default working hours.
WORK_TIME = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test sees the developer's .env, kill switch or data dir."""
    monkeypatch.delenv("EMERGENCY_STOP", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("ALPHA_ENV_FILE", str(tmp_path / "test.env"))
    monkeypatch.setenv("ALPHA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALPHA_UNSUBSCRIBE_SECRET", "test-unsubscribe-secret-0123456789")
    saved = dict(os.environ)
    yield
    # what a command run in this process loaded from a test's .env (ALPHA_DEMO=1, say) must not reach later tests:
    # monkeypatch restores only what it changed itself
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def write_config(dest: Path, production: dict | None = None, warmup: dict | None = None,
                 permissions: dict | None = None) -> Path:
    """Copy config/ to ``dest`` with overrides deep-merged into the JSON files."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(CONFIG, dest)
    for name, over in (("production.json", production), ("warmup_plan.json", warmup),
                       ("permissions.json", permissions)):
        if over:
            data = json.loads((dest / name).read_text())
            (dest / name).write_text(json.dumps(deep_merge(data, over), indent=2))
    return dest


# Live, permissive settings for gateway tests: autonomous-ready flags, every day, no warm-up, no delay.
LIVE = {
    "email_behavior": {"actually_send": True, "shadow_mode": False},
    "block_production_writes": False,
    "working_hours": {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
    "email_limits": {"min_delay_seconds": 0},
}


@pytest.fixture
def config_factory(tmp_path):
    n = [0]

    def make(production: dict | None = None, warmup: dict | None = None, permissions: dict | None = None):
        n[0] += 1
        return write_config(tmp_path / f"config{n[0]}", production, warmup, permissions)

    return make


@pytest.fixture
def settings_factory(config_factory):
    from engine.core.config import load_settings

    def make(production: dict | None = None, warmup: dict | None = None, permissions: dict | None = None):
        return load_settings(config_factory(production, warmup, permissions))

    return make


@pytest.fixture
def settings():
    from engine.core.config import load_settings

    return load_settings(CONFIG)


# ------------------------------------------------------------------------------------------ databases

def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


_PG_PROBLEM: list = []


def pg_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_available())
    return _PG_PROBLEM[0]


def require_pg() -> None:
    problem = pg_problem()
    if problem is None:
        return
    msg = (f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem}). To run these tests start it "
           "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or point "
           "ALPHA_TEST_PG_URL at a server where the user may CREATE DATABASE.")
    if IN_CI:
        pytest.fail("CI=true: a PostgreSQL test must not be skipped. " + msg, pytrace=False)
    pytest.skip(msg)


def create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"alpha_t_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alpha.db'}"
        return
    require_pg()
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


# `alpha init` for a test whose config names a phase above shadow (the gates cannot pass on a fresh database)
FORCE_INIT = ("--force", "--reason", "test setup: the phase the test configures")


def seed_configured_phase(app) -> None:
    """Test setup: the control plane in the phase the test's config names. `alpha init` seeds it only through the
    go/no-go gates, which a fresh test database cannot pass (it would start at shadow)."""
    from engine.adapters.models import ControlState

    phase = app.settings.production.rollout_phase.current
    with app.store.write() as s:
        ctl = s.get(ControlState, 1)
        if ctl.phase != phase:
            ctl.phase = phase
            s.add(ctl)


@pytest.fixture
def app_factory(db_url, config_factory):
    """Build initialised Apps on the test database, with a fixed clock by default."""
    from engine.app import App
    from engine.core.clock import FixedClock
    from engine.core.config import load_settings
    from engine.adapters.db import Store

    made = []

    def make(production: dict | None = None, warmup: dict | None = None, permissions: dict | None = None,
             clock=None, executors=None, init: bool = True):
        settings = load_settings(config_factory(production, warmup, permissions))
        store = Store(db_url)
        app = App(settings=settings, store=store, clock=clock or FixedClock(WORK_TIME), executors=executors)
        if init:
            app.init("test")
            seed_configured_phase(app)
        made.append(app)
        return app

    yield make
    for a in made:
        a.store.dispose()
