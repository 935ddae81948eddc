"""The process environment's two file-system facts every layer may need: the .env file and the data folder.

They live in core (not in engine.app, where they were) so that adapters can read them without importing the
composition root; engine.app re-exports both.
"""
from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def env_file_path(env_file: str | Path | None = None) -> Path:
    """The .env file: ``env_file``, else $ALPHA_ENV_FILE, else .env in the working directory."""
    return Path(env_file or os.environ.get("ALPHA_ENV_FILE") or Path.cwd() / ".env")


def load_env_file(env_file: str | Path | None = None) -> None:
    """Load .env into the environment without overriding it. EMERGENCY_STOP is deliberately NOT copied:
    it is read from the file on every decision so that editing .env stops running processes."""
    path = env_file_path(env_file)
    if not path.is_file():
        return
    for k, v in dotenv_values(path).items():
        if k == "EMERGENCY_STOP" or v is None:
            continue
        os.environ.setdefault(k, v)


def data_dir() -> Path:
    """Where generated local state lives (keys, demo users, checkpoints): $ALPHA_DATA_DIR, else .data."""
    return Path(os.environ.get("ALPHA_DATA_DIR") or ".data")
