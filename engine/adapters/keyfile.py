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
