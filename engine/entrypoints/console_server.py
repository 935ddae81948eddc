"""Starting the operator console (Streamlit) from the engine's command line: `alpha console` and `alpha dev`.

The console's dependencies (streamlit, plotly) are the optional ``console`` extra, so a worker or webhook host
installs plain ``alpha-swarm`` and stays small. A command that needs the console says so in one line (install
``alpha-swarm[console]``) instead of failing in a child process with a traceback.

The console's entry script is ``console/app.py`` beside the ``engine`` package: the checkout's in a checkout, the
installed package's in site-packages (the wheel ships console/ and, inside it, the pages). It is located by path,
never imported: the console sits above the engine's layers. Headless: no streamlit import here.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from engine.core.errors import AlphaError

CONSOLE_MODULES = ("streamlit", "plotly")  # what the console imports that plain alpha-swarm does not install
INSTALL_HINT = "pip install 'alpha-swarm[console]'"


class ConsoleNotInstalled(AlphaError):
    exit_code = 2


def console_script() -> Path:
    """console/app.py beside the engine package (the checkout's, or the installed package's)."""
    return Path(__file__).resolve().parents[2] / "console" / "app.py"


def missing_console_modules() -> list[str]:
    """Which of the console's own dependencies cannot be imported here (without importing them)."""
    missing = []
    for name in CONSOLE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install, or a module blocked with sys.modules[name] = None
            found = False
        if not found:
            missing.append(name)
    return missing


def require_console(what: str = "the console") -> Path:
    """The console's entry script; ConsoleNotInstalled (one clear line) when the console extra or the script is
    missing."""
    missing = missing_console_modules()
    if missing:
        raise ConsoleNotInstalled(f"{what} needs the operator console's dependencies ({', '.join(missing)} not "
                                  f"installed here): install alpha-swarm[console], e.g. {INSTALL_HINT}. A worker "
                                  "or webhook host does not need them.")
    script = console_script()
    if not script.is_file():
        raise ConsoleNotInstalled(f"{what}: the console's entry script {script} is missing (an incomplete install); "
                                  f"reinstall with {INSTALL_HINT}")
    return script


def console_argv(host: str, port: int, script: Path | None = None) -> list[str]:
    """The command that serves the console: `streamlit run console/app.py`, headless, bound to ``host:port``,
    no usage statistics, no file watcher (the code does not change under a running server)."""
    return [sys.executable, "-m", "streamlit", "run", str(script or console_script()),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]


def run_console(host: str, port: int) -> None:
    """Replace this process with the Streamlit server (same pid: a supervisor's signals reach Streamlit)."""
    argv = console_argv(host, port, require_console("`alpha console`"))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
