"""Console users file: structure, validation, clear errors and demo seeding."""
from __future__ import annotations

import os
import stat

import bcrypt
import pytest
import yaml

import engine.adapters.users as users
from engine.core.errors import InvalidRequest, NotFound
from engine.adapters.users import (UsersFileInvalid, UsersFileMissing, add_user, demo_password, demo_users,
                          list_users, load_users, password_problem, remove_user, roles_of, set_password, users_file,
                          verify_login)

PW = "a-strong-password-9"


@pytest.fixture(autouse=True)
def _fast(monkeypatch, tmp_path):
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 4)
    for var in ("ALPHA_USERS_FILE", "ALPHA_DEMO", "ALPHA_DEMO_PASSWORD", "ALPHA_COOKIE_KEY", "ALPHA_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def path(tmp_path, monkeypatch):
    p = tmp_path / "users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(p))
    return p


def test_add_user_writes_the_streamlit_authenticator_structure(path):
    r = add_user("jane", "Jane Doe", "Jane@Example.com", "ops", PW)
    assert r == {"username": "jane", "name": "Jane Doe", "email": "jane@example.com", "roles": ["ops"],
                 "file": str(path)}
    raw = yaml.safe_load(path.read_text())
    u = raw["credentials"]["usernames"]["jane"]
    assert set(u) == {"name", "email", "password", "roles"}
    assert u["roles"] == ["ops"] and u["password"] != PW
    assert bcrypt.checkpw(PW.encode(), u["password"].encode())
    assert PW not in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_users() == raw
    assert (roles_of("jane") == ["ops"] and roles_of("JANE") == ["ops"] and roles_of("nobody") == []
            and roles_of(None) == [])
    assert list_users() == [{"username": "jane", "name": "Jane Doe", "email": "jane@example.com", "roles": ["ops"]}]


def test_the_file_works_with_streamlit_authenticator(path):
    from streamlit_authenticator.models.authentication_model import AuthenticationModel

    add_user("jane", "Jane Doe", "jane@example.com", "admin", PW)
    model = AuthenticationModel(load_users()["credentials"], auto_hash=False)
    assert model.check_credentials("jane", PW)
    assert not model.check_credentials("jane", PW + "x")


@pytest.mark.parametrize("kwargs,message", [
    ({"role": "root"}, "unknown role 'root'; allowed: ae, approver, ops, admin"),
    ({"password": ""}, "weak password: the password is empty"),
    ({"password": "short1!"}, "use at least 12"),
    ({"password": "aaaaaaaaaaaaaaaa"}, "at least 5 different"),
    ({"password": "password123456!"}, "common word"),
    ({"password": "jane-is-great-123"}, "must not contain the username"),
    ({"username": "Bad Name"}, "username 'Bad Name' is not allowed"),
    ({"email": "not-an-email"}, "is not an email address"),
    ({"name": " "}, "a name is required"),
])
def test_add_user_refuses_with_a_clear_message(path, kwargs, message):
    args = {"username": "jane", "name": "Jane", "email": "jane@example.com", "role": "ae", "password": PW} | kwargs
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        add_user(**args)
    assert not path.exists()


def test_duplicate_user_is_refused(path):
    add_user("jane", "Jane", "jane@example.com", "ae", PW)
    with pytest.raises(InvalidRequest, match="user 'jane' already exists"):
        add_user("jane", "Jane Again", "jane2@example.com", "admin", PW)
    assert roles_of("jane") == ["ae"]


def test_remove_and_set_password(path):
    add_user("jane", "Jane", "jane@example.com", "ae", PW)
    add_user("bob", "Bob", "bob@example.com", "approver", PW)
    set_password("bob", "another-good-password-1")
    h = load_users()["credentials"]["usernames"]["bob"]["password"]
    assert bcrypt.checkpw(b"another-good-password-1", h.encode())
    with pytest.raises(InvalidRequest, match="weak password"):
        set_password("bob", "weak")
    with pytest.raises(NotFound, match="no user 'carol'"):
        set_password("carol", PW)
    remove_user("jane")
    assert [u["username"] for u in list_users()] == ["bob"]
    with pytest.raises(NotFound, match="no user 'jane'.*users: bob"):
        remove_user("jane")


def test_missing_file_says_how_to_add_the_first_user(path):
    with pytest.raises(UsersFileMissing, match="alpha users add"):
        load_users()
    with pytest.raises(UsersFileMissing):
        remove_user("jane")


def test_invalid_files_are_refused_naming_the_problem(path):
    path.write_text("credentials: [unclosed")
    with pytest.raises(UsersFileInvalid, match="not valid YAML"):
        load_users()
    path.write_text(yaml.safe_dump({"credentials": {"usernames": {
        "jane": {"name": "J", "email": "j@example.com", "password": "plaintext", "roles": ["god"]}}}}))
    with pytest.raises(UsersFileInvalid) as e:
        load_users()
    assert "credentials.usernames.jane.password: must be a bcrypt hash" in str(e.value)
    assert "unknown role(s) god" in str(e.value)


def test_demo_users_seed_four_roles_idempotently(tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHA_DEMO", "1")
    path = tmp_path / "data" / "demo_users.yaml"
    assert demo_users(PW) == ["ae", "approver", "ops", "admin"]
    for name in ("ae", "approver", "ops", "admin"):
        assert roles_of(name) == [name]
    before = path.stat().st_mtime_ns, path.read_text()
    demo_users(PW)  # same password: nothing rewritten
    assert (path.stat().st_mtime_ns, path.read_text()) == before
    demo_users("a-new-demo-password-2")
    h = load_users()["credentials"]["usernames"]["ops"]["password"]
    assert bcrypt.checkpw(b"a-new-demo-password-2", h.encode())
    with pytest.raises(InvalidRequest, match="weak password"):
        demo_users("")


def test_users_file_location(tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(tmp_path / "cfg"))
    assert users_file() == tmp_path / "cfg" / "users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(tmp_path / "x.yaml"))
    assert users_file() == tmp_path / "x.yaml"
    monkeypatch.setenv("ALPHA_DEMO", "1")  # demo mode: always the demo file, whatever ALPHA_USERS_FILE says
    assert users_file() == tmp_path / "data" / "demo_users.yaml"  # ALPHA_DATA_DIR from tests/conftest.py


def _env_file(tmp_path, monkeypatch, **values) -> None:
    """Values only in the .env file (ALPHA_ENV_FILE): unset in the environment, restored after the test."""
    for k in values:
        monkeypatch.setenv(k, "placeholder")  # recorded, so what load_env_file sets is undone after the test
        monkeypatch.delenv(k)
    env = tmp_path / "test.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    monkeypatch.setenv("ALPHA_ENV_FILE", str(env))


@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_demo_mode_never_writes_the_production_users_file(tmp_path, monkeypatch, where):
    """Seen: ALPHA_DEMO=1 with ALPHA_USERS_FILE (in the environment, or only in .env) wrote the demo users into the
    production file and replaced the real admin's password."""
    prod = tmp_path / "prod-users.yaml"
    monkeypatch.setenv("ALPHA_USERS_FILE", str(prod))
    add_user("boss", "Real Admin", "boss@example.com", "admin", PW)
    add_user("admin", "Real Admin Two", "admin@example.com", "admin", "the-real-boss-secret-5")
    before = prod.read_bytes()
    if where == "environment":
        monkeypatch.setenv("ALPHA_DEMO", "1")
    else:
        _env_file(tmp_path, monkeypatch, ALPHA_DEMO="1", ALPHA_USERS_FILE=str(prod))
    demo = tmp_path / "data" / "demo_users.yaml"
    assert users_file() == demo
    assert demo_users("a-demo-password-for-t1") == ["ae", "approver", "ops", "admin"]
    assert prod.read_bytes() == before  # untouched: the real admin keeps their password
    assert roles_of("approver") == ["approver"] and roles_of("boss") == []  # the console reads the demo file
    with pytest.raises(InvalidRequest, match="never written into the production users file"):
        demo_users("a-demo-password-for-t1", prod)
    assert prod.read_bytes() == before
    assert users_file(demo=False) == prod


def test_users_file_from_dotenv_before_the_engine_is_built(tmp_path, monkeypatch):
    """The console and the CLI read ALPHA_USERS_FILE from .env at their first call, as App() does later."""
    _env_file(tmp_path, monkeypatch, ALPHA_USERS_FILE=str(tmp_path / "from-dotenv.yaml"))
    assert users_file() == tmp_path / "from-dotenv.yaml"


def test_verify_login_checks_one_password_and_stamps_the_hash(path):
    add_user("jane", "Jane Doe", "jane@example.com", "ops", PW)
    u = verify_login("JANE ", PW)
    assert u["username"] == "jane" and u["roles"] == ["ops"] and u["name"] == "Jane Doe"
    assert verify_login("jane", PW + "x") is None and verify_login("nobody", PW) is None
    assert verify_login("jane", "") is None and verify_login(None, None) is None
    stamp = users.password_stamp(u["password"])
    assert len(stamp) == 32 and stamp != users.password_stamp(users.hash_password(PW))  # new salt, new stamp
    set_password("jane", "another-good-password-1")
    assert users.password_stamp(users.find_user("jane")["password"]) != stamp


def test_demo_password(monkeypatch):
    p, generated = demo_password()
    assert generated and password_problem(p) is None
    assert demo_password()[0] != p
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "the-demo-password-1")
    assert demo_password() == ("the-demo-password-1", False)
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "weak")
    with pytest.raises(InvalidRequest, match="ALPHA_DEMO_PASSWORD is too weak"):
        demo_password()


def test_engine_users_is_headless():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(users))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(tree)
                                     if isinstance(n, ast.ImportFrom)}
    assert "streamlit" not in imported and "streamlit_authenticator" not in imported
