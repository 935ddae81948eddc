"""The control plane: the kill switch, maintenance mode, the rollout phase and the circuit breakers."""
from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, ReasonOpt, default_actor, print_json

commands = typer.Typer()  # this module's top-level commands: the root registers them, in its order
phase_cli = typer.Typer(no_args_is_help=True, help="Rollout phase: shadow -> parallel -> assisted -> autonomous.")
breakers_cli = typer.Typer(no_args_is_help=True, help="Circuit breakers per external API.")


class OnOff(str, Enum):
    on = "on"
    off = "off"


@commands.command()
def kill(state: OnOff, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Turn the kill switch on or off (every process sees it at its next decision)."""
    app = common.open_app()
    app.control.set_kill(state == OnOff.on, reason, actor or default_actor())
    k = app.control.kill()
    print(f"kill switch {'ON' if k.on else 'off'}" + (f" ({k.source}: {k.reason})" if k.on else ""))


@commands.command()
def maintenance(state: OnOff, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Turn maintenance mode on or off."""
    app = common.open_app()
    app.control.set_maintenance(state == OnOff.on, reason, actor or default_actor())
    print(f"maintenance {'ON' if state == OnOff.on else 'off'}")


@phase_cli.command("show")
def phase_show(as_json: bool = JsonOpt):
    """The current phase and the gate of the next one."""
    from engine.core.config import PHASES

    app = common.open_app()
    ctl = app.control.state()
    i = PHASES.index(ctl.phase)
    nxt = PHASES[i + 1] if i + 1 < len(PHASES) else None
    checks = app.control.gate_for(nxt) if nxt else []
    data = {"phase": ctl.phase, "changed_at": str(ctl.phase_changed_at), "changed_by": ctl.phase_actor,
            "reason": ctl.phase_reason, "next_phase": nxt, "next_phase_allowed": bool(nxt) and all(
                c.passed for c in checks), "gate": [c.__dict__ for c in checks]}
    if as_json:
        print_json(data)
        return
    print(f"phase {ctl.phase} (since {ctl.phase_changed_at}, by {ctl.phase_actor}: {ctl.phase_reason})")
    if nxt:
        print(f"next: {nxt} - gate {'PASSES' if data['next_phase_allowed'] else 'FAILS'}")
        for c in checks:
            print(f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}")


@phase_cli.command("set")
def phase_set(phase: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt,
              force: bool = typer.Option(False, "--force", help="Break-glass: override a failing gate (audited).")):
    """Move the phase: down at once; up one step, only when the gate passes (or --force)."""
    app = common.open_app()
    r = app.control.set_phase(phase, reason, actor or default_actor(), force=force)
    print(f"phase {r['before']} -> {r['after']}" + ("  (FORCED past a failing gate; recorded)" if r["forced"] else ""))
    queue = r.get("queue") or {}
    if queue.get("held"):
        print(f"{queue['held']} queued send(s) will be held (deferred, PHASE_HELD) until the phase sends again")
    if queue.get("released"):
        print(f"{queue['released']} held send(s) released: due now")


@breakers_cli.command("list")
def breakers_list(as_json: bool = JsonOpt):
    """Every breaker's state."""
    app = common.open_app()
    rows = app.breakers.list()
    data = [{"name": b.name, "state": b.state, "consecutive_failures": b.consecutive_failures,
             "opened_at": str(b.opened_at) if b.opened_at else None,
             "retry_at": str(b.retry_at) if b.retry_at else None, "forced": b.forced, "last_error": b.last_error}
            for b in rows]
    if as_json:
        print_json(data)
        return
    for d in data:
        extra = f" retry at {d['retry_at']}" if d["retry_at"] else ""
        extra += " (forced)" if d["forced"] else ""
        print(f"{d['name']:9} {d['state']:9} failures={d['consecutive_failures']}{extra}")


@breakers_cli.command("open")
def breakers_open(name: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Force a breaker OPEN (stays open until closed by a person)."""
    app = common.open_app()
    app.breakers.force(name, "OPEN", reason, actor or default_actor())
    print(f"{name} OPEN (forced)")


@breakers_cli.command("close")
def breakers_close(name: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Force a breaker CLOSED."""
    app = common.open_app()
    app.breakers.force(name, "CLOSED", reason, actor or default_actor())
    print(f"{name} CLOSED (forced)")
