"""Review of issue 13 item 2 (lockout and logins): attacks on the per-name lockout and on the users file.

Each test is an attack that worked on the first build: a name padded past 64 characters with whitespace was
locked under one key but logged in as the real user (a fresh key per padding, so no lockout ever); passwords
longer than bcrypt's 72 bytes crashed `alpha users add` and demo seeding; a users file that is not UTF-8, or a
directory, gave a traceback; a hand-written key the login can never match (``Jane``) was accepted silently.
"""
from __future__ import annotations

import pytest

import engine.adapters.users as users
import engine.services.sessions as sessions_mod
from engine.core.clock import FixedClock
from engine.core.errors import InvalidRequest
from engine.services.sessions import SessionService
from tests.conftest import WORK_TIME

PW = "the-right-password-77"


@pytest.fixture
def env(app_factory, tmp_path, monkeypatch):
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(path))
    clock = FixedClock(WORK_TIME)
    app = app_factory(clock=clock)
    users.add_user("jane", "Jane Doe", "jane@example.com", "approver", PW)
    return SessionService(app.store, clock), clock


def _lock(svc, name="jane"):
    for _ in range(sessions_mod.MAX_FAILURES):
        assert not svc.login(name, "wrong-password-000").ok
    r = svc.login(name, PW)
    assert not r.ok and r.locked, "the name should be locked after MAX_FAILURES wrong passwords"


@pytest.mark.parametrize("pad", [" " * 70 + "x", "\t" * 59 + "!", "\u3000" * 60 + "z", " \u00a0" * 40 + "y"])
def test_a_locked_name_cannot_log_in_under_a_padded_spelling(env, pad):
    svc, _ = env
    _lock(svc)
    r = svc.login("jane" + pad, PW)
    assert not r.ok, "a padded spelling of a locked name logged in: the lockout counted another key"


def test_a_padded_spelling_with_the_right_password_is_not_the_user(env):
    svc, _ = env
    for i in range(25):  # each padding was a fresh lockout key that logged in as jane
        pad = " " * (61 + i) + "x" if i % 2 else "\u2003" * 61 + "q" * (i + 1)
        r = svc.login("jane" + pad, PW)
        assert not r.ok and r.username is None, pad


@pytest.mark.parametrize("spelling", ["JANE", " Jane ", "\uff4a\uff41\uff4e\uff45", "ja\u200bne", "JANE\u3000",
                                      "\u212a" + "ate", "j\u0430ne", "jane" + " " * 61 + "x"])
def test_a_spelling_either_never_logs_in_or_counts_against_the_user_it_logs_in_as(env, spelling):
    svc, _ = env
    assert users.add_user("kate", "Kate", "kate@example.com", "ops", PW)
    if not svc.login(spelling, PW).ok:  # never a user (look-alike, zero-width, too long): nothing to protect
        return
    for _ in range(sessions_mod.MAX_FAILURES):
        svc.login(spelling, "wrong-password-000")
    assert not svc.login(spelling.strip().lower(), PW).ok, "failures under this spelling did not lock its user"


def test_a_name_that_cannot_be_a_user_never_logs_in_and_costs_one_check(env, monkeypatch):
    svc, _ = env
    calls = []
    real = users._verify
    monkeypatch.setattr(users, "_verify", lambda p, h: calls.append(h) or real(p, h))
    for name in ("jane\u200b", "ja\u200dne", "j" * 65, "jane" + " " * 70 + "x"):
        calls.clear()
        assert not svc.login(name, PW).ok, name
        assert len(calls) == 1, (name, calls)


@pytest.mark.parametrize("name", ["jane\x00", "\x00", "ja\ud800ne", "\x00" * 300])
def test_a_name_with_a_nul_or_a_lone_surrogate_is_refused_not_a_crash(env, name):
    svc, _ = env
    for _ in range(sessions_mod.MAX_FAILURES + 1):
        r = svc.login(name, PW)
        assert not r.ok
    assert svc.login("jane", PW).ok  # the real name is untouched


def test_the_attempt_key_fits_its_column_and_is_never_a_users_key():
    for typed in ("a" * 500, "\U0001f600" * 300, "jane" + " " * 70 + "x"):
        k = sessions_mod.attempt_key(typed)
        assert len(k) <= 200 and k not in ("user:jane", "user:" + typed[:64])
    assert sessions_mod.attempt_key("jane") == "user:jane"


# ------------------------------------------------------------------------------------------ passwords > 72 bytes

