"""The defaults shipped with the package: the default configuration and the demo leads.

The repository keeps ONE copy of each: ``config/`` and ``data/demo_leads.csv``. A wheel carries them as
``engine/defaults/config/`` and ``engine/defaults/demo_leads.csv`` (setup.py copies them there at build time,
with the patterns below), so an install outside the repository runs ``alpha init`` and ``alpha demo``. In a
checkout the same functions name the repository's own files.

The packaged configuration is read-only (it lives inside site-packages): ``alpha init --new-config DIR`` writes an
editable copy (``write_new_config``) and the user points ``ALPHA_CONFIG_DIR`` at it.

Standard library only: setup.py loads this file by path, in a build environment without the engine's dependencies.
"""
from __future__ import annotations

import shutil
from pathlib import Path

# the configuration files the package ships (relative to the config folder); anything else in a working config
# folder (config/users.yaml: console users and their password hashes) is local state and never shipped or copied
CONFIG_FILES: tuple[str, ...] = (
    "*.json",
    "*.txt",
    "exclusions/*.txt",
    "templates/*.json",
    "templates/*.j2",
)
DEMO_LEADS = "demo_leads.csv"

_PACKAGE = Path(__file__).resolve().parents[1]          # engine/
_INSTALLED = _PACKAGE / "defaults"                        # engine/defaults/ (in a wheel only)
PROJECT_ROOT = _PACKAGE.parent                            # the checkout (meaningful only when not installed)


class NewConfigRefused(Exception):
    """``write_new_config`` would overwrite files, or cannot write where it was asked to. Names every file."""


def installed() -> bool:
    """Whether this engine runs from a built package (the wheel's engine/defaults/ exists), not a checkout."""
    return (_INSTALLED / "config").is_dir()


def packaged_config_dir() -> Path:
    """The default configuration: engine/defaults/config in an installed package, else the checkout's config/."""
    return _INSTALLED / "config" if installed() else PROJECT_ROOT / "config"


def packaged_demo_leads() -> Path:
    """The demo leads `alpha demo` imports: engine/defaults/demo_leads.csv installed, else data/demo_leads.csv."""
    return _INSTALLED / DEMO_LEADS if installed() else PROJECT_ROOT / "data" / DEMO_LEADS


def config_files(config_dir: Path) -> list[Path]:
    """The shipped configuration files found in ``config_dir``, relative to it, sorted (no duplicates)."""
    found = {p.relative_to(config_dir) for pattern in CONFIG_FILES for p in config_dir.glob(pattern) if p.is_file()}
    return sorted(found)


def is_packaged_config(path: str | Path) -> bool:
    """Whether ``path`` lies inside the configuration installed with the package (read-only by contract)."""
    if not installed():
        return False
    try:
        Path(path).resolve().relative_to((_INSTALLED / "config").resolve())
    except ValueError:
        return False
    return True


def write_new_config(dest: str | Path, source: str | Path | None = None) -> list[Path]:
    """Copy the packaged default configuration into ``dest`` (created if missing) and return the files written.

    Refuses, writing nothing, when any of those files already exists in ``dest`` (each one named), or when
    ``dest`` is a file: an operator's edited configuration is never overwritten."""
    src = Path(source) if source is not None else packaged_config_dir()
    target = Path(dest)
    files = config_files(src)
    if not files:
        raise NewConfigRefused(f"{src}: no default configuration files found (the package is incomplete)")
    if target.exists() and not target.is_dir():
        raise NewConfigRefused(f"{target}: exists and is not a folder")
    existing = [target / rel for rel in files if (target / rel).exists()]
    if existing:
        raise NewConfigRefused(f"{target}: refusing to overwrite {len(existing)} existing file(s): "
                               + ", ".join(str(p) for p in existing) + "; nothing was written (move them away, "
                               "or pick an empty folder)")
    written = []
    for rel in files:
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, out)  # contents only: the installed files' read-only modes are not copied
        written.append(out)
    return written
