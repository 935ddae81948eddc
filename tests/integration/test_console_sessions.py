"""Console sessions and login throttling (engine.services.sessions) on SQLite and PostgreSQL.

Each test comes from something seen in issue 13: logins did not survive a reload/new tab (the session now lives on
the server, any process resumes it from the token); 25 wrong passwords then the right one logged in (a growing
lockout, per typed name, in the database); a wrong password took longer for a real user than for an unknown one
(exactly one bcrypt check of the same cost either way, counted, not timed); a copied login cookie survived logout
and a password change (revoked on the server; a changed hash ends the session even when the file is edited).
"""
from __future__ import annotations

import json
from datetime import timedelta

import bcrypt
import pytest
import yaml
from sqlmodel import select

import engine.services.sessions as sessions_mod
import engine.adapters.users as users
from engine.core.clock import FixedClock
from engine.adapters.db import Store
from engine.adapters.models import AuditEntry, ConsoleSession, LoginAttempt
from engine.services.sessions import SessionService
from tests.conftest import WORK_TIME

PW = "the-right-password-77"
OTHER = "another-password-88"


@pytest.fixture
def env(app_factory, db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(path))
    clock = FixedClock(WORK_TIME)
    app = app_factory(clock=clock)
    users.add_user("jane", "Jane Doe", "jane@example.com", "approver", PW)
    users.add_user("bob", "Bob", "bob@example.com", "ops", PW)

    class Env:
        pass

    e = Env()
    e.app, e.clock, e.path, e.db_url = app, clock, path, db_url
    e.svc = SessionService(app.store, clock)
    e.other_process = lambda: SessionService(Store(db_url), clock)  # another console process / a restart
    return e


def audit_rows(app, *events):
    with app.store.read() as s:
        return s.exec(select(AuditEntry).where(AuditEntry.event.in_(events)).order_by(AuditEntry.seq)).all()


# ------------------------------------------------------------------------------------------ sessions

def test_a_login_is_resumed_by_any_process_from_the_token_alone(env):
    r = env.svc.login("Jane", PW, "127.0.0.1 test-agent")
    assert r.ok and r.username == "jane" and r.name == "Jane Doe" and r.roles == ("approver",)
    assert sessions_mod.valid_token(r.token) and len(r.token) >= 40
    # a reload / a direct link / a new tab: a new browser session, maybe another server process, only the cookie
    assert env.other_process().resume(r.token) == "jane"
    assert env.svc.resume(r.token) == "jane"
    with env.app.store.read() as s:
        row = s.exec(select(ConsoleSession)).one()
    assert row.token_hash == sessions_mod.token_hash(r.token) and r.token not in (row.token_hash, row.client)
    assert row.username == "jane" and row.client == "127.0.0.1 test-agent"
    assert row.expires_at - row.created_at == sessions_mod.ABSOLUTE_LIFETIME
    for bad in (None, "", "x", r.token + "x", "a" * 43, "<script>"):
        assert env.svc.resume(bad) is None
    assert [a.event for a in audit_rows(env.app, "console_login")] == ["console_login"]


def test_logout_revokes_the_session_so_a_copied_cookie_is_refused(env):
    r = env.svc.login("jane", PW)
    copied = r.token
    assert env.svc.logout(r.token) is True
    assert env.other_process().resume(copied) is None
    c = env.svc.check(copied)
    assert c.reason == "revoked" and "logged out" in c.message
    assert env.svc.logout(copied) is False  # once
    other = env.svc.login("jane", PW)  # a new login is a new session
    assert env.svc.resume(other.token) == "jane" and other.token != copied
    assert [a.status for a in audit_rows(env.app, "console_logout")] == ["logout"]


@pytest.mark.parametrize("how", ["set_password", "edit_file"])
def test_a_password_change_ends_the_sessions_opened_with_the_old_one(env, how):
    jane, bob = env.svc.login("jane", PW), env.svc.login("bob", PW)
    if how == "set_password":
        users.set_password("jane", OTHER)
    else:  # an admin edits the file by hand: no command told the engine
        data = yaml.safe_load(env.path.read_text())
        data["credentials"]["usernames"]["jane"]["password"] = users.hash_password(OTHER)
        env.path.write_text(yaml.safe_dump(data))
    c = env.svc.check(jane.token)
    assert c.username is None and c.reason == "password_changed"
    assert env.svc.resume(jane.token) is None  # and it stays ended
    assert env.svc.resume(bob.token) == "bob"  # other users keep theirs
    assert env.svc.resume(env.svc.login("jane", OTHER).token) == "jane"
    assert not env.svc.login("jane", PW).ok


