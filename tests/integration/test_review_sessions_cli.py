"""Review of issue 13 item 2 (demo users only ever in the demo file), from the CLI side: with ALPHA_DEMO=1 left
on (in the environment or only in .env), `alpha users set-password admin` changed the DEMO admin and said only
"password of admin changed"; whoever meant to rotate the real admin's password believed it done while the real
one still worked. Every change now names the file it went to, and says so plainly in demo mode."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import engine.adapters.users as users
from engine.entrypoints.cli import cli

OLD = "the-old-root-password-1"
NEW = "a-brand-new-password-2"


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_USERS_FILE", "ALPHA_DATA_DIR", "ALPHA_ENV_FILE",
                "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    prod, data = tmp_path / "prod-users.yaml", tmp_path / "data"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(prod))
    monkeypatch.setenv("ALPHA_DATA_DIR", str(data))
    users.add_user("admin", "Real Admin", "admin@example.com", "admin", OLD, prod)
    users.demo_users("the-demo-password-3", data / "demo_users.yaml")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'none' / 'missing.db'}")  # sessions: best effort
    return prod, data / "demo_users.yaml"


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_set_password_in_demo_mode_says_it_changed_the_demo_file_not_the_production_one(files, where,
                                                                                        monkeypatch, tmp_path):
    prod, demo = files
    if where == "environment":
        monkeypatch.setenv("ALPHA_DEMO", "1")
    else:
        (tmp_path / ".env").write_text("ALPHA_DEMO=1\n")
    before = prod.read_bytes()
    out = CliRunner().invoke(cli, ["users", "set-password", "admin"], input=f"{NEW}\n{NEW}\n")
    assert out.exit_code == 0, out.output
    assert prod.read_bytes() == before  # demo mode never writes the production file
    assert users.verify_login("admin", NEW, demo) and users.verify_login("admin", OLD, prod)
    assert "DEMO users file" in out.output and str(demo) in out.output, out.output
    assert f"production users file {prod} is unchanged" in out.output, out.output


def test_outside_demo_mode_the_change_names_the_production_file(files):
    prod, demo = files
    out = CliRunner().invoke(cli, ["users", "set-password", "admin"], input=f"{NEW}\n{NEW}\n")
    assert out.exit_code == 0, out.output
    assert f"password of admin changed in {prod}" in out.output and "DEMO" not in out.output
    assert users.verify_login("admin", NEW, prod)


def test_an_admin_can_end_a_lockout_someone_else_caused(app_factory, db_url, tmp_path, monkeypatch):
    """The lockout is per name, so anyone who reaches the login page can keep 'admin' locked (one wrong password
    every few minutes), and nothing but waiting let the real admin in: `alpha users unlock` ends it, audited."""
    from sqlmodel import select

    from engine.adapters.models import AuditEntry
    from engine.services.sessions import MAX_FAILURES, SessionService

    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_DEMO", "ALPHA_DEMO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALPHA_USERS_FILE", str(tmp_path / "users.yaml"))
    app = app_factory()
    users.add_user("admin", "Real Admin", "admin@example.com", "admin", OLD)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    svc = SessionService(app.store)
    for i in range(MAX_FAILURES + 2):
        svc.login("admin", f"attacker-guess-{i:03d}")
    assert svc.login("admin", OLD).locked
    out = CliRunner().invoke(cli, ["users", "unlock", "Admin", "--actor", "root"])
    assert out.exit_code == 0, out.output
    assert f"{MAX_FAILURES} failed login(s) forgotten" in out.output  # attempts while locked are not counted
    assert svc.login("admin", OLD).ok
    with app.store.read() as s:
        (row,) = s.exec(select(AuditEntry).where(AuditEntry.event == "console_unlock")).all()
    assert row.actor == "cli:root" and json.loads(row.data)["username"] == "admin"
    out = CliRunner().invoke(cli, ["users", "unlock", "admin"])
    assert out.exit_code == 0 and "admin was not locked" in out.output
