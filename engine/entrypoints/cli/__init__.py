"""`alpha`: the command line. Errors are printed as one clear message, never a traceback.

The commands live in one module per group (``common`` holds what they share); this module builds the root app
from them, in the order `alpha --help` lists them, and runs it (``main``, the `alpha` script)."""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Iterable

import click
import typer
from sqlalchemy.exc import OperationalError
from typer.main import get_command_name
from typer.models import CommandInfo

from engine.core.envcheck import env_flag
from engine.core.errors import AlphaError, DatabaseNotReady
from engine.entrypoints.cli import (
    approvals,
    audit,
    control,
    deliverability,
    gateway,
    health,
    pipeline,
    report,
    review,
    serve,
    setup,
    users,
)

# the top-level commands, in the order `alpha --help` lists them (a command missing here comes after them)
TOP_LEVEL_ORDER = ("init", "status", "codes", "config-check", "kill", "maintenance", "submit", "check-email", "up",
                   "dev", "console", "verify", "alert", "demo", "send", "worker", "readiness", "canary",
                   "unsubscribe-test")


def command_name(info: CommandInfo) -> str:
    """The name a command is invoked by: the one it was given, else typer's from its function name."""
    return info.name or get_command_name(getattr(info.callback, "__name__", ""))


def ordered_commands(modules: Iterable[ModuleType], order: Iterable[str] = TOP_LEVEL_ORDER) -> list[CommandInfo]:
    """Every module's top-level commands (its ``commands`` app), sorted by ``order``; the rest keep module order
    after them, so a new command is never dropped, only listed last until it is placed."""
    infos = [i for m in modules if hasattr(m, "commands") for i in m.commands.registered_commands]
    rank = {name: n for n, name in enumerate(order)}
    return sorted(infos, key=lambda i: rank.get(command_name(i), len(rank)))


cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Alpha Swarm: the governed outbound engine. Every outbound action passes one gateway.")
# every module that defines commands (tests check that none is left out)
COMMAND_MODULES = (setup, health, control, gateway, serve, pipeline, approvals, audit, deliverability, review, users,
                   report)
cli.registered_commands.extend(ordered_commands(COMMAND_MODULES))
cli.add_typer(control.phase_cli, name="phase")
cli.add_typer(control.breakers_cli, name="breakers")
cli.add_typer(audit.audit_cli, name="audit")
cli.add_typer(gateway.outbox_cli, name="outbox")
cli.add_typer(deliverability.suppress_cli, name="suppress")
cli.add_typer(deliverability.domains_cli, name="domains")
cli.add_typer(deliverability.warmup_cli, name="warmup")
cli.add_typer(serve.webhooks_cli, name="webhooks")
cli.add_typer(serve.sandbox_cli, name="sandbox")
cli.add_typer(pipeline.leads_cli, name="leads")
cli.add_typer(pipeline.shadow_cli, name="shadow")
cli.add_typer(pipeline.daily_cli, name="daily")
cli.add_typer(pipeline.drafts_cli, name="drafts")
cli.add_typer(approvals.approvals_cli, name="approvals")
cli.add_typer(review.compare_cli, name="compare")
cli.add_typer(users.users_cli, name="users")
cli.add_typer(report.report_cli, name="report")

# ---------------------------------------------------------------------------------------------- entry

try:  # typer >= 0.2x vendors its own click; catch both so no usage error becomes a traceback
    from typer._click.exceptions import ClickException as _VendoredClickException

    _USAGE: tuple[type[click.ClickException] | type[_VendoredClickException], ...] = (
        click.ClickException, _VendoredClickException)
except ImportError:  # pragma: no cover
    _USAGE = (click.ClickException,)
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)


def main(argv: list[str] | None = None) -> None:
    try:
        rc = cli(args=argv, standalone_mode=False, prog_name="alpha")
    except _EXIT as e:
        sys.exit(getattr(e, "exit_code", 0))
    except _USAGE as e:
        e.show()
        sys.exit(getattr(e, "exit_code", 2))
    except _ABORT:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except AlphaError as e:
        from engine.adapters.audit import redact

        print(f"alpha: {redact(str(e))}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OperationalError as e:
        print(f"alpha: {DatabaseNotReady(f'database error: {e.orig}')}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug, not bad input: say so in one line; the traceback only when asked for
        if env_flag("ALPHA_DEBUG"):
            raise
        from engine.adapters.audit import redact

        print(f"alpha: internal error ({type(e).__name__}: {redact(str(e))}). This is a bug, not your input: "
              "please report it with the command you ran; set ALPHA_DEBUG=1 to see the traceback.", file=sys.stderr)
        sys.exit(70)
    sys.exit(rc if isinstance(rc, int) else 0)