def test_removing_a_user_ends_their_sessions(env):
    r = env.svc.login("bob", PW)
    users.remove_user("bob")
    c = env.svc.check(r.token)
    assert c.username is None and c.reason == "user_removed" and "no longer exists" in c.message
    users.add_user("bob", "Bob", "bob@example.com", "admin", PW)  # same name and password again: still ended
    assert env.svc.resume(r.token) is None


def test_revoke_user_ends_every_open_session_and_is_audited(env):
    tokens = [env.svc.login("jane", PW).token for _ in range(3)]
    bob = env.svc.login("bob", PW).token
    env.svc.logout(tokens[0])
    assert env.svc.revoke_user("JANE", "revoked", "cli:admin") == 2
    assert all(env.svc.resume(t) is None for t in tokens) and env.svc.resume(bob) == "bob"
    rows = audit_rows(env.app, "console_session_revoked")
    assert [(a.actor, a.status) for a in rows] == [("cli:admin", "revoked")] * 2
    assert [s["username"] for s in env.svc.sessions()] == ["bob"]
    assert len(env.svc.sessions("jane", include_ended=True)) == 3


def test_idle_and_absolute_expiry_and_last_seen_written_at_most_once_a_minute(env):
    r = env.svc.login("jane", PW)

    def last_seen():
        with env.app.store.read() as s:
            return s.exec(select(ConsoleSession)).one().last_seen_at

    t0 = last_seen()
    env.clock.advance(30)
    assert env.svc.resume(r.token) == "jane" and last_seen() == t0  # not written on every click
    env.clock.advance(31)
    assert env.svc.resume(r.token) == "jane" and last_seen() == env.clock()
    env.clock.advance((sessions_mod.IDLE_TIMEOUT + timedelta(seconds=1)).total_seconds())
    assert env.svc.check(r.token).reason == "idle"

    r = env.svc.login("jane", PW)
    start = env.clock()
    for _ in range(20):  # used every 11 hours: never idle, but the absolute lifetime still ends it
        env.clock.advance(hours=11)
        c = env.svc.check(r.token)
        if c.username is None:
            break
    assert c.reason == "expired"
    assert sessions_mod.ABSOLUTE_LIFETIME <= env.clock() - start < sessions_mod.ABSOLUTE_LIFETIME + timedelta(hours=11)


# ------------------------------------------------------------------------------------------ lockout

def test_five_failures_lock_the_name_and_even_the_right_password_is_refused(env):
    for i in range(1, 5):
        r = env.svc.login("jane", f"wrong-password-{i}")
        assert not r.ok and r.message == "Username or password is incorrect." and not r.locked
    r = env.svc.login("jane", "wrong-password-5")
    assert not r.ok and r.locked and r.retry_after == 30 and "try again in 30 seconds" in r.message
    r = env.svc.login("jane", PW)  # the right one, while locked
    assert not r.ok and r.token is None and r.locked and "Too many failed logins" in r.message
    assert env.other_process().login("jane", PW).locked  # held in the database: restarts, other processes
    env.clock.advance(10)
    assert env.svc.login("jane", PW).retry_after == 20
    assert env.svc.login("bob", PW).ok  # other names are not affected
    lock = audit_rows(env.app, "console_lockout")
    assert len(lock) == 1 and '"locked_seconds":30' in lock[0].data and '"failures":5' in lock[0].data


def test_the_delay_doubles_with_each_further_failure_up_to_fifteen_minutes_and_success_resets(env):
    for _i in range(5):
        env.svc.login("jane", "wrong")
    delays = [30]
    for _ in range(7):
        env.clock.advance(delays[-1] + 1)
        r = env.svc.login("jane", "wrong")
        assert r.locked
        delays.append(r.retry_after)
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]
    assert "try again in 15 minutes" in r.message
    env.clock.advance(901)
    assert env.svc.login("jane", PW).ok
    assert env.svc.attempts("jane") is None  # a success resets the count
    assert not env.svc.login("jane", "wrong").locked


def test_unknown_names_lock_the_same_way_so_the_lockout_reveals_nothing(env):
    known = [env.svc.login("jane", "wrong").message for _ in range(6)]
    unknown = [env.svc.login("nobody-here", "wrong").message for _ in range(6)]
    assert known == unknown
    assert env.svc.attempts("nobody-here").failures == 5


