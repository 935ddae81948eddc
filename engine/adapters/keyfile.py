"""Keys generated once and kept in a file only this user can read (for single-host setups; several hosts
should set the matching environment variable instead)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def generated_key(path: str | Path) -> str:
    """The key in ``path``, creating it (random, mode 0600) on first use; safe when processes race."""
    path = Path(path)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


# ---------------------------------------------------------------------------------------------- unsubscribe secret

SECRET_ENV = "ALPHA_UNSUBSCRIBE_SECRET"


def load_secret(data_dir: str | Path = ".data") -> bytes:
    """ALPHA_UNSUBSCRIBE_SECRET, or a key generated once into .data/unsubscribe.key (kept out of git): the secret
    engine.rules.unsubscribe signs and checks tokens with.

    Several hosts must share one secret: set the variable on each of them (``require_shared_secret`` refuses
    to start a long-running process on PostgreSQL, the multi-host storage, without it).
    """
    env = os.environ.get(SECRET_ENV, "")
    if env:
        return env.encode()
    return generated_key(Path(data_dir) / "unsubscribe.key").encode()


def require_shared_secret(dialect: str, what: str = "this process") -> None:
    """Refuse (EnvError, exit code 2) to run ``what`` on a multi-host database (anything but SQLite) unless
    ALPHA_UNSUBSCRIBE_SECRET is set: a key generated per host would make each host mint and verify different
    unsubscribe tokens, so a link sent by one host would be refused by another host's receiver or worker."""
    if dialect == "sqlite" or os.environ.get(SECRET_ENV, ""):
        return
    from engine.core.envcheck import SECRET_COMMAND, EnvError, Problem

    raise EnvError([Problem(
        SECRET_ENV, None,
        f"not set, and {what} runs on {dialect}, the storage shared by several hosts: a key generated per host "
        "would make each host sign unsubscribe links differently, so a link sent by one host would be refused by "
        "another",
        f"generate one with `{SECRET_COMMAND}` and set the SAME value on every host (worker, webhook receiver, "
        "console, scheduler); a generated key file is only used on SQLite (one host)")])
