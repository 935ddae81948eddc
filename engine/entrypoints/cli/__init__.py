"""`alpha`: the command line. Errors are printed as one clear message, never a traceback."""
from __future__ import annotations

import getpass
import json
import os
import sys
from enum import Enum
from typing import IO, Iterable, Optional

import click
import typer
from sqlalchemy.exc import OperationalError

from engine.core.clock import parse_iso
from engine.core.errors import AlphaError, DatabaseNotReady, InvalidRequest

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Alpha Swarm: the governed outbound engine. Every outbound action passes one gateway.")
phase_cli = typer.Typer(no_args_is_help=True, help="Rollout phase: shadow -> parallel -> assisted -> autonomous.")
breakers_cli = typer.Typer(no_args_is_help=True, help="Circuit breakers per external API.")
audit_cli = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")
outbox_cli = typer.Typer(no_args_is_help=True, help="Outbound actions and their states; reconciliation.")
suppress_cli = typer.Typer(no_args_is_help=True, help="The suppression list (unsubscribed, bounced, complained, DND).")
domains_cli = typer.Typer(no_args_is_help=True, help="Sending-domain health.")
warmup_cli = typer.Typer(no_args_is_help=True, help="The domain warm-up plan.")
webhooks_cli = typer.Typer(no_args_is_help=True, help="The webhook receiver and one-click unsubscribe endpoint.")
sandbox_cli = typer.Typer(no_args_is_help=True, help="Local sandboxes of external services.")
report_cli = typer.Typer(no_args_is_help=True, help="Reports: the weekly review of KPIs.")
leads_cli = typer.Typer(no_args_is_help=True, help="Leads: import and export CSV.")
shadow_cli = typer.Typer(no_args_is_help=True, help="Shadow runs: the whole pipeline, nothing leaves.")
daily_cli = typer.Typer(no_args_is_help=True, help="The daily cycle (schedule it with cron or a systemd timer).")
drafts_cli = typer.Typer(no_args_is_help=True, help="Drafted emails: list, approve, reject.")
approvals_cli = typer.Typer(no_args_is_help=True, help="The approval queue (four-eyes, SLAs, expiry).")
compare_cli = typer.Typer(no_args_is_help=True, help="AI-vs-human blind comparison of lead tiers.")
users_cli = typer.Typer(no_args_is_help=True, help="Console users and their roles (config/users.yaml).")
cli.add_typer(phase_cli, name="phase")
cli.add_typer(breakers_cli, name="breakers")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(outbox_cli, name="outbox")
cli.add_typer(suppress_cli, name="suppress")
cli.add_typer(domains_cli, name="domains")
cli.add_typer(warmup_cli, name="warmup")
cli.add_typer(webhooks_cli, name="webhooks")
cli.add_typer(sandbox_cli, name="sandbox")
cli.add_typer(leads_cli, name="leads")
cli.add_typer(shadow_cli, name="shadow")
cli.add_typer(daily_cli, name="daily")
cli.add_typer(drafts_cli, name="drafts")
cli.add_typer(approvals_cli, name="approvals")
cli.add_typer(compare_cli, name="compare")
cli.add_typer(users_cli, name="users")
cli.add_typer(report_cli, name="report")


class OnOff(str, Enum):
    on = "on"
    off = "off"


def default_actor() -> str:
    try:
        return os.environ.get("ALPHA_ACTOR") or getpass.getuser()
    except Exception:
        return "unknown"


ActorOpt = typer.Option(None, "--actor", help="Who is doing this (default: $ALPHA_ACTOR or the OS user).")
ReasonOpt = typer.Option(..., "--reason", help="Why (required; recorded in the audit trail).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def _app(ready: bool = True, serving: str | None = None):
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


def _out(obj) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _open_input(path: str) -> IO[str]:
    """A text stream; bytes that are not UTF-8 are kept as surrogate escapes, so one bad line is refused on its
    own (it names the line) instead of ending the batch."""
    if path == "-":
        try:
            sys.stdin.reconfigure(errors="surrogateescape")
        except (AttributeError, ValueError):  # not a real text stream (tests, embedding)
            pass
        return sys.stdin
    try:
        return open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise AlphaError(f"cannot read {path}: {e.strerror}") from None


def _read_json(text: str) -> tuple[object, str | None]:
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


# ---------------------------------------------------------------------------------------------- init/status

@cli.command()
def init(force: bool = typer.Option(False, "--force", help="Break glass: seed the configured rollout phase even "
                                                         "if its go/no-go gates fail (needs --reason; audited)."),
         reason: Optional[str] = typer.Option(None, "--reason", help="Why the gates are overridden (--force).")):
    """Create or upgrade the database schema and seed the control plane from config. The configured rollout phase
    is seeded only if the go/no-go gate of every phase up to it passes; otherwise the phase starts at shadow."""
    app = _app(ready=False)
    actor = default_actor()
    if force:
        if not (reason or "").strip():
            raise InvalidRequest("--force needs a --reason (recorded in the audit trail)")
        before, after = app.store.upgrade()
        seeded = app.control.seed_phase_from_config(actor, force=True, reason=reason)
        r = {**app.init(actor), "schema_before": before, "schema": after, "phase_seeded": seeded}
    else:
        r = app.init(actor)
    print(f"database: {r['database']}")
    print(f"schema: {r['schema_before'] or 'empty'} -> {r['schema']}")
    seeded = r["phase_seeded"]
    if not seeded:
        return
    failed = seeded["failed"]
    if failed is None:
        print(f"rollout phase seeded from config: {seeded['phase']}")
        return
    why = "; ".join(f"{c['name']}: {c['detail']}" for c in failed["checks"])
    if seeded["forced"]:
        print(f"rollout phase seeded from config: {seeded['phase']} (FORCED past the failing go/no-go gate for "
              f"{failed['phase']}: {why})")
    else:
        print(f"rollout phase seeded: shadow, not {seeded['configured']} from config: the go/no-go gate for "
              f"{failed['phase']} fails: {why}. Step up with `alpha phase set` once it passes.")


@cli.command()
def status(as_json: bool = JsonOpt):
    """Phase, kill switch, maintenance, breakers, component health and usage against every limit."""
    app = _app()
    st = app.status()
    if as_json:
        _out(st)
        return
    k = st["kill_switch"]
    print(f"mode           {st['mode']} (executor: {st['executor']})")
    print(f"phase          {st['phase']}" + ("" if st["config_phase_matches"]
                                             else f"   (config says {st['config_phase']})"))
    print(f"kill switch    {'ON' if k['on'] else 'off'}" + (f"  [{k['source']}: {k['reason']}]" if k["on"] else ""))
    m = st["maintenance"]
    print(f"maintenance    {'ON' if m['on'] else 'off'}" + (f"  ({m['reason']})" if m["on"] else ""))
    print(f"live sending   {'yes' if st['live_sending'] else 'no'}")
    print("breakers       " + "  ".join(f"{b['name']}={b['state']}" for b in st["breakers"]))
    u = st["usage"]
    print(f"usage          month {u['monthly']['used']}/{u['monthly']['limit']}  "
          f"day {u['daily']['used']}/{u['daily']['limit']} ({u['daily']['binding']})  "
          f"hour {u['hourly']['used']}/{u['hourly']['limit']}  "
          f"per-domain-hour limit {u['per_domain_hourly']['limit']}  min delay {u['min_delay_seconds']['limit']}s")
    print("outbox         " + (", ".join(f"{k}={v}" for k, v in sorted(st["outbox"].items())) or "empty"))
    print(f"reconciliation {st['awaiting_reconciliation']} awaiting")
    print(f"audit          {st['audit']['rows']} rows, violations {st['permission_violations']}")
    print(f"database       {st['components']['database'].get('url', '')}")
    print("components")
    for name, c in st["components"].items():
        seen = parse_iso(c["seen_at"]).strftime("%Y-%m-%d %H:%M:%S UTC") if c.get("seen_at") else None
        print(f"  {name:17} {c['state'].upper():15} {c['detail']}"
              + (f"  (last seen {seen})" if seen and c["state"] != "ok" else ""))


@cli.command("codes")
def codes():
    """List every reason code with its meaning."""
    from engine.core.reasons import DESCRIPTIONS, KIND

    for code, text in DESCRIPTIONS.items():
        print(f"{code.value:26} {KIND[code].value:10} {text}")


@cli.command("config-check")
def config_check():
    """Validate every configuration file (settings, ICP, approver roster, messaging pack) and the environment
    variables, and print a summary; every problem is listed, each naming the file and the key, or the variable."""
    from engine.app import load_env_file
    from engine.services.approvals import load_roster
    from engine.core.config import default_config_dir, load_settings
    from engine.core.envcheck import check_env
    from engine.core.errors import ConfigError
    from engine.rules.icp import load_icp
    from engine.rules.messaging import load_pack

    load_env_file()
    env_file = os.environ.get("ALPHA_ENV_FILE") or os.path.join(os.getcwd(), ".env")
    problems: list[str] = [str(p) for p in check_env(env_file=env_file)]  # the environment, validated the same way
    loaded: dict = {}
    try:
        loaded["settings"] = load_settings()
        cfg_dir = loaded["settings"].config_dir
    except ConfigError as e:
        problems += e.problems
        cfg_dir = default_config_dir()
    for name, load in (("icp", load_icp), ("roster", load_roster), ("pack", load_pack)):
        try:
            loaded[name] = load(cfg_dir)
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems)
    s = loaded["settings"]
    p = s.production
    print(f"config OK: {s.config_dir}")
    print(f"  phase {p.rollout_phase.current}, {len(s.spam_terms)} spam terms, {len(s.forbidden_claims)} forbidden "
          f"claims, {len(s.permissions.agents)} agents, warm-up {'on' if s.warmup.enabled else 'off'}")
    print(f"  roster: {len(loaded['roster'].action_types)} action types; messaging pack: "
          f"{len(loaded['pack'].templates)} templates; "
          f"ICP tiers at {loaded['icp'].tiers.tier_1_min}/{loaded['icp'].tiers.tier_2_min}")


