"""Second review of issue 13 item 2 ("demo users only ever in the demo file"): demo actions and production
sessions on one database.

Console sessions are rows keyed by username in the database; demo mode and production read different users files
but may share a database (one machine, the default DATABASE_URL, or a demo pointed at the production database).
Seen: with ALPHA_DEMO=1, `alpha users set-password admin` (meant for, and applied to, the DEMO admin), `alpha users
remove admin` and `alpha users revoke admin` ended every session named admin, the production admin's included;
and a demo console shown a production session cookie (same host, another port: the browser sends it) revoked that
session because its user was not in the demo file or had another password there. Also: `demo_users` still wrote
when ALPHA_USERS_FILE named the demo file itself, i.e. into the file a console outside demo mode logs in with.
"""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

import engine.adapters.users as users
from engine.core.errors import InvalidRequest
from engine.entrypoints.cli import cli
from engine.services.sessions import SessionService

REAL = "the-real-root-secret-1"
DEMO = "the-demo-password-for-2"
NEW = "a-new-demo-password-3"


@pytest.fixture
def two(app_factory, db_url, tmp_path, monkeypatch):
    """A production users file (admin, jane) and the demo file (ae/approver/ops/admin) over one database, with a
    production session of admin and of jane and a demo session of admin."""
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_ENV_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    prod, data = tmp_path / "prod-users.yaml", tmp_path / "data"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(prod))
    monkeypatch.setenv("ALPHA_DATA_DIR", str(data))
    app = app_factory()
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    users.add_user("admin", "Real Admin", "admin@example.com", "admin", REAL, prod)
    users.add_user("jane", "Jane Real", "jane@example.com", "ops", REAL, prod)
    demo = data / "demo_users.yaml"
    users.demo_users(DEMO, demo)
    production = SessionService(app.store, users_path=prod)  # the CLI and the consoles run on the system clock
    demo_svc = SessionService(app.store, users_path=demo)
    tokens = {"prod_admin": production.login("admin", REAL).token, "prod_jane": production.login("jane", REAL).token,
              "demo_admin": demo_svc.login("admin", DEMO).token}
    assert all(tokens.values())
    return production, demo_svc, tokens


def _run(*args: str, input: str | None = None):
    out = CliRunner().invoke(cli, ["users", *args], input=input)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize("command", ["set-password", "remove", "revoke"])
def test_a_demo_mode_user_command_never_ends_a_production_users_session(two, monkeypatch, command):
    production, demo_svc, tokens = two
    monkeypatch.setenv("ALPHA_DEMO", "1")
    args = {"set-password": (["set-password", "admin"], f"{NEW}\n{NEW}\n"), "remove": (["remove", "admin"], None),
            "revoke": (["revoke", "admin"], None)}[command]
    out = _run(*args[0], input=args[1])
    assert "1 open console session(s) of admin ended" in out, out
    assert production.check(tokens["prod_admin"]).username == "admin", "a demo action ended production's admin"
    assert demo_svc.check(tokens["demo_admin"]).username is None  # the demo admin's session did end


def test_demo_mode_revoke_of_a_name_only_production_has_ends_nothing(two, monkeypatch):
    production, _, tokens = two
    monkeypatch.setenv("ALPHA_DEMO", "1")
    out = _run("revoke", "jane")
    assert "no session ended" in out, out
    assert production.check(tokens["prod_jane"]).username == "jane"


def test_outside_demo_mode_the_commands_still_end_the_production_sessions(two):
    production, _, tokens = two
    out = _run("set-password", "admin", input=f"{NEW}\n{NEW}\n")
    assert "1 open console session(s) of admin ended" in out, out
    assert production.check(tokens["prod_admin"]).username is None
    assert _run("revoke", "jane").startswith("1 open console session(s) of jane ended")
    assert production.check(tokens["prod_jane"]).username is None


def test_a_demo_console_shown_a_production_cookie_refuses_it_without_ending_it(two, monkeypatch):
    """Same host, another port: the browser sends the production console's cookie to the demo console."""
    production, demo_svc, tokens = two
    monkeypatch.setenv("ALPHA_DEMO", "1")
    jane = demo_svc.check(tokens["prod_jane"])  # no jane in the demo file
    admin = demo_svc.check(tokens["prod_admin"])  # another admin, another password
    assert jane.username is None and admin.username is None  # refused: never a login across the two files
    monkeypatch.delenv("ALPHA_DEMO")
    assert production.check(tokens["prod_jane"]).username == "jane", "a demo console ended a production session"
    assert production.check(tokens["prod_admin"]).username == "admin"


def test_outside_demo_mode_a_changed_password_still_ends_the_session_for_good(two):
    production, _, tokens = two
    users.set_password("admin", NEW)  # an edit without the CLI
    assert production.check(tokens["prod_admin"]).reason == "password_changed"
    states = sorted(r["state"] for r in production.sessions("admin", include_ended=True))
    assert states == ["open", "revoked (password_changed)"], states  # revoked, not only refused; the demo one open


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_demo_mode_refuses_to_seed_when_the_production_users_file_is_the_demo_file(tmp_path, monkeypatch, where):
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_USERS_FILE", "ALPHA_ENV_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    monkeypatch.setenv("ALPHA_DATA_DIR", str(data))
    demo = data / "demo_users.yaml"
    users.add_user("admin", "Real Admin", "admin@example.com", "admin", REAL, demo)  # the real admin lives here
    before = demo.read_bytes()
    if where == "environment":
        monkeypatch.setenv("ALPHA_USERS_FILE", str(demo))
        monkeypatch.setenv("ALPHA_DEMO", "1")
    else:
        for k in ("ALPHA_USERS_FILE", "ALPHA_DEMO"):  # restored after the test whatever load_env_file sets
            monkeypatch.setenv(k, "placeholder")
            monkeypatch.delenv(k)
        (tmp_path / ".env").write_text(f"ALPHA_USERS_FILE={demo}\nALPHA_DEMO=1\n")
    with pytest.raises(InvalidRequest, match="ALPHA_USERS_FILE names the demo users file"):
        users.demo_users(DEMO)
    assert demo.read_bytes() == before
    assert users.verify_login("admin", REAL, demo) and not users.verify_login("admin", DEMO, demo)
