"""What every command group shares: the common options, who the actor is, opening the engine, reading input and
printing JSON. Command modules import from here; nothing here imports a command module.

Commands call ``common.open_app()`` through the module (not a name imported from it), so one replacement of
``engine.entrypoints.cli.common.open_app`` (tests hand in an engine they built) reaches every command."""
from __future__ import annotations

import getpass
import io
import json
import os
import sys
from typing import IO

import typer

from engine.core.errors import AlphaError

ActorOpt = typer.Option(None, "--actor", help="Who is doing this (default: $ALPHA_ACTOR or the OS user).")
ReasonOpt = typer.Option(..., "--reason", help="Why (required; recorded in the audit trail).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def default_actor() -> str:
    try:
        return os.environ.get("ALPHA_ACTOR") or getpass.getuser()
    except Exception:
        return "unknown"


def open_app(ready: bool = True, serving: str | None = None):
    """The engine (a bad environment or configuration is refused, every problem listed); ``ready``: the database
    must be reachable and migrated; ``serving``: a long-running process, refused on PostgreSQL (several hosts)
    without a shared ALPHA_UNSUBSCRIBE_SECRET."""
    from engine.app import App

    app = App()
    if ready:
        app.store.check_ready()
    if serving:
        app.require_shared_secret(serving)
    return app


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def open_input(path: str) -> IO[str]:
    """A text stream; bytes that are not UTF-8 are kept as surrogate escapes, so one bad line is refused on its
    own (it names the line) instead of ending the batch."""
    if path == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):  # else not a real text stream (tests, embedding)
            try:
                sys.stdin.reconfigure(errors="surrogateescape")
            except ValueError:
                pass
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise AlphaError(f"cannot read {path}: {e.strerror}") from None


def read_json(text: str) -> tuple[object, str | None]:
    """(value, None), or (None, why ``text`` cannot be read as JSON: not UTF-8, not JSON, nested too deep, a
    number too long). Never raises."""
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return None, "not UTF-8 text"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, f"not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    except ValueError as e:
        return None, f"not valid JSON: {e}"


def progress(label: str):
    """A progress bar on stderr (so JSON on stdout stays clean); returns (callback, context manager)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # redrawn by the callbacks, not by a refresh thread: a process with one thread may fork workers (a large
    # import is parsed on every core)
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=False, disable=not sys.stderr.isatty(), auto_refresh=False)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, refresh=True)

    return update, bar
