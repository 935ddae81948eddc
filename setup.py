"""Build hook (the project's metadata is in pyproject.toml): the wheel also carries what the repository keeps
outside the Python packages, so an install outside the repository runs `alpha init`, `alpha demo` and the console.

Copied at build time, never kept twice in the repository:
  config/ (the shipped patterns of engine/core/defaults.py)  -> engine/defaults/config/
  data/demo_leads.csv                                        -> engine/defaults/demo_leads.csv
  pages/*.py                                                 -> console/pages/   (console/app.py finds them there)
  .streamlit/config.toml                                     -> console/.streamlit/config.toml (Streamlit reads the
                                                                main script's .streamlit/ folder, whatever the cwd)
An editable install (`make setup`) copies nothing: the checkout's own files are used.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _defaults():
    """engine/core/defaults.py, loaded by path: the build environment has setuptools, not the engine's dependencies."""
    spec = importlib.util.spec_from_file_location("_alpha_defaults", ROOT / "engine" / "core" / "defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped_files() -> list[tuple[Path, str]]:
    """(source in the repository, destination inside the wheel) for every file copied beside the packages."""
    d = _defaults()
    config = [(ROOT / "config" / rel, f"engine/defaults/config/{rel.as_posix()}")
              for rel in d.config_files(ROOT / "config")]
    pages = [(p, f"console/pages/{p.name}") for p in sorted((ROOT / "pages").glob("*.py"))]
    if not any(dest.endswith("/production.json") for _, dest in config) or not pages:
        raise SystemExit(f"{ROOT}: config/production.json or pages/*.py not found: cannot build a complete wheel")
    files = config + pages + [
        (ROOT / "data" / d.DEMO_LEADS, f"engine/defaults/{d.DEMO_LEADS}"),
        (ROOT / ".streamlit" / "config.toml", "console/.streamlit/config.toml"),
    ]
    missing = [str(src) for src, _ in files if not src.is_file()]
    if missing:
        raise SystemExit(f"cannot build a complete wheel: missing {', '.join(missing)}")
    return files


class BuildPy(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src, dest in shipped_files():
            target = Path(self.build_lib) / dest
            self.mkpath(str(target.parent))
            self.copy_file(str(src), str(target), preserve_mode=False)


setup(cmdclass={"build_py": BuildPy})
