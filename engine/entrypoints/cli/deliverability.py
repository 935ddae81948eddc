"""Deliverability: the suppression list, sending-domain health and the warm-up plan."""
from __future__ import annotations

from typing import Optional

import typer

from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, ReasonOpt, default_actor, print_json

suppress_cli = typer.Typer(no_args_is_help=True, help="The suppression list (unsubscribed, bounced, complained, DND).")
domains_cli = typer.Typer(no_args_is_help=True, help="Sending-domain health.")
warmup_cli = typer.Typer(no_args_is_help=True, help="The domain warm-up plan.")


@suppress_cli.command("add")
def suppress_add(email: str, reason: str = typer.Option("manual", "--reason",
                                                        help="unsubscribed|bounced|complained|dnd|manual"),
                 actor: Optional[str] = ActorOpt):
    """Suppress an address: no later send reaches it, from any process."""
    app = common.open_app()
    added = app.suppress(email, reason, actor or default_actor(), source="cli")
    print(f"{email.lower()} suppressed ({reason})" if added else f"{email.lower()} was already suppressed")


@suppress_cli.command("remove")
def suppress_remove(email: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Lift a suppression (audited)."""
    app = common.open_app()
    ok = app.unsuppress(email, reason, actor or default_actor())
    print(f"{email.lower()} no longer suppressed" if ok else f"{email.lower()} was not suppressed")


@suppress_cli.command("list")
def suppress_list(limit: int = typer.Option(100, "--limit"), as_json: bool = JsonOpt):
    """The newest suppressions."""
    app = common.open_app()
    rows = app.suppressions(limit)
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    for r in rows:
        print(f"{r.email:40} {r.reason:13} {r.source or '':10} {r.created_at}")


@domains_cli.command("list")
def domains_list(as_json: bool = JsonOpt):
    """Health per sending domain."""
    app = common.open_app()
    rows = app.domains()
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    if not rows:
        print("no domain health recorded (unknown domains count as healthy)")
    for r in rows:
        print(f"{r.domain:32} {r.score:6.1f} {'COOLING' if r.cooling else 'ok':8} {r.reason or ''}")


@domains_cli.command("set")
def domains_set(domain: str, score: float, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Record a sending domain's health score (0-100)."""
    app = common.open_app()
    r = app.set_domain_health(domain, score, reason, actor or default_actor())
    print(f"{r.domain}: {r.score:g} ({'COOLING: sends defer' if r.cooling else 'healthy'})")


@warmup_cli.command("status")
def warmup_status(as_json: bool = JsonOpt):
    """The warm-up phase, its cap and its criteria to advance."""
    app = common.open_app()
    st = app.control.warmup_status()
    if as_json:
        print_json(st)
        return
    print(f"warm-up {'on' if st['enabled'] else 'off'}: phase {st['phase']}/{st['phases']}, cap {st['daily_cap']}/day,"
          f" effective daily cap {st['effective_daily_cap']} ({st['binding']})")
    for c in st["criteria"]:
        print(f"  [{'x' if c['passed'] else ' '}] {c['name']}: {c['detail']}")


@warmup_cli.command("set")
def warmup_set(phase: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt,
               force: bool = typer.Option(False, "--force")):
    """Move to another warm-up phase (up one at a time, when its criteria pass)."""
    app = common.open_app()
    st = app.control.set_warmup_phase(phase, reason, actor or default_actor(), force)
    print(f"warm-up phase {st['phase']}: cap {st['daily_cap']}/day")
