"""Console tests: the real Streamlit scripts under streamlit.testing.v1.AppTest, on an initialised test database.

The console builds its own App from the environment (DATABASE_URL, ALPHA_CONFIG_DIR), so each test points
those at app_factory's database and config; `ctx.app` is a second App on the same database for checks.
Login goes through the console's real form and server-side session (`ctx.login`, console/auth.py); pages loaded
directly (`ctx.page`) get the session state a successful login sets (authentication_status, username, name).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import re

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "console-test-password-42"
ROLE_USERS = {"ae": "ae", "approver": "approver", "ops": "ops", "admin": "admin"}  # username -> role


@pytest.fixture
def kill_gate_only(monkeypatch):
    """The gate for parallel reduced to "kill switch off", so a test controls it whatever gates the engine
    registers (the page shows whatever gate_for returns)."""
    from engine.services import control, readiness

    monkeypatch.setitem(readiness.PHASE_GATES, "parallel", [control.gate_kill_switch_off])


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def text(elements) -> str:
    """What a person reads in these elements: their values joined, with markdown backslash escapes removed (the
    console escapes reasons and errors so they render as written)."""
    return "\n".join(_ESCAPED.sub(r"\1", str(e.value)) for e in elements)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


ok = no_exception


def _new(path: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def login(at, username: str, password: str = PASSWORD):
    user = next(w for w in at.text_input if w.label == "Username")
    pw = next(w for w in at.text_input if w.label == "Password")
    user.input(username)
    pw.input(password)
    next(b for b in at.button if b.label == "Log in").click()
    return at.run()


def _session_token(app, username: str) -> str:
    """A server-side session of ``username`` as a login makes it (what console.runtime.actor re-checks), without
    the form; a user not in the users file gets a token that matches no session."""
    import secrets

    import engine.adapters.users as users
    from engine.adapters.models import ConsoleSession
    from engine.core.clock import system_clock
    from engine.services.sessions import ABSOLUTE_LIFETIME, token_hash

    token = secrets.token_urlsafe(32)
    user = users.find_user(username)
    if user is not None:
        now = system_clock()  # the console's engine runs on the system clock
        with app.store.write() as s:
            s.add(ConsoleSession(token_hash=token_hash(token), username=user["username"],
                                 password_stamp=users.password_stamp(user["password"]), created_at=now,
                                 last_seen_at=now, expires_at=now + ABSOLUTE_LIFETIME))
    return token


@pytest.fixture
def ctx(app_factory, db_url, tmp_path, monkeypatch):
    import streamlit as st

    import engine.adapters.users as users

    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)  # fast hashes in tests
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_COOKIE_KEY"):
        monkeypatch.delenv(var, raising=False)
    app = app_factory()
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    users_file = tmp_path / "users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(users_file))
    for username, role in ROLE_USERS.items():
        users.add_user(username, f"Test {role}", f"{username}@example.com", role, PASSWORD)

    def main():
        return _new("console/app.py").run()

    def page(path: str, username: str | None):
        at = _new(path)
        if username is not None:
            at.session_state["authentication_status"] = True
            at.session_state["username"] = username
            at.session_state["name"] = f"Test {username}"
            at.session_state["alpha_session_token"] = _session_token(app, username)
        return at.run()

    st.cache_resource.clear()
    yield SimpleNamespace(app=app, users_file=users_file, main=main, page=page, login=login)
    st.cache_resource.clear()
