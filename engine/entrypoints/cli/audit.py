"""`alpha audit`: the hash-chained audit trail and its signed checkpoints."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import JsonOpt, open_input, print_json

audit_cli = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")


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

    app = common.open_app()
    keys = [anchor.load_public_key(k) for k in pubkey] if pubkey else None
    if checkpoint is not None and keys is None:
        keys = [anchor.load_public_key()]
    if write_checkpoint:  # a bad key or destination is reported before the (long) walk
        sign_key, dest = anchor.load_signing_key(), anchor.destination()
    stream = open_input(checkpoint) if checkpoint is not None else None
    try:
        with app.store.read() as s:
            r = audit.verify(s)
        report = None
        if stream is not None and checkpoint is not None and keys is not None:  # keys: given or the default
            report = anchor.verify_checkpoints(app, stream, keys, chain=r, source=checkpoint, any_db=any_db)
    finally:
        if stream is not None and stream is not sys.stdin:
            stream.close()
    ok = r.ok and (report is None or report["ok"])
    written = None
    if write_checkpoint and ok:
        written = anchor.checkpoint(app, verified=(r.head_seq, r.head_hash), dest=dest, key=sign_key)
    if as_json:
        print_json(r.to_dict() if report is None and not write_checkpoint
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

    out = anchor.checkpoint(common.open_app())
    if as_json:
        print_json(out)
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
    from sqlmodel import col, select

    from engine.adapters.models import AuditEntry

    app = common.open_app()
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(n)).all()
    rows = list(reversed(rows))
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    for r in rows:
        print(f"{r.seq:6} {r.at} {r.event:22} {r.status or '':16} {r.actor:14} {r.ref or ''} {r.reasons}")
