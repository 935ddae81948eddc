"""Console users: who may log in to the operator console, with which role.

Users live in a YAML file in the structure streamlit-authenticator reads::

    credentials:
      usernames:
        jane:
          name: Jane Doe
          email: jane@example.com
          password: $2b$12$...        # bcrypt hash, never the password
          roles: [ops]

The file is ``$ALPHA_USERS_FILE``, else ``users.yaml`` in the config folder (``$ALPHA_CONFIG_DIR`` or
``./config``). In demo mode (``ALPHA_DEMO=1``) it is ALWAYS ``$ALPHA_DATA_DIR/demo_users.yaml``, whatever
``ALPHA_USERS_FILE`` says, so demo accounts never land in the real users file (and the real file is never
rewritten by demo mode). These variables are read from the environment or, like the engine does, from the
``.env`` file (``$ALPHA_ENV_FILE`` or ``./.env``), so the console and the CLI agree from their first call.
There is no default password: outside demo mode a console without a users file only tells the admin to run
``alpha users add``.

Console logins are checked by ``verify_login`` (one bcrypt check whether or not the user exists, so a wrong
password takes as long for a real user as for an unknown one) and kept server-side by ``engine.services.sessions``.
Headless: no streamlit import here.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections import Counter
from pathlib import Path

import bcrypt
import yaml

from engine.core.envcheck import truthy as _truthy  # the one reading of a boolean setting
from engine.core.errors import AlphaError, InvalidRequest, NotFound

ROLES = ("ae", "approver", "ops", "admin")
DEMO_USERS = {  # username -> (name, role)
    "ae": ("Demo Account Executive", "ae"),
    "approver": ("Demo Approver", "approver"),
    "ops": ("Demo Operations", "ops"),
    "admin": ("Demo Admin", "admin"),
}
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 72  # bcrypt reads no more (bcrypt 5 refuses a longer password instead of cutting it)
BCRYPT_ROUNDS = 12  # tests lower this; 12 costs ~0.2 s per hash
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_COMMON = {"password", "passw0rd", "letmein", "welcome", "qwerty", "admin", "changeme", "123456", "alpha"}


class UsersFileMissing(AlphaError):
    """No users file yet: nobody can log in to the console until an admin adds a user."""


class UsersFileInvalid(AlphaError):
    exit_code = 2


def _load_env() -> None:
    """The .env file into the environment (without overriding it), as App() does: ALPHA_DEMO, ALPHA_USERS_FILE
    and ALPHA_DATA_DIR mean the same thing before and after the engine is built."""
    from engine.core.envfile import load_env_file

    load_env_file()


def demo_mode() -> bool:
    _load_env()
    return _truthy(os.environ.get("ALPHA_DEMO"))


def _data_dir() -> Path:
    from engine.core.envfile import data_dir

    _load_env()
    return data_dir()


def demo_users_file() -> Path:
    """Where demo mode keeps its users: ``$ALPHA_DATA_DIR/demo_users.yaml``, never the production file."""
    return _data_dir() / "demo_users.yaml"


def production_users_file(config_dir: str | Path | None = None) -> Path:
    """The real users file: ``$ALPHA_USERS_FILE``, else ``users.yaml`` in the config folder (``config_dir``: an
    engine's own, else ``$ALPHA_CONFIG_DIR`` or the default)."""
    _load_env()
    env = os.environ.get("ALPHA_USERS_FILE", "").strip()
    if env:
        return Path(env)
    if config_dir is None:
        from engine.core.config import default_config_dir

        config_dir = default_config_dir()
    return Path(config_dir) / "users.yaml"


def users_file(demo: bool | None = None, config_dir: str | Path | None = None) -> Path:
    """The users file the console reads (and approvals check roles in): the demo file in demo mode
    (ALPHA_USERS_FILE is ignored there, so demo mode never touches the real users), else the production file.
    The one definition: engine/services/approvals.py asks it with its engine's ``config_dir``."""
    if demo_mode() if demo is None else demo:
        return demo_users_file()
    return production_users_file(config_dir)


# ------------------------------------------------------------------------------------------ validation

def check_role(role: str) -> str:
    r = (role or "").strip().lower()
    if r not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
    return r


def login_key(username: str | None) -> str:
    """The one reading of a typed username: stripped and lower-cased, never cut short. The lockout counts under
    this key and the login looks up exactly this key, so no other spelling (padding, case) can log in as a user
    while counting its failures elsewhere. Idempotent."""
    return (username or "").strip().lower()


def valid_username(key: str) -> bool:
    return isinstance(key, str) and bool(_USERNAME.match(key))


def check_username(username: str) -> str:
    u = (username or "").strip()
    if not _USERNAME.match(u):
        raise InvalidRequest(f"username {username!r} is not allowed: use 2-64 lowercase letters, digits, '.', '_' "
                             "or '-', starting with a letter or digit")
    return u


def password_problem(password: str, username: str = "") -> str | None:
    """Why a password is too weak, or None."""
    if not password or not password.strip():
        return "the password is empty"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}"
    size = len(password.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        return (f"the password is {size} bytes long in UTF-8; bcrypt uses at most {MAX_PASSWORD_BYTES} "
                "(a shorter passphrase, or fewer accented or non-Latin characters)")
    if len(set(password)) < 5:
        return "the password repeats too few different characters; use at least 5 different ones"
    low = password.lower()
    if username and username.lower() in low:
        return "the password must not contain the username"
    if re.sub(r"[\d\W_]+$", "", low) in _COMMON:
        return "the password is a common word with digits or symbols appended"
    return None


def _check_password(password: str, username: str = "") -> None:
    problem = password_problem(password, username)
    if problem:
        raise InvalidRequest(f"weak password: {problem}")


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8", "surrogatepass"), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


def _verify(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8", "surrogatepass"), hashed.encode())
    except ValueError:
        return False


def hash_cost(hashed: str) -> int | None:
    """The bcrypt cost (log2 rounds) of a hash, or None when it is not a bcrypt hash."""
    return int(hashed[4:6]) if isinstance(hashed, str) and _BCRYPT.match(hashed) else None


_DUMMY: dict[int, str] = {}


def dummy_hash(cost: int) -> str:
    """A bcrypt hash of a random secret at ``cost``, made once per cost: what an unknown username's password is
    checked against, so the check costs the same as for a real user."""
    h = _DUMMY.get(cost)
    if h is None:
        h = _DUMMY[cost] = bcrypt.hashpw(secrets.token_urlsafe(24).encode(), bcrypt.gensalt(rounds=cost)).decode()
    return h


def password_stamp(hashed: str) -> str:
    """A fingerprint of a user's password hash (first 32 hex of its SHA-256): a console session records it at
    login and ends when the user's hash no longer matches it (a new password, by CLI or by editing the file)."""
    return hashlib.sha256((hashed or "").encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------------ file

def _empty() -> dict:
    return {"credentials": {"usernames": {}}}


def _read(path: Path, missing_ok: bool) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return _empty()
        raise UsersFileMissing(
            f"no console users yet ({path} does not exist): add one with "
            "`alpha users add USERNAME --name 'Full Name' --email you@example.com --role admin`") from None
    except UnicodeDecodeError as e:
        raise UsersFileInvalid(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except IsADirectoryError:
        raise UsersFileInvalid(f"{path}: is a directory, not a users file (ALPHA_USERS_FILE names the file)") \
            from None
    except OSError as e:
        raise UsersFileInvalid(f"{path}: cannot be read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UsersFileInvalid(f"{path}: not valid YAML: {e}") from None
    _validate(path, data)
    return data


def _validate(path: Path, data) -> None:
    problems = []
    users = (data.get("credentials") or {}).get("usernames") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("credentials"), dict):
        raise UsersFileInvalid(f"{path}: expected a mapping with 'credentials: usernames: ...'")
    if users is None:
        data["credentials"]["usernames"] = {}
        return
    if not isinstance(users, dict):
        raise UsersFileInvalid(f"{path}: credentials.usernames must be a mapping of username -> user")
    for name, u in users.items():
        where = f"credentials.usernames.{name}"
        if not valid_username(name):  # the login looks up login_key(typed): such a key could never log in
            problems.append(f"{where}: username {name!r} cannot log in: use 2-64 lowercase letters, digits, '.', "
                            "'_' or '-', starting with a letter or digit (quote a name made only of digits)")
        if not isinstance(u, dict):
            problems.append(f"{where}: must be a mapping with name, email, password, roles")
            continue
        if not isinstance(u.get("password"), str) or not _BCRYPT.match(u["password"]):
            problems.append(f"{where}.password: must be a bcrypt hash (set it with `alpha users set-password {name}`)")
        roles = u.get("roles")
        if not isinstance(roles, list) or not roles:
            problems.append(f"{where}.roles: must be a non-empty list drawn from {', '.join(ROLES)}")
        else:
            bad = [r for r in roles if r not in ROLES]
            if bad:
                problems.append(f"{where}.roles: unknown role(s) {', '.join(map(str, bad))}; "
                                f"allowed: {', '.join(ROLES)}")
    if problems:
        raise UsersFileInvalid(f"{path}: invalid users file:\n" + "\n".join(f"  - {p}" for p in problems))


def _write(path: Path, data: dict) -> None:
    from engine.core.config import refuse_packaged_config_write

    refuse_packaged_config_write(path)  # never into the read-only defaults installed with the package
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".users.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Console users (alpha users add|remove|set-password). Passwords are bcrypt hashes.\n")
            yaml.safe_dump(data, f, sort_keys=True, default_flow_style=False, allow_unicode=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _path(path: str | Path | None) -> Path:
    return Path(path) if path else users_file()


# ------------------------------------------------------------------------------------------ services

def load_users(path: str | Path | None = None) -> dict:
    """The whole users file (validated), ready for streamlit_authenticator.Authenticate(credentials=...)."""
    return _read(_path(path), missing_ok=False)


def roles_of(username: str | None, path: str | Path | None = None) -> list[str]:
    """The user's roles as the file says NOW ([] for an unknown user): the console checks this on every page."""
    if not username:
        return []
    u = load_users(path)["credentials"]["usernames"].get(username.lower())
    return list(u.get("roles") or []) if u else []


def find_user(username: str | None, path: str | Path | None = None) -> dict | None:
    """The user's entry as the file says NOW (``username``, ``name``, ``roles``, ``password`` hash), or None."""
    key = login_key(username)
    u = load_users(path)["credentials"]["usernames"].get(key) if valid_username(key) else None
    if not u:
        return None
    return {"username": key, "name": u.get("name") or key, "roles": list(u.get("roles") or []),
            "password": u.get("password") or ""}


def verify_login(username: str | None, password: str | None, path: str | Path | None = None) -> dict | None:
    """The user (as ``find_user``) when ``password`` is theirs, else None. Exactly one bcrypt check either way: an
    unknown username (or a missing users file) is checked against a dummy hash of the cost the file's users have,
    so the time taken does not tell which usernames exist."""
    try:
        users = load_users(path)["credentials"]["usernames"]
    except UsersFileMissing:
        users = {}
    key = login_key(username)
    u = users.get(key) if valid_username(key) else None  # a key no user can have matches nobody
    costs = Counter(c for c in (hash_cost(v.get("password", "")) for v in users.values()) if c is not None)
    cost = costs.most_common(1)[0][0] if costs else BCRYPT_ROUNDS
    dummy = dummy_hash(cost)  # made (once) whoever is named: the first login of a process costs the same for all
    if u and hash_cost(u.get("password", "")) is not None:
        if not _verify(password or "", u["password"]):
            return None
        return {"username": key, "name": u.get("name") or key, "roles": list(u.get("roles") or []),
                "password": u["password"]}
    _verify(password or "", dummy)
    return None


def list_users(path: str | Path | None = None) -> list[dict]:
    users = load_users(path)["credentials"]["usernames"]
    return [{"username": k, "name": v.get("name"), "email": v.get("email"), "roles": v.get("roles")}
            for k, v in sorted(users.items())]


def add_user(username: str, name: str, email: str, role: str, password: str,
             path: str | Path | None = None) -> dict:
    """Add a user with one role. Refuses an existing username, an unknown role and a weak password."""
    p = _path(path)
    username = check_username(username)
    role = check_role(role)
    if not (name or "").strip():
        raise InvalidRequest("a name is required (--name), e.g. 'Jane Doe'")
    if not _EMAIL.match((email or "").strip()):
        raise InvalidRequest(f"{email!r} is not an email address (--email)")
    _check_password(password, username)
    data = _read(p, missing_ok=True)
    users = data["credentials"]["usernames"]
    if username in users:
        raise InvalidRequest(f"user {username!r} already exists in {p}; use `alpha users set-password {username}` "
                             f"or `alpha users remove {username}` first")
    users[username] = {"name": name.strip(), "email": email.strip().lower(), "password": hash_password(password),
                       "roles": [role]}
    _write(p, data)
    return {"username": username, "name": name.strip(), "email": email.strip().lower(), "roles": [role],
            "file": str(p)}


def remove_user(username: str, path: str | Path | None = None) -> None:
    p = _path(path)
    data = _read(p, missing_ok=False)
    users = data["credentials"]["usernames"]
    key = login_key(username)
    if key not in users:
        raise NotFound(f"no user {username!r} in {p}; users: {', '.join(sorted(users)) or 'none'}")
    del users[key]
    _write(p, data)


def set_password(username: str, password: str, path: str | Path | None = None) -> None:
    p = _path(path)
    data = _read(p, missing_ok=False)
    users = data["credentials"]["usernames"]
    key = login_key(username)
    if key not in users:
        raise NotFound(f"no user {username!r} in {p}; add it with `alpha users add {username} ...`")
    _check_password(password, key)
    users[key]["password"] = hash_password(password)
    _write(p, data)


def demo_users(password: str, path: str | Path | None = None) -> list[str]:
    """Seed (or re-key) the demo accounts ae/approver/ops/admin, each with its own role and ``password``, in the
    demo users file (``demo_users_file()`` unless ``path`` names another one). Refuses the production users file:
    demo mode never writes the real users, not even when ALPHA_USERS_FILE names the demo file itself (then that
    file is what a console outside demo mode logs in with: the demo accounts and password would be real logins,
    and a real ``admin`` there would get the demo password)."""
    p = Path(path) if path else demo_users_file()
    prod = production_users_file()
    if p.resolve() == prod.resolve():
        if p.resolve() == demo_users_file().resolve():
            raise InvalidRequest(f"demo users are never written into the production users file: ALPHA_USERS_FILE "
                                 f"names the demo users file {p}, so outside demo mode the console would log in "
                                 "with the demo accounts; point ALPHA_USERS_FILE at the real users file (e.g. "
                                 "config/users.yaml), or unset it")
        raise InvalidRequest(f"demo users are never written into the production users file {prod}; demo mode "
                             f"keeps them in {demo_users_file()}")
    _check_password(password)
    data = _read(p, missing_ok=True)
    users = data["credentials"]["usernames"]
    changed = False
    for username, (name, role) in DEMO_USERS.items():
        u = users.get(username)
        if u is None or u.get("roles") != [role] or not _verify(password, u.get("password", "")):
            users[username] = {"name": name, "email": f"{username}@demo.invalid",
                               "password": hash_password(password), "roles": [role]}
            changed = True
    if changed:
        _write(p, data)
    return list(DEMO_USERS)


def demo_password() -> tuple[str, bool]:
    """(password, generated): ALPHA_DEMO_PASSWORD, else a fresh random one the caller must show in the log."""
    env = os.environ.get("ALPHA_DEMO_PASSWORD", "")
    if env:
        problem = password_problem(env)
        if problem:
            raise InvalidRequest(f"ALPHA_DEMO_PASSWORD is too weak: {problem}")
        return env, False
    return secrets.token_urlsafe(12), True
