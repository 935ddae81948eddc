"""`alpha approvals`: the approval queue (four-eyes, SLAs, expiry)."""
from __future__ import annotations

import json
from typing import Optional

import typer

from engine.core.errors import InvalidRequest
from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, ReasonOpt, default_actor, open_input, print_json

approvals_cli = typer.Typer(no_args_is_help=True, help="The approval queue (four-eyes, SLAs, expiry).")


@approvals_cli.command("list")
def approvals_list(as_json: bool = JsonOpt,
                   kind: Optional[str] = typer.Option(None, "--kind", help="send | hot_lead (default: both)"),
                   status: str = typer.Option("pending", "--status", help="pending | approved | rejected | expired"),
                   limit: int = typer.Option(200, "--limit")):
    """The approval queue, most urgent first: sends (with where each message goes) and hot-lead escalations,
    with SLA minutes left and breaches."""
    app = common.open_app()
    if kind not in (None, "send", "hot_lead"):
        raise InvalidRequest(f"--kind {kind!r}: use send or hot_lead")
    keep = ("id", "kind", "outbox_id", "lead_id", "action_type", "risk", "requested_by", "to", "subject",
            "lead_email", "company", "summary", "sla_due_at", "sla_minutes_left", "breached", "escalated_to",
            "expires_at", "status")
    data = [{k: r[k] for k in keep} for r in app.approvals.queue(status=status, kind=kind, limit=limit)["rows"]]
    if as_json:
        print_json(data)
        return
    if not data:
        print(f"no {status} approvals")
    for d in data:
        sla = "BREACHED" if d["breached"] else (f"{d['sla_minutes_left']:.0f} min left"
                                                if d["sla_minutes_left"] is not None else "")
        what = (f"to {d['to'] or '':32} {d['subject'] or ''}" if d["kind"] == "send"
                else f"HOT LEAD {d['lead_email'] or d['lead_id']}: {(d['summary'] or '').splitlines()[0][:80]}")
        print(f"{d['id']:6} {d['action_type'] or '':13} {sla:14} {what}")


@approvals_cli.command("approve")
def approvals_approve(approval_id: int, actor: Optional[str] = ActorOpt):
    """Approve (four-eyes: not by whoever requested or edited it). The worker then executes it."""
    app = common.open_app()
    a = app.approvals.approve(approval_id, actor or default_actor())
    print(f"approval {a.id} approved; it executes at the next `alpha approvals process` (all checks re-run)")


@approvals_cli.command("reject")
def approvals_reject(approval_id: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Reject with a reason; the message will not be sent."""
    app = common.open_app()
    a = app.approvals.reject(approval_id, actor or default_actor(), reason)
    print(f"approval {a.id} rejected")


@approvals_cli.command("edit")
def approvals_edit(approval_id: int, subject: Optional[str] = typer.Option(None, "--subject"),
                   html_file: Optional[str] = typer.Option(None, "--html-file"),
                   actor: Optional[str] = ActorOpt):
    """Edit the message before approval; someone else must then approve it."""
    app = common.open_app()
    html = open_input(html_file).read() if html_file else None
    app.approvals.edit(approval_id, actor or default_actor(), subject=subject, html=html)
    print(f"approval {approval_id} edited; another person must approve it")


@approvals_cli.command("process")
def approvals_process(limit: int = typer.Option(100, "--limit"), as_json: bool = JsonOpt):
    """Run the execution queue once: escalate SLA breaches, expire, then execute what is approved or due."""
    app = common.open_app()
    out = app.approvals.process(limit)
    app.alerts.flush()
    if as_json:
        print_json(out)
        return
    print(f"escalated {len(out['escalated'])}, expired {len(out['expired'])}, processed {len(out['results'])}")
    for r in out["results"]:
        print(json.dumps(r, default=str))
