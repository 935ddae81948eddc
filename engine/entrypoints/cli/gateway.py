"""Actions through the gateway: `alpha submit`, `alpha check-email`, and the outbox they leave."""
from __future__ import annotations

import json
import sys
from typing import IO, Any, Iterable, Optional

import typer

from engine.core.errors import AlphaError
from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, ReasonOpt, default_actor, open_input, print_json, read_json

commands = typer.Typer()  # this module's top-level commands: the root registers them, in its order
outbox_cli = typer.Typer(no_args_is_help=True, help="Outbound actions and their states; reconciliation.")


def _lines(stream: IO[str]) -> Iterable[tuple[int, str]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            yield n, line


@commands.command()
def submit(file: str = typer.Argument("-", help="JSON Lines file, or - for standard input."),
           details: bool = typer.Option(False, "--details", help="Add reason details to each result.")):
    """Submit actions (JSON Lines, one per line) to the gateway; print one result per line, same order."""
    from engine.core.reasons import Code, Reason
    from engine.services.gateway import Result

    app = common.open_app()
    stream = open_input(file)
    failed = 0
    for n, line in _lines(stream):
        raw, problem = read_json(line)
        if problem is not None:
            res = Result(None, "denied", [Reason(Code.INVALID_ACTION, f"line {n}: {problem}")])
        else:
            res = _submit_with_retry(app, raw, n)
            if res is None:
                failed += 1
                continue
        sys.stdout.write(json.dumps(res.to_dict(details), default=str) + "\n")
        sys.stdout.flush()
    if failed:
        raise AlphaError(f"{failed} line(s) could not be processed because the database failed; they were not "
                         "stored: submit them again (their idempotency keys make that safe)")


def _submit_with_retry(app, raw, n: int, attempts: int = 4):
    """A failed transaction committed nothing, and idempotency makes a repeat safe: retry transient errors."""
    import time

    from sqlalchemy.exc import DBAPIError

    for i in range(attempts):
        try:
            return app.gateway.submit(raw)
        except DBAPIError as e:
            if i == attempts - 1:
                key = raw.get("idempotency_key") if isinstance(raw, dict) else None
                print(f"alpha: line {n} (idempotency_key {key!r}) not processed: database error: {e.orig}",
                      file=sys.stderr)
                return None
            time.sleep(0.2 * 2 ** i)


@commands.command("check-email")
def check_email(file: str = typer.Argument("-", help="One JSON email, or - for standard input.")):
    """Content and recipient rules for one email; consumes no quota. Exit 0 allow, 1 deny."""
    from engine.rules import guardrails
    from engine.core.actions import InvalidAction, parse_action
    from engine.adapters.models import Suppression
    from engine.rules.unsubscribe import one_click_headers

    app = common.open_app()
    text = open_input(file).read()
    email, problem = read_json(text)
    if problem is not None:
        raise AlphaError(f"{file}: {problem}")
    if not isinstance(email, dict):
        raise AlphaError(f"{file}: must hold one JSON object (an email)")
    raw = {"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": "check-email", **email}
    try:
        action = parse_action(raw)
    except InvalidAction as e:
        out = {"decision": "deny", "reasons": [{"code": "INVALID_ACTION", "detail": p} for p in e.problems],
               "headers": {}}
        print_json(out)
        raise typer.Exit(1) from None
    from sqlmodel import select

    from engine.core.identity import canonical_address
    from engine.queries.outbox import has_prior_send

    to = action.to
    if not to:  # parse_action requires it for an email
        raise AlphaError(f"{file}: the email has no 'to'")
    key = canonical_address(to)
    with app.store.read() as s:  # as the gateway does: any spelling of the address; first touch from the outbox
        sup = s.exec(select(Suppression).where(Suppression.address_key == key).limit(1)).first()
        first = action.first_touch is True or not has_prior_send(s, key)
    suppressed = guardrails.Suppressed(sup.email, sup.reason, sup.source or "") if sup else None
    reasons = guardrails.check_message(action, app.settings, suppressed, first_touch=first, secret=app.secret)
    headers = one_click_headers(app.settings.production.sender.unsubscribe_base_url, to, app.secret)
    print_json({"decision": "deny" if reasons else "allow",
          "reasons": [{"code": r.code.value, "detail": r.detail} for r in reasons], "headers": headers})
    raise typer.Exit(1 if reasons else 0)


@outbox_cli.command("list")
def outbox_list(status_: Optional[str] = typer.Option(None, "--status", help="Only this status."),
                limit: int = typer.Option(50, "--limit"), as_json: bool = JsonOpt):
    """The newest outbox rows."""
    from engine.queries.outbox import STATUSES, list_items

    if status_ and status_ not in STATUSES:
        raise AlphaError(f"--status must be one of {', '.join(STATUSES)}")
    app = common.open_app()
    with app.store.read() as s:
        rows = list_items(s, status_, limit)
    data: list[dict[str, Any]] = [
        {"id": r.id, "status": r.status, "action": r.action, "to": r.to_email, "subject": r.subject,
         "reasons": [x["code"] for x in (r.reasons or [])], "not_before": str(r.not_before or ""),
         "idempotency_key": r.idempotency_key} for r in rows]
    if as_json:
        print_json(data)
        return
    for d in data:
        print(f"{d['id']:6} {d['status']:16} {d['action']:20} {d['to'] or '':32} {','.join(d['reasons'])}")


@outbox_cli.command("process")
def outbox_process(limit: int = typer.Option(100, "--limit")):
    """Re-run the gateway on waiting rows that are due (deferred past not_before, or approved)."""
    app = common.open_app()
    for r in app.gateway.process_due(limit):
        print(json.dumps(r.to_dict(), default=str))


@outbox_cli.command("reconcile")
def outbox_reconcile(as_json: bool = JsonOpt):
    """Sends in doubt (the call may have gone out): never retried automatically; resolve each by hand."""
    app = common.open_app()
    rows = app.reconciliation()
    data = [{"id": r.id, "status": r.status, "to": r.to_email, "subject": r.subject, "reserved_at": str(r.reserved_at),
             "provider": r.provider, "last_error": r.last_error, "idempotency_key": r.idempotency_key} for r in rows]
    if as_json:
        print_json(data)
        return
    if not data:
        print("nothing awaits reconciliation")
    for d in data:
        print(f"{d['id']:6} {d['status']:10} {d['to'] or '':32} since {d['reserved_at']}  {d['last_error'] or ''}")


@outbox_cli.command("resolve")
def outbox_resolve(outbox_id: int, outcome: str = typer.Option(..., "--outcome", help="sent or failed"),
                   reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Record what the provider says happened to a send in doubt."""
    app = common.open_app()
    row = app.resolve(outbox_id, outcome, reason, actor or default_actor())
    print(f"outbox {row.id}: {row.status}")