def test_a_password_longer_than_bcrypt_takes_is_refused_with_a_clear_error(tmp_path):
    p = tmp_path / "users.yaml"
    for long in ("a1b2c3d4e5" * 8, "\u00e9t\u00e9-" * 20):  # 80 characters; 120 bytes
        assert users.password_problem(long) and "72" in users.password_problem(long)
        with pytest.raises(InvalidRequest, match="72"):
            users.add_user("jane", "Jane", "jane@example.com", "ops", long, p)
    users.add_user("jane", "Jane", "jane@example.com", "ops", PW, p)
    with pytest.raises(InvalidRequest, match="72"):
        users.set_password("jane", "x9y8z7w6v5" * 8, p)
    with pytest.raises(InvalidRequest, match="72"):
        users.demo_users("q1w2e3r4t5" * 8, tmp_path / "demo_users.yaml")


def test_a_too_long_demo_password_from_the_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "q1w2e3r4t5" * 8)
    with pytest.raises(InvalidRequest, match="ALPHA_DEMO_PASSWORD.*72"):
        users.demo_password()


def test_a_login_with_an_over_long_password_is_refused_after_one_check(env, monkeypatch):
    svc, _ = env
    r = svc.login("jane", PW + "z" * 80)
    assert not r.ok and r.message == sessions_mod.INCORRECT


# ------------------------------------------------------------------------------------------ malformed users file

def test_a_users_file_that_is_not_utf8_is_a_clear_error_naming_the_file(tmp_path):
    p = tmp_path / "users.yaml"
    p.write_bytes(b"credentials:\n  usernames:\n    j\xe9r\xf4me: {}\n")
    with pytest.raises(users.UsersFileInvalid, match=str(p)):
        users.load_users(p)


def test_a_users_file_path_that_is_a_directory_is_a_clear_error(tmp_path):
    d = tmp_path / "users.yaml"
    d.mkdir()
    with pytest.raises(users.UsersFileInvalid, match=str(d)):
        users.load_users(d)


@pytest.mark.parametrize("key", ["Jane", "jane doe", "ja", "123"])
def test_a_username_key_the_login_can_never_match_is_named(tmp_path, key):
    p = tmp_path / "users.yaml"
    import bcrypt

    h = bcrypt.hashpw(PW.encode(), bcrypt.gensalt(rounds=4)).decode()
    body = f"credentials:\n  usernames:\n    {key if key != '123' else 123}:\n      name: X\n      password: '{h}'\n" \
           "      roles: [ops]\n"
    p.write_text(body)
    if key == "ja":  # a valid name: loads and logs in
        assert users.verify_login("ja", PW, p)["username"] == "ja"
        return
    with pytest.raises(users.UsersFileInvalid, match=r"credentials\.usernames\."):
        users.load_users(p)


# ------------------------------------------------------------------------------------------ timing

def _bcrypt_ops(monkeypatch):
    import bcrypt

    ops = []
    real_hash, real_check = bcrypt.hashpw, bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "hashpw", lambda *a: ops.append("hash") or real_hash(*a))
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: ops.append("check") or real_check(*a))
    return ops


def test_the_first_login_of_a_process_costs_the_same_for_an_unknown_name_and_a_real_one(tmp_path, monkeypatch):
    """The dummy hash an unknown name is checked against was made on the first unknown name: that one attempt
    cost two bcrypt runs (make + check), a real user's wrong password one."""
    p = tmp_path / "users.yaml"
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    users.add_user("jane", "Jane", "jane@example.com", "ops", PW, p)
    ops = _bcrypt_ops(monkeypatch)
    seen = {}
    for name in ("nobody-at-all", "jane"):
        monkeypatch.setattr(users, "_DUMMY", {})  # a fresh console process
        ops.clear()
        assert users.verify_login(name, "wrong-password-000", p) is None
        seen[name] = list(ops)
    assert seen["nobody-at-all"] == seen["jane"], seen


# ------------------------------------------------------------------------------------------ several processes

def test_parallel_guesses_from_several_processes_get_no_more_than_the_allowed_failures(env, db_url):
    """Checked, not a finding: every attempt is counted under the write lock before its password is checked, so
    a burst from several console processes (one Store each) gets exactly MAX_FAILURES unlocked answers."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.adapters.db import Store

    _, clock = env
    procs = [SessionService(Store(db_url), clock) for _ in range(4)]
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: procs[i % 4].login("jane", f"guess-{i:04d}-password"), range(16)))
        assert all(not r.ok for r in results)
        checked = [r for r in results if r.message.startswith(sessions_mod.INCORRECT)]  # counted, then checked
        assert len(checked) == sessions_mod.MAX_FAILURES, [r.message for r in results]
        assert procs[0].attempts("jane").failures == sessions_mod.MAX_FAILURES
        assert not procs[1].login("jane", PW).ok
    finally:
        for p in procs:
            p.store.engine.dispose()