def test_old_failures_are_forgotten_after_a_day(env):
    for _ in range(4):
        env.svc.login("jane", "wrong")
    env.clock.advance(hours=25)
    assert not env.svc.login("jane", "wrong").locked
    assert env.svc.attempts("jane").failures == 1


def test_a_burst_of_guesses_gets_no_more_checks_than_allowed(env, monkeypatch):
    """Every attempt is counted before its password is checked: attempts that overlap cannot all slip in before
    the first failure is recorded."""
    seen = []
    real = users.verify_login

    def slow_verify(name, password, path=None):
        seen.append(env.svc.attempts(name).failures)  # what the database says while this password is checked
        return real(name, password, path)

    monkeypatch.setattr(users, "verify_login", slow_verify)
    for _ in range(3):
        env.svc.login("jane", "wrong")
    assert seen == [1, 2, 3]


# ------------------------------------------------------------------------------------------ equal timing

def test_one_bcrypt_check_of_the_same_cost_for_known_unknown_and_locked_names(env, monkeypatch):
    checks = []
    real = bcrypt.checkpw

    def counting(password, hashed):
        checks.append(int(hashed.decode().split("$")[2]))
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)

    def cost_of(username, password):
        checks.clear()
        env.svc.login(username, password)
        return list(checks)

    known_cost = users.hash_cost(users.find_user("jane")["password"])
    assert cost_of("jane", "wrong-password") == [known_cost]
    assert cost_of("no-such-user", "wrong-password") == [known_cost]  # a dummy hash of the same cost
    assert cost_of("", "wrong-password") == [known_cost]
    assert cost_of("jane", PW) == [known_cost]
    for _ in range(5):
        env.svc.login("bob", "wrong")
    assert cost_of("bob", PW) == [known_cost]  # locked: still one check


def test_no_password_or_token_reaches_the_audit_trail(env):
    r = env.svc.login("jane", PW)
    env.svc.login("jane", "Secret-Wrong-Pass-1")
    for _ in range(5):
        env.svc.login("eve", "Secret-Wrong-Pass-2")
    env.svc.logout(r.token)
    rows = audit_rows(env.app, "console_login", "console_login_failed", "console_lockout", "console_logout")
    assert {a.event for a in rows} == {"console_login", "console_login_failed", "console_lockout", "console_logout"}
    blob = "\n".join(f"{a.actor} {a.ref} {a.data}" for a in rows)
    assert PW not in blob and "Secret-Wrong" not in blob and r.token not in blob
    assert sessions_mod.token_hash(r.token) not in blob


def test_login_attempts_are_pruned(env):
    env.svc.login("old-name", "wrong")
    env.clock.advance(hours=25)
    env.svc.login("jane", "wrong")
    with env.app.store.read() as s:
        assert [a.key for a in s.exec(select(LoginAttempt)).all()] == ["user:jane"]


# ------------------------------------------------------------------------------------------ CLI

def test_cli_password_change_and_removal_revoke_sessions(env, monkeypatch):
    from typer.testing import CliRunner

    from engine.entrypoints.cli import cli

    monkeypatch.setenv("DATABASE_URL", env.db_url)
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(env.app.settings.config_dir))
    env.svc = SessionService(env.app.store)  # the CLI runs on the system clock
    jane, bob = env.svc.login("jane", PW), env.svc.login("bob", PW)
    run = CliRunner().invoke
    out = run(cli, ["users", "sessions", "--json"])
    assert out.exit_code == 0, out.output
    assert sorted(s["username"] for s in json.loads(out.output)) == ["bob", "jane"]
    out = run(cli, ["users", "set-password", "jane"], input=f"{OTHER}\n{OTHER}\n")
    assert out.exit_code == 0, out.output
    assert "1 open console session(s) of jane ended" in out.output
    with env.app.store.read() as s:
        row = s.exec(select(ConsoleSession).where(ConsoleSession.username == "jane")).one()
    assert row.revoked_reason == "password_changed"
    assert env.svc.resume(jane.token) is None
    out = run(cli, ["users", "revoke", "bob", "--actor", "admin"])
    assert out.exit_code == 0 and "1 open console session(s) of bob ended" in out.output
    assert env.svc.resume(bob.token) is None
    bob2 = env.svc.login("bob", PW)
    out = run(cli, ["users", "remove", "bob"])
    assert out.exit_code == 0 and "1 open console session(s) of bob ended" in out.output
    assert env.svc.check(bob2.token).reason == "revoked"