# ---------------------------------------------------------------------------------------------- control

@cli.command()
def kill(state: OnOff, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Turn the kill switch on or off (every process sees it at its next decision)."""
    app = _app()
    app.control.set_kill(state == OnOff.on, reason, actor or default_actor())
    k = app.control.kill()
    print(f"kill switch {'ON' if k.on else 'off'}" + (f" ({k.source}: {k.reason})" if k.on else ""))


@cli.command()
def maintenance(state: OnOff, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Turn maintenance mode on or off."""
    app = _app()
    app.control.set_maintenance(state == OnOff.on, reason, actor or default_actor())
    print(f"maintenance {'ON' if state == OnOff.on else 'off'}")


@phase_cli.command("show")
def phase_show(as_json: bool = JsonOpt):
    """The current phase and the gate of the next one."""
    from engine.core.config import PHASES

    app = _app()
    ctl = app.control.state()
    i = PHASES.index(ctl.phase)
    nxt = PHASES[i + 1] if i + 1 < len(PHASES) else None
    checks = app.control.gate_for(nxt) if nxt else []
    data = {"phase": ctl.phase, "changed_at": str(ctl.phase_changed_at), "changed_by": ctl.phase_actor,
            "reason": ctl.phase_reason, "next_phase": nxt, "next_phase_allowed": bool(nxt) and all(
                c.passed for c in checks), "gate": [c.__dict__ for c in checks]}
    if as_json:
        _out(data)
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
    app = _app()
    r = app.control.set_phase(phase, reason, actor or default_actor(), force=force)
    print(f"phase {r['before']} -> {r['after']}" + ("  (FORCED past a failing gate; recorded)" if r["forced"] else ""))
    queue = r.get("queue") or {}
    if queue.get("held"):
        print(f"{queue['held']} queued send(s) will be held (deferred, PHASE_HELD) until the phase sends again")
    if queue.get("released"):
        print(f"{queue['released']} held send(s) released: due now")


# ---------------------------------------------------------------------------------------------- breakers

@breakers_cli.command("list")
def breakers_list(as_json: bool = JsonOpt):
    """Every breaker's state."""
    app = _app()
    rows = app.breakers.list()
    data = [{"name": b.name, "state": b.state, "consecutive_failures": b.consecutive_failures,
             "opened_at": str(b.opened_at) if b.opened_at else None,
             "retry_at": str(b.retry_at) if b.retry_at else None, "forced": b.forced, "last_error": b.last_error}
            for b in rows]
    if as_json:
        _out(data)
        return
    for d in data:
        extra = f" retry at {d['retry_at']}" if d["retry_at"] else ""
        extra += " (forced)" if d["forced"] else ""
        print(f"{d['name']:9} {d['state']:9} failures={d['consecutive_failures']}{extra}")


@breakers_cli.command("open")
def breakers_open(name: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Force a breaker OPEN (stays open until closed by a person)."""
    app = _app()
    app.breakers.force(name, "OPEN", reason, actor or default_actor())
    print(f"{name} OPEN (forced)")


@breakers_cli.command("close")
def breakers_close(name: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Force a breaker CLOSED."""
    app = _app()
    app.breakers.force(name, "CLOSED", reason, actor or default_actor())
    print(f"{name} CLOSED (forced)")


# ---------------------------------------------------------------------------------------------- audit

@audit_cli.command("verify")
def audit_verify(as_json: bool = JsonOpt,
                 checkpoint: Optional[str] = typer.Option(
                     None, "--checkpoint", help="Also check every signed checkpoint in this file (- for standard "
                     "input): a rewritten or truncated chain no longer matches them."),
                 pubkey: Optional[list[str]] = typer.Option(
                     None, "--pubkey", help="The public key the checkpoints were signed with (repeat for rotated "
                     "keys). Default: the configured signing key's public half."),
                 any_db: bool = typer.Option(False, "--any-db", help="Check checkpoints made for another database "
                                             "URL too (the database moved)."),
                 write_checkpoint: bool = typer.Option(False, "--write-checkpoint",
                                                       help="When everything verifies, write a checkpoint.")):
    """Check the hash chain; name the first row that was edited, deleted or reordered."""
    from engine.adapters import anchor
    from engine.adapters import audit

    app = _app()
    keys = [anchor.load_public_key(k) for k in pubkey] if pubkey else None
    if checkpoint is not None and keys is None:
        keys = [anchor.load_public_key()]
    if write_checkpoint:  # a bad key or destination is reported before the (long) walk
        sign_key, dest = anchor.load_signing_key(), anchor.destination()
    stream = _open_input(checkpoint) if checkpoint is not None else None
    try:
        with app.store.read() as s:
            r = audit.verify(s)
        report = None
        if stream is not None:
            report = anchor.verify_checkpoints(app, stream, keys, chain=r, source=checkpoint, any_db=any_db)
    finally:
        if stream is not None and stream is not sys.stdin:
            stream.close()
    ok = r.ok and (report is None or report["ok"])
    written = None
    if write_checkpoint and ok:
        written = anchor.checkpoint(app, verified=(r.head_seq, r.head_hash), dest=dest, key=sign_key)
    if as_json:
        _out(r.to_dict() if report is None and not write_checkpoint
             else {**r.to_dict(), "ok": ok, "chain_ok": r.ok, "checkpoints": report, "written": written})
        raise typer.Exit(0 if ok else 1)
    if r.ok:
        print(f"audit chain OK: {r.rows} rows, head {r.head_hash[:16]}")
    else:
        print(f"audit chain BROKEN at row {r.first_bad_seq}: {r.problem}", file=sys.stderr)
    if report is not None and report["ok"]:
        newest = report["newest"]
        print(f"checkpoints OK: {report['matched']} of {report['checkpoints']} in {checkpoint} match (newest: row "
              f"{newest['seq']} at {newest['at']}; key {', '.join(report['key_ids'])})"
              + (f"; {report['other_db']} for other databases skipped" if report["other_db"] else ""))
    elif report is not None:
        for p in report["problems"]:
            where = f"checkpoint line {p['line']} (seq {p['seq']})" if p["line"] is not None else "checkpoints"
            print(f"{where}: {p['problem']}", file=sys.stderr)
        if report["diverges"]:
            print(f"audit chain DOES NOT MATCH its checkpoints: {report['diverges']['text']}", file=sys.stderr)
        else:
            print(f"audit chain DOES NOT MATCH its checkpoints ({len(report['problems'])} problem(s) in "
                  f"{checkpoint})", file=sys.stderr)
    if written is not None:
        cp = written["checkpoint"]
        print(f"checkpoint seq {cp['seq']} head {cp['head'][:16]} written to {written['where']}")
    raise typer.Exit(0 if ok else 1)


@audit_cli.command("checkpoint")
def audit_checkpoint(as_json: bool = JsonOpt):
    """Check the chain, sign its head (ALPHA_AUDIT_SIGNING_KEY_FILE) and append the checkpoint to
    ALPHA_AUDIT_CHECKPOINTS (a file, or an http(s) URL it is POSTed to)."""
    from engine.adapters import anchor

    out = anchor.checkpoint(_app())
    if as_json:
        _out(out)
        return
    cp = out["checkpoint"]
    print(f"checkpoint seq {cp['seq']} head {cp['head'][:16]} written to {out['where']}")


@audit_cli.command("pubkey")
def audit_pubkey():
    """Print the audit signing key's public half (PEM), for whoever verifies checkpoints elsewhere."""
    from engine.adapters import anchor
    from engine.app import load_env_file

    load_env_file()
    pub = anchor.load_signing_key().public_key()
    print(anchor.public_pem(pub), end="")
    print(f"key_id {anchor.key_id(pub)} ({anchor.key_path()[0]})", file=sys.stderr)


@audit_cli.command("tail")
def audit_tail(n: int = typer.Option(20, "-n", help="How many rows."), as_json: bool = JsonOpt):
    """The newest audit rows."""
    from sqlmodel import select

    from engine.adapters.models import AuditEntry

    app = _app()
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(n)).all()
    rows = list(reversed(rows))
    if as_json:
        _out([r.model_dump() for r in rows])
        return
    for r in rows:
        print(f"{r.seq:6} {r.at} {r.event:22} {r.status or '':16} {r.actor:14} {r.ref or ''} {r.reasons}")


# ---------------------------------------------------------------------------------------------- submit

def _lines(stream: IO[str]) -> Iterable[tuple[int, str]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            yield n, line


@cli.command()
def submit(file: str = typer.Argument("-", help="JSON Lines file, or - for standard input."),
           details: bool = typer.Option(False, "--details", help="Add reason details to each result.")):
    """Submit actions (JSON Lines, one per line) to the gateway; print one result per line, same order."""
    from engine.core.reasons import Code, Reason
    from engine.services.gateway import Result

    app = _app()
    stream = _open_input(file)
    failed = 0
    for n, line in _lines(stream):
        raw, problem = _read_json(line)
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


@cli.command("check-email")
def check_email(file: str = typer.Argument("-", help="One JSON email, or - for standard input.")):
    """Content and recipient rules for one email; consumes no quota. Exit 0 allow, 1 deny."""
    from engine.rules import guardrails
    from engine.core.actions import InvalidAction, parse_action
    from engine.adapters.models import Suppression
    from engine.rules.unsubscribe import one_click_headers

    app = _app()
    text = _open_input(file).read()
    email, problem = _read_json(text)
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
        _out(out)
        raise typer.Exit(1) from None
    from sqlmodel import select

    from engine.core.identity import canonical_address
    from engine.queries.outbox import has_prior_send

    key = canonical_address(action.to)
    with app.store.read() as s:  # as the gateway does: any spelling of the address; first touch from the outbox
        sup = s.exec(select(Suppression).where(Suppression.address_key == key).limit(1)).first()
        first = action.first_touch is True or not has_prior_send(s, key)
    suppressed = guardrails.Suppressed(sup.email, sup.reason, sup.source or "") if sup else None
    reasons = guardrails.check_message(action, app.settings, suppressed, first_touch=first, secret=app.secret)
    headers = one_click_headers(app.settings.production.sender.unsubscribe_base_url, action.to, app.secret)
    _out({"decision": "deny" if reasons else "allow",
          "reasons": [{"code": r.code.value, "detail": r.detail} for r in reasons], "headers": headers})
    raise typer.Exit(1 if reasons else 0)


# ---------------------------------------------------------------------------------------------- outbox

@outbox_cli.command("list")
def outbox_list(status_: Optional[str] = typer.Option(None, "--status", help="Only this status."),
                limit: int = typer.Option(50, "--limit"), as_json: bool = JsonOpt):
    """The newest outbox rows."""
    from engine.queries.outbox import STATUSES, list_items

    if status_ and status_ not in STATUSES:
        raise AlphaError(f"--status must be one of {', '.join(STATUSES)}")
    app = _app()
    with app.store.read() as s:
        rows = list_items(s, status_, limit)
    data = [{"id": r.id, "status": r.status, "action": r.action, "to": r.to_email, "subject": r.subject,
             "reasons": [x["code"] for x in (r.reasons or [])], "not_before": str(r.not_before or ""),
             "idempotency_key": r.idempotency_key} for r in rows]
    if as_json:
        _out(data)
        return
    for d in data:
        print(f"{d['id']:6} {d['status']:16} {d['action']:20} {d['to'] or '':32} {','.join(d['reasons'])}")


@outbox_cli.command("process")
def outbox_process(limit: int = typer.Option(100, "--limit")):
    """Re-run the gateway on waiting rows that are due (deferred past not_before, or approved)."""
    app = _app()
    for r in app.gateway.process_due(limit):
        print(json.dumps(r.to_dict(), default=str))


@outbox_cli.command("reconcile")
def outbox_reconcile(as_json: bool = JsonOpt):
    """Sends in doubt (the call may have gone out): never retried automatically; resolve each by hand."""
    app = _app()
    rows = app.reconciliation()
    data = [{"id": r.id, "status": r.status, "to": r.to_email, "subject": r.subject, "reserved_at": str(r.reserved_at),
             "provider": r.provider, "last_error": r.last_error, "idempotency_key": r.idempotency_key} for r in rows]
    if as_json:
        _out(data)
        return
    if not data:
        print("nothing awaits reconciliation")
    for d in data:
        print(f"{d['id']:6} {d['status']:10} {d['to'] or '':32} since {d['reserved_at']}  {d['last_error'] or ''}")


@outbox_cli.command("resolve")
def outbox_resolve(outbox_id: int, outcome: str = typer.Option(..., "--outcome", help="sent or failed"),
                   reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Record what the provider says happened to a send in doubt."""
    app = _app()
    row = app.resolve(outbox_id, outcome, reason, actor or default_actor())
    print(f"outbox {row.id}: {row.status}")


# ---------------------------------------------------------------------------------------------- lists

@suppress_cli.command("add")
def suppress_add(email: str, reason: str = typer.Option("manual", "--reason",
                                                        help="unsubscribed|bounced|complained|dnd|manual"),
                 actor: Optional[str] = ActorOpt):
    """Suppress an address: no later send reaches it, from any process."""
    app = _app()
    added = app.suppress(email, reason, actor or default_actor(), source="cli")
    print(f"{email.lower()} suppressed ({reason})" if added else f"{email.lower()} was already suppressed")


@suppress_cli.command("remove")
def suppress_remove(email: str, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Lift a suppression (audited)."""
    app = _app()
    ok = app.unsuppress(email, reason, actor or default_actor())
    print(f"{email.lower()} no longer suppressed" if ok else f"{email.lower()} was not suppressed")


@suppress_cli.command("list")
def suppress_list(limit: int = typer.Option(100, "--limit"), as_json: bool = JsonOpt):
    """The newest suppressions."""
    app = _app()
    rows = app.suppressions(limit)
    if as_json:
        _out([r.model_dump() for r in rows])
        return
    for r in rows:
        print(f"{r.email:40} {r.reason:13} {r.source or '':10} {r.created_at}")


@domains_cli.command("list")
def domains_list(as_json: bool = JsonOpt):
    """Health per sending domain."""
    app = _app()
    rows = app.domains()
    if as_json:
        _out([r.model_dump() for r in rows])
        return
    if not rows:
        print("no domain health recorded (unknown domains count as healthy)")
    for r in rows:
        print(f"{r.domain:32} {r.score:6.1f} {'COOLING' if r.cooling else 'ok':8} {r.reason or ''}")


@domains_cli.command("set")
def domains_set(domain: str, score: float, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Record a sending domain's health score (0-100)."""
    app = _app()
    r = app.set_domain_health(domain, score, reason, actor or default_actor())
    print(f"{r.domain}: {r.score:g} ({'COOLING: sends defer' if r.cooling else 'healthy'})")


@warmup_cli.command("status")
def warmup_status(as_json: bool = JsonOpt):
    """The warm-up phase, its cap and its criteria to advance."""
    app = _app()
    st = app.control.warmup_status()
    if as_json:
        _out(st)
        return
    print(f"warm-up {'on' if st['enabled'] else 'off'}: phase {st['phase']}/{st['phases']}, cap {st['daily_cap']}/day,"
          f" effective daily cap {st['effective_daily_cap']} ({st['binding']})")
    for c in st["criteria"]:
        print(f"  [{'x' if c['passed'] else ' '}] {c['name']}: {c['detail']}")


@warmup_cli.command("set")
def warmup_set(phase: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt,
               force: bool = typer.Option(False, "--force")):
    """Move to another warm-up phase (up one at a time, when its criteria pass)."""
    app = _app()
    st = app.control.set_warmup_phase(phase, reason, actor or default_actor(), force)
    print(f"warm-up phase {st['phase']}: cap {st['daily_cap']}/day")


@webhooks_cli.command("serve")
def webhooks_serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8787, "--port")):
    """Serve POST /webhooks/ghl, POST /webhooks/rb2b and /unsubscribe/{token} (RFC 8058 one-click), GET /healthz
    and GET /metrics (Prometheus)."""
    from engine.adapters.logs import configure_logging
    from engine.entrypoints.webhooks import serve

    configure_logging()  # ALPHA_LOG_FORMAT=json|text, ALPHA_LOG_LEVEL
    _app(serving="the webhook receiver")  # fail early, with a clear message: bad env/config, database not ready
    print(f"webhook receiver on http://{host}:{port} (POST /webhooks/ghl, /webhooks/rb2b; /unsubscribe/TOKEN)")
    serve(host, port)


@sandbox_cli.command("ghl")
def sandbox_ghl(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8765, "--port")):
    """Serve a local GHL sandbox (the endpoints the client uses; records what it "sends"; fault injection)."""
    from engine.adapters.ghl_sandbox import main as sandbox_main

    sandbox_main(host, port)


@cli.command()
def up(host: str = typer.Option("127.0.0.1", "--host"),
       ghl_port: int = typer.Option(8765, "--ghl-port", help="Port of the local GHL sandbox."),
       webhook_port: int = typer.Option(8787, "--webhook-port", help="Port of the webhook receiver.")):
    """Run the local stack until Ctrl-C: the GHL sandbox (when no GHL credentials are set) and the webhook
    receiver, wired to the engine."""
    import socket

    from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
    from engine.entrypoints.webhooks import serve

    def free(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((host, port)) != 0

    _app(serving="`alpha up`")  # bad config or an uninitialised database: say so before starting anything
    if not (os.environ.get("GHL_API_KEY") and os.environ.get("GHL_LOCATION_ID")):
        if not free(ghl_port):
            raise AlphaError(f"port {ghl_port} is in use: stop what runs there or pass --ghl-port")
        server, url = start_sandbox(host, ghl_port)
        os.environ.update({"GHL_API_KEY": "sandbox-token", "GHL_LOCATION_ID": DEFAULT_LOCATION, "GHL_BASE_URL": url})
        print(f"GHL SANDBOX on {url}: no GHL credentials are set, so every send goes to this local sandbox "
              f"(see {url}/_sandbox/messages). Nothing reaches a real inbox.")
    else:
        print(f"GHL: {os.environ.get('GHL_BASE_URL') or 'https://services.leadconnectorhq.com'} "
              f"(location {os.environ['GHL_LOCATION_ID']})")
    if not free(webhook_port):
        raise AlphaError(f"port {webhook_port} is in use: stop what runs there or pass --webhook-port")
    os.environ.setdefault("ALPHA_WEBHOOK_URL", f"http://{host}:{webhook_port}")
    print(f"webhook receiver on http://{host}:{webhook_port}; `alpha verify --no-send` checks the stack. Ctrl-C stops.")
    serve(host, webhook_port)


@cli.command("dev")
def dev(console_port: int = typer.Option(8501, "--console-port", help="Port of the console (Streamlit)."),
        ghl_port: int = typer.Option(8765, "--ghl-port", help="Port of the local GHL sandbox."),
        webhook_port: int = typer.Option(8787, "--webhook-port", help="Port of the webhook receiver."),
        assisted: bool = typer.Option(False, "--assisted",
                                      help="Demo step into the assisted phase (a demo configuration that sends to "
                                           "the local sandbox only), so approvals have work."),
        ready_timeout: float = typer.Option(90.0, "--ready-timeout", help="Seconds each part may take to answer.")):
    """What `make run` runs: init, the demo data (with a blind-review set), then the console, the local GHL
    sandbox, the webhook receiver and a worker, all on 127.0.0.1, supervised: the demo password is printed once
    everything answers; when any part stops, everything stops (exit 1); Ctrl-C stops everything."""
    from engine.entrypoints.devstack import run_dev

    raise typer.Exit(run_dev(console_port=console_port, ghl_port=ghl_port, webhook_port=webhook_port,
                             assisted=assisted, ready_timeout=ready_timeout))


@cli.command()
def verify(as_json: bool = JsonOpt,
           no_send: bool = typer.Option(False, "--no-send", help="Do not send a Slack test message."),
           webhook_url: Optional[str] = typer.Option(None, "--webhook-url",
                                                     help="Receiver to check (default $ALPHA_WEBHOOK_URL, else "
                                                          "the running receiver's address from its heartbeat, "
                                                          "else http://127.0.0.1:8787)."),
           sandbox: bool = typer.Option(False, "--sandbox",
                                        help="Accept the local sandbox loop: exit 0 when nothing fails, even with "
                                             "the GHL sandbox and no Slack (not ready for live phases).")):
    """Check GHL, Slack, the LLM chain, the webhook receiver and the breakers. Exit 0 only when ready for live
    phases (every required integration configured, real and passing), or with --sandbox when the local loop
    works."""
    from engine.services.verify import run_verify

    app = _app()
    report = run_verify(app, send_slack=not no_send, webhook_url=webhook_url)
    app.alerts.flush()
    passed = report["ready_for_sandbox"] if sandbox else report["ready_for_live"]
    if as_json:
        _out({**report, "accepted": "sandbox" if sandbox else "live", "passed": passed})
    else:
        for c in report["checks"]:
            print(f"{c['name']:9} {c['status'].upper():15} {c['reason']}")
        print(report["sandbox_summary"])
        print(report["summary"])
        if passed:
            print("verify: PASS" + (" (sandbox loop; not ready for live phases)" if sandbox
                                    and not report["ready_for_live"] else ""))
        elif sandbox:
            print("verify: FAIL (the local loop does not work: fix the failing checks)")
        else:
            print("verify: FAIL (not ready for live phases" + (
                "; `alpha verify --sandbox` accepts the local sandbox loop, which works)"
                if report["ready_for_sandbox"] else ")"))
    raise typer.Exit(0 if passed else 1)


@cli.command()
def alert(test: bool = typer.Option(False, "--test", help="Send a test alert to Slack."),
          text: str = typer.Option("Test alert from alpha.", "--text")):
    """Send an alert to Slack (--test sends a test message); prints how it went."""
    if not test:
        raise AlphaError("nothing to do: use --test")
    app = _app()
    row = app.alerter.send_test(text)
    print(f"alert {row.status}" + (f": {row.error}" if row.error else ""))
    raise typer.Exit(0 if row.status == "sent" else 1)


# ---------------------------------------------------------------------------------------------- pipeline

def _progress(label: str):
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


@leads_cli.command("import")
def leads_import(file: str, as_json: bool = JsonOpt,
                 encoding: Optional[str] = typer.Option(None, "--encoding",
                                                        help="The file's encoding (e.g. cp1251, shift_jis), when it "
                                                             "is not UTF-8 and detection refuses to guess.")):
    """Import leads from a CSV (aliases, encodings and delimiters detected); bad rows reported, good rows kept."""
    app = _app()
    update, bar = _progress("importing")
    with bar:
        report = app.import_leads(file, progress=update, encoding=encoding)
    if as_json:
        _out(report)
        return
    for note in report.get("notes") or []:
        print(f"note: {note}")
    print(f"imported {report['imported']}, updated {report['updated']}, rejected {report['rejected']}")
    for e in report["errors"][:50]:
        print(f"  row {e['row']}: {e['field']}: {e['error']}")
    if len(report["errors"]) > 50:
        print(f"  ... and {len(report['errors']) - 50} more (use --json for all)")


@leads_cli.command("export")
def leads_export(file: str):
    """Export every lead to CSV (spreadsheet formula injection neutralised)."""
    from engine.adapters.leads_csv import export_leads

    app = _app()
    n = export_leads(app.store, file)
    print(f"exported {n} leads to {file}")


@shadow_cli.command("run")
def shadow_run_cmd(contacts: int = typer.Option(..., "--contacts", help="How many leads."),
                   llm: bool = typer.Option(False, "--llm", help="Personalise drafts with the LLM chain."),
                   as_json: bool = JsonOpt):
    """Score, route, draft and decide for N leads with the gateway in shadow: every rule runs, nothing leaves."""
    from engine.services.pipeline import shadow_run

    app = _app()
    update, bar = _progress("shadow run")
    with bar:
        summary = shadow_run(app, contacts, progress=update, use_llm=llm)
    if as_json:
        _out(summary)
        return
    print(f"shadow run {summary['run_id']}: {summary['leads']} leads, nothing sent")
    for key in ("by_status", "by_tier", "by_sequence", "by_reason"):
        print(f"  {key.removeprefix('by_'):9} " + ", ".join(f"{k}={v}" for k, v in summary[key].items()))


@shadow_cli.command("export")
def shadow_export(file: str, run: Optional[int] = typer.Option(None, "--run", help="Run id (default: newest).")):
    """Write a shadow run's emails, decisions and reasons to CSV."""
    from engine.services.pipeline import export_shadow

    app = _app()
    n = export_shadow(app, file, run)
    print(f"exported {n} shadow emails to {file}")


@cli.command()
def demo(file: str = typer.Option("data/demo_leads.csv", "--file", help="The demo CSV."),
         assisted: bool = typer.Option(False, "--assisted",
                                       help="Then step the rollout into assisted (gated; on demo data a recorded "
                                            "demo override) and run the daily cycle, so sends wait in Approvals. "
                                            "Needs a config that lets assisted send: `make run DEMO=assisted`."),
         review_size: int = typer.Option(50, "--review-size", help="Leads in the blind-review set for the AE.")):
    """Into an EMPTY database only: import the demo leads and run a shadow run over them (nothing is sent). On a
    demo database: a blind-review set for the AE if none exists, and with --assisted the step into assisted."""
    from sqlmodel import func, select

    from engine.entrypoints.devstack import (
        check_assisted_demo,
        demo_database_problem,
        ensure_review_set,
        step_into_assisted,
    )
    from engine.adapters.models import Lead
    from engine.services.pipeline import daily_run, shadow_run

    app = _app()
    if assisted:
        check_assisted_demo(app)  # before anything is loaded
    with app.store.read() as s:
        n = s.exec(select(func.count()).select_from(Lead)).one()
    if n:
        print(f"demo: the database already holds {n} leads; nothing loaded")
    else:
        update, bar = _progress("importing demo leads")
        with bar:
            report = app.import_leads(file, progress=update)
        print(f"demo: imported {report['imported']} leads ({report['rejected']} bad rows reported, as intended)")
        update, bar = _progress("shadow run")
        with bar:
            summary = shadow_run(app, report["imported"] + report["updated"], progress=update)
        print(f"demo: shadow run {summary['run_id']} over {summary['leads']} leads: "
              + ", ".join(f"{k}={v}" for k, v in summary["by_status"].items()) + " (nothing sent)")
    problem = demo_database_problem(app)
    if problem is None:
        made, existing = ensure_review_set(app, review_size, actor=f"alpha demo ({default_actor()})")
        if made:
            print(f"demo: blind-review set {made['set_id']} of {made['size']} leads for the AE (log in as ae, "
                  "open Blind review)")
        else:
            print(f"demo: blind-review set {existing} exists")
    elif n:
        print("demo: no blind-review set made here (not a demo database); `alpha compare generate 50` makes one")
    if not assisted:
        return
    step_into_assisted(app, f"alpha demo ({default_actor()})")
    update, bar = _progress("daily run")
    with bar:
        summary = daily_run(app, progress=update)
    pending = summary["by_status"].get("pending_approval", 0)
    print(f"demo: daily run {summary['day']}: " + ", ".join(f"{k}={v}" for k, v in summary["by_status"].items())
          + (f"; {pending} sends wait in Approvals (log in as approver)" if pending else ""))


@daily_cli.command("run")
def daily_run_cmd(import_file: Optional[str] = typer.Option(None, "--import", help="A CSV to import first."),
                  llm: bool = typer.Option(False, "--llm"), as_json: bool = JsonOpt):
    """Import, score, route, draft and queue the day's next steps; safe to run twice the same day."""
    from engine.services.pipeline import daily_run

    from engine.queries.health import SCHEDULER, beat
    from engine.adapters.logs import configure_logging

    configure_logging()  # ALPHA_LOG_FORMAT=json|text, ALPHA_LOG_LEVEL
    app = _app(serving="the daily run")
    update, bar = _progress("daily run")
    with bar:
        summary = daily_run(app, import_file, progress=update, use_llm=llm)
    try:  # the scheduler's heartbeat: component health shows when the last daily run was
        beat(app.store, SCHEDULER, {"day": summary.get("day"), "leads": summary.get("leads"),
                                    "by_status": summary.get("by_status")})
    except Exception as e:  # noqa: BLE001 - the run itself is done and recorded
        print(f"warning: scheduler heartbeat not recorded: {e}", file=sys.stderr)
    if as_json:
        _out(summary)
        return
    print(f"daily run {summary['day']}: {summary['leads']} leads: "
          + ", ".join(f"{k}={v}" for k, v in summary["by_status"].items()))


@drafts_cli.command("list")
def drafts_list(status_: Optional[str] = typer.Option(None, "--status"), limit: int = typer.Option(50, "--limit"),
                as_json: bool = JsonOpt):
    """The newest drafts."""
    from sqlmodel import select

    from engine.adapters.models import Draft

    app = _app()
    with app.store.read() as s:
        q = select(Draft)
        if status_:
            q = q.where(Draft.status == status_)
        rows = s.exec(q.order_by(Draft.id.desc()).limit(limit)).all()
    data = [{"id": d.id, "lead_id": d.lead_id, "sequence": d.sequence, "step": d.step, "template": d.template_id,
             "version": d.template_version, "status": d.status, "subject": d.subject,
             "flags": [f.get("code") for f in (d.flags or [])]} for d in rows]
    if as_json:
        _out(data)
        return
    for d in data:
        print(f"{d['id']:6} {d['status']:9} lead {d['lead_id']:<6} {d['sequence']}/{d['step']} {d['template']} "
              f"v{d['version']}  {d['subject']}  {','.join(x for x in d['flags'] if x)}")


@drafts_cli.command("approve")
def drafts_approve(draft_id: int, actor: Optional[str] = ActorOpt):
    """Approve a draft (audited)."""
    from engine.services.pipeline import set_draft_status

    app = _app()
    set_draft_status(app, draft_id, "approved", actor or default_actor())
    print(f"draft {draft_id} approved")


@drafts_cli.command("reject")
def drafts_reject(draft_id: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Reject a draft with a reason (audited)."""
    from engine.services.pipeline import set_draft_status

    app = _app()
    set_draft_status(app, draft_id, "rejected", actor or default_actor(), reason)
    print(f"draft {draft_id} rejected")


@cli.command()
def send(internal_only: bool = typer.Option(False, "--internal-only",
                                            help="Send approved drafts to the internal addresses only."),
         limit: int = typer.Option(3, "--limit")):
    """First live sends (assisted phase): approved drafts to the internal addresses in config, through the gateway."""
    from engine.services.pipeline import send_internal

    if not internal_only:
        raise AlphaError("only --internal-only is supported: lead sends go through `alpha daily run`")
    app = _app()
    for r in send_internal(app, limit):
        print(json.dumps(r, default=str))


@approvals_cli.command("list")
def approvals_list(as_json: bool = JsonOpt,
                   kind: Optional[str] = typer.Option(None, "--kind", help="send | hot_lead (default: both)"),
                   status: str = typer.Option("pending", "--status", help="pending | approved | rejected | expired"),
                   limit: int = typer.Option(200, "--limit")):
    """The approval queue, most urgent first: sends (with where each message goes) and hot-lead escalations,
    with SLA minutes left and breaches."""
    app = _app()
    if kind not in (None, "send", "hot_lead"):
        raise InvalidRequest(f"--kind {kind!r}: use send or hot_lead")
    keep = ("id", "kind", "outbox_id", "lead_id", "action_type", "risk", "requested_by", "to", "subject",
            "lead_email", "company", "summary", "sla_due_at", "sla_minutes_left", "breached", "escalated_to",
            "expires_at", "status")
    data = [{k: r[k] for k in keep} for r in app.approvals.queue(status=status, kind=kind, limit=limit)["rows"]]
    if as_json:
        _out(data)
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
    app = _app()
    a = app.approvals.approve(approval_id, actor or default_actor())
    print(f"approval {a.id} approved; it executes at the next `alpha approvals process` (all checks re-run)")


@approvals_cli.command("reject")
def approvals_reject(approval_id: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Reject with a reason; the message will not be sent."""
    app = _app()
    a = app.approvals.reject(approval_id, actor or default_actor(), reason)
    print(f"approval {a.id} rejected")


@approvals_cli.command("edit")
def approvals_edit(approval_id: int, subject: Optional[str] = typer.Option(None, "--subject"),
                   html_file: Optional[str] = typer.Option(None, "--html-file"),
                   actor: Optional[str] = ActorOpt):
    """Edit the message before approval; someone else must then approve it."""
    app = _app()
    html = _open_input(html_file).read() if html_file else None
    app.approvals.edit(approval_id, actor or default_actor(), subject=subject, html=html)
    print(f"approval {approval_id} edited; another person must approve it")


@approvals_cli.command("process")
def approvals_process(limit: int = typer.Option(100, "--limit"), as_json: bool = JsonOpt):
    """Run the execution queue once: escalate SLA breaches, expire, then execute what is approved or due."""
    app = _app()
    out = app.approvals.process(limit)
    app.alerts.flush()
    if as_json:
        _out(out)
        return
    print(f"escalated {len(out['escalated'])}, expired {len(out['expired'])}, processed {len(out['results'])}")
    for r in out["results"]:
        print(json.dumps(r, default=str))


@cli.command()
def worker(interval: float = typer.Option(5.0, "--interval", help="Seconds to wait when nothing is due.")):
    """Run the execution queue continuously (Ctrl-C or SIGTERM stops it after the current item)."""
    import signal

    from engine.adapters.logs import configure_logging

    configure_logging()  # ALPHA_LOG_FORMAT=json|text, ALPHA_LOG_LEVEL
    app = _app(serving="the worker")
    stopping = {"now": False}

    def stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    from engine.adapters.anchor import PeriodicCheckpoints

    checkpoints = PeriodicCheckpoints(app).start()  # signed audit checkpoints (ALPHA_AUDIT_CHECKPOINT_*)
    from engine.queries.health import WORKER, Beater, mark_stopped

    # the worker's heartbeat, from its own loop (run_forever calls stop() every iteration), about once per interval
    heartbeat = Beater(app.store, WORKER, every=max(1.0, interval), info={"interval": interval, "pid": os.getpid()})
    print(f"worker started (database {app.store.display_url}); Ctrl-C stops it")
    try:
        app.approvals.run_forever(interval, stop=lambda: (heartbeat(), stopping["now"])[1])
    except KeyboardInterrupt:
        pass
    try:
        mark_stopped(app.store, WORKER)
    except Exception:  # noqa: BLE001 - stopping anyway
        pass
    checkpoints.stop()
    app.alerts.flush()
    print("worker stopped")


@compare_cli.command("generate")
def compare_generate(n: int, seed: Optional[int] = typer.Option(None, "--seed"), actor: Optional[str] = ActorOpt):
    """Draw N leads, stratified by the AI's tier, into a new blind review set."""
    from engine.services.blind_review import generate

    app = _app()
    r = generate(app, n, seed, actor or default_actor())
    print(f"review set {r['set_id']}: {r['size']} leads (" + ", ".join(
        f"AI tier {k}: {v}" for k, v in sorted(r["by_ai_tier"].items())) + ")")


@compare_cli.command("next")
def compare_next(set_id: Optional[int] = typer.Option(None, "--set"), as_json: bool = JsonOpt):
    """The next unlabeled lead of a set: its facts only (the AI's tier is never shown)."""
    from engine.services.blind_review import next_item

    app = _app()
    item = next_item(app, set_id)
    if item is None:
        print("nothing left to label")
        return
    if as_json:
        _out(item.to_dict())
        return
    print(f"item {item.item_id} ({item.labeled + 1} of {item.total})")
    for k, v in item.facts.items():
        print(f"  {k:15} {'' if v is None else v}")


@compare_cli.command("label")
def compare_label(item_id: int, label: str, note: Optional[str] = typer.Option(None, "--note"),
                  actor: Optional[str] = ActorOpt):
    """Label a review item: 1, 2, 3 or disqualified."""
    from engine.services.blind_review import label as do_label

    app = _app()
    do_label(app, item_id, label, actor or default_actor(), note)
    print(f"item {item_id} labeled")


@compare_cli.command("analyze")
def compare_analyze(set_id: Optional[int] = typer.Option(None, "--set"),
                    from_csv: Optional[str] = typer.Option(None, "--from-csv", help="ai_label,human_label CSV."),
                    export: Optional[str] = typer.Option(None, "--export-disagreements"),
                    as_json: bool = JsonOpt):
    """n, agreement, Cohen's kappa, confusion matrix, per-tier precision/recall, disagreements, pass/fail."""
    from engine.rules.agreement import analyze_csv, disagreements_csv
    from engine.services.blind_review import analyze

    if from_csv:
        from engine.core.config import load_settings

        c = load_settings().production.comparison
        result = analyze_csv(from_csv, min_labels=c.min_labels, threshold=c.agreement_threshold)
    else:
        result = analyze(_app(), set_id)
    if export:
        disagreements_csv(result, export)
    if as_json:
        _out(result)
    else:
        ag, k = result.get("agreement"), result.get("kappa")
        print(f"n={result['n']} agreement={'-' if ag is None else f'{ag:.1%}'} "
              f"kappa={'-' if k is None else f'{k:.3f}'} -> {'PASS' if result['passed'] else 'FAIL'}")
        for r in result.get("reasons", []):
            print(f"  {r}")
        labels = list(result["confusion"])
        print("  AI \\ human " + " ".join(f"{x:>12}" for x in labels))
        for a in labels:
            print(f"  {a:>12} " + " ".join(f"{result['confusion'][a].get(h, 0):>12}" for h in labels))
    raise typer.Exit(0 if result["passed"] else 1)


@cli.command("readiness")
def readiness_cmd(as_json: bool = JsonOpt):
    """The 0-100 readiness score from live checks, and the go/no-go table for the next phase."""
    from engine.services.readiness import readiness

    app = _app()
    r = readiness(app)
    if as_json:
        _out(r)
        return
    print(f"readiness {r['score']}/100 (phase {r['phase']})")
    for c in r["categories"]:
        print(f"  {c['name']:24} {c['score']:>3}/{c['max']}")
        for x in c["checks"]:
            print(f"      [{'x' if x['passed'] else ' '}] {x['name']}: {x['evidence']}")
    if r["next_phase"]:
        print(f"next phase {r['next_phase']}: {'ALLOWED' if r['next_phase_allowed'] else 'BLOCKED'}")
        for b in r["blocking"]:
            print(f"  - {b}")


@users_cli.command("add")
def users_add(username: str, name: str = typer.Option(..., "--name"), email: str = typer.Option(..., "--email"),
              role: str = typer.Option(..., "--role", help="ae | approver | ops | admin")):
    """Add a console user; the password is asked for (never an argument, so it stays out of shell history)."""
    from engine.adapters.users import add_user

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    add_user(username, name, email, role, password)
    print(f"user {username} added with role {role}")


def _revoke_sessions(username: str, reason: str) -> None:
    """End the user's console sessions on the server (audited). Without a usable database they end anyway at
    their next click (the console checks the user and the password fingerprint on every run)."""
    from engine.services.sessions import SessionService

    try:
        app = _app()
        n = SessionService.for_app(app).revoke_user(username, reason, f"cli:{default_actor()}")
    except (AlphaError, OperationalError) as e:
        print(f"note: open console sessions of {username} were not revoked in the database ({e}); they are "
              "refused at their next click anyway", file=sys.stderr)
        return
    print(f"{n} open console session(s) of {username} ended")


@users_cli.command("remove")
def users_remove(username: str):
    """Remove a console user and end their console sessions."""
    from engine.adapters.users import remove_user

    remove_user(username)
    print(f"user {username} removed")
    _revoke_sessions(username, "user_removed")


@users_cli.command("set-password")
def users_set_password(username: str):
    """Set a console user's password (asked for, twice) and end their console sessions."""
    from engine.adapters.users import set_password

    password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    set_password(username, password)
    print(f"password of {username} changed")
    _revoke_sessions(username, "password_changed")


@users_cli.command("sessions")
def users_sessions(username: Optional[str] = typer.Argument(None, help="Only this user's sessions."),
                   include_ended: bool = typer.Option(False, "--all", help="Also ended (revoked, expired) ones."),
                   as_json: bool = JsonOpt):
    """Console sessions: who is signed in, since when, from where (never the token)."""
    from engine.services.sessions import SessionService

    rows = SessionService.for_app(_app()).sessions(username, include_ended=include_ended)
    if as_json:
        _out(rows)
        return
    if not rows:
        print("no open console sessions" if not include_ended else "no console sessions")
    for r in rows:
        print(f"{r['id']:>6} {r['username']:20} {r['state']:26} since {r['created_at']:%Y-%m-%d %H:%M} UTC  "
              f"last seen {r['last_seen_at']:%Y-%m-%d %H:%M} UTC  {r['client'] or ''}")


@users_cli.command("revoke")
def users_revoke(username: str, actor: Optional[str] = ActorOpt):
    """End every open console session of a user now (they must log in again)."""
    from engine.services.sessions import SessionService

    n = SessionService.for_app(_app()).revoke_user(username, "revoked", f"cli:{actor or default_actor()}")
    print(f"{n} open console session(s) of {username} ended")


@users_cli.command("list")
def users_list(as_json: bool = JsonOpt):
    """Console users and roles (no password hashes)."""
    from engine.adapters.users import list_users

    rows = list_users()
    if as_json:
        _out(rows)
        return
    for u in rows:
        print(f"{u['username']:20} {', '.join(u.get('roles') or []):20} {u.get('email') or ''}")


def _check_report(report: dict, as_json: bool) -> None:
    if as_json:
        _out(report)
    else:
        for c in report["checks"]:
            print(f"[{'x' if c['passed'] else ' '}] {c['name']}: {c['got']}")
        print(f"{report['kind']}: {'PASS' if report['ok'] else 'FAIL'}")
    raise typer.Exit(0 if report["ok"] else 1)


@cli.command()
def canary(as_json: bool = JsonOpt):
    """A synthetic internal lead through the whole pipeline; planted violations must be caught. Exit 1 on failure."""
    from engine.services.canary import run_canary

    app = _app()
    report = run_canary(app)
    app.alerts.flush()
    _check_report(report, as_json)


@cli.command("unsubscribe-test")
def unsubscribe_test(as_json: bool = JsonOpt):
    """Templates show unsubscribe and address; sends carry RFC 8058 headers; suppression and one-click work."""
    from engine.services.canary import run_unsubscribe_test

    app = _app()
    report = run_unsubscribe_test(app)
    app.alerts.flush()
    _check_report(report, as_json)


@report_cli.command("weekly")
def report_weekly(week: Optional[str] = typer.Option(None, "--week", help="ISO week, e.g. 2026-W47 (default: "
                                                     "the 7 days ending now)."),
                  out: Optional[str] = typer.Option(None, "--out", help="Folder to write weekly-<week>.md and .csv "
                                                    "into (default: print the Markdown)."),
                  as_json: bool = JsonOpt):
    """The week's KPIs (sent, replies, positive replies, bounces, complaints, approvals and their latency,
    hot leads, agreement trend, guardrail denials by reason) as Markdown and CSV."""
    from engine.queries.report import to_markdown, week_window, weekly, write

    app = _app()
    start, end, label = week_window(week, app.clock())
    r = weekly(app, start, end, label)
    if as_json:
        _out(r)
    elif out:
        md, cs = write(r, out, f"weekly-{week or f'{end:%Y-%m-%d}'}")
        print(f"wrote {md} and {cs}")
    else:
        print(to_markdown(r), end="")


# ---------------------------------------------------------------------------------------------- entry

try:  # typer >= 0.2x vendors its own click; catch both so no usage error becomes a traceback
    from typer._click.exceptions import ClickException as _VendoredClickException
except ImportError:  # pragma: no cover
    _VendoredClickException = click.ClickException
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_USAGE = (click.ClickException, _VendoredClickException)


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
        if _truthy_env("ALPHA_DEBUG"):
            raise
        from engine.adapters.audit import redact

        print(f"alpha: internal error ({type(e).__name__}: {redact(str(e))}). This is a bug, not your input: "
              "please report it with the command you ran; set ALPHA_DEBUG=1 to see the traceback.", file=sys.stderr)
        sys.exit(70)
    sys.exit(rc if isinstance(rc, int) else 0)


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
