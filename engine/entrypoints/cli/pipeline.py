"""The pipeline: leads, shadow runs, the daily cycle, drafts, the first internal sends and the demo."""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from engine.core.errors import AlphaError
from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, ReasonOpt, default_actor, print_json, progress

commands = typer.Typer()  # this module's top-level commands: the root registers them, in its order
leads_cli = typer.Typer(no_args_is_help=True, help="Leads: import and export CSV.")
shadow_cli = typer.Typer(no_args_is_help=True, help="Shadow runs: the whole pipeline, nothing leaves.")
daily_cli = typer.Typer(no_args_is_help=True, help="The daily cycle (schedule it with cron or a systemd timer).")
drafts_cli = typer.Typer(no_args_is_help=True, help="Drafted emails: list, approve, reject.")


@leads_cli.command("import")
def leads_import(file: str, as_json: bool = JsonOpt,
                 encoding: Optional[str] = typer.Option(None, "--encoding",
                                                        help="The file's encoding (e.g. cp1251, shift_jis), when it "
                                                             "is not UTF-8 and detection refuses to guess.")):
    """Import leads from a CSV (aliases, encodings and delimiters detected); bad rows reported, good rows kept."""
    app = common.open_app()
    update, bar = progress("importing")
    with bar:
        report = app.import_leads(file, progress=update, encoding=encoding)
    if as_json:
        print_json(report)
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

    app = common.open_app()
    n = export_leads(app.store, file)
    print(f"exported {n} leads to {file}")


@shadow_cli.command("run")
def shadow_run_cmd(contacts: int = typer.Option(..., "--contacts", help="How many leads."),
                   llm: bool = typer.Option(False, "--llm", help="Personalise drafts with the LLM chain."),
                   as_json: bool = JsonOpt):
    """Score, route, draft and decide for N leads with the gateway in shadow: every rule runs, nothing leaves."""
    from engine.services.pipeline import shadow_run

    app = common.open_app()
    update, bar = progress("shadow run")
    with bar:
        summary = shadow_run(app, contacts, progress=update, use_llm=llm)
    if as_json:
        print_json(summary)
        return
    print(f"shadow run {summary['run_id']}: {summary['leads']} leads, nothing sent")
    for key in ("by_status", "by_tier", "by_sequence", "by_reason"):
        print(f"  {key.removeprefix('by_'):9} " + ", ".join(f"{k}={v}" for k, v in summary[key].items()))


@shadow_cli.command("export")
def shadow_export(file: str, run: Optional[int] = typer.Option(None, "--run", help="Run id (default: newest).")):
    """Write a shadow run's emails, decisions and reasons to CSV."""
    from engine.services.pipeline import export_shadow

    app = common.open_app()
    n = export_shadow(app, file, run)
    print(f"exported {n} shadow emails to {file}")


@commands.command()
def demo(file: Optional[str] = typer.Option(None, "--file", help="The demo CSV (default: the demo leads shipped "
                                                                    "with the package; data/demo_leads.csv in a "
                                                                    "checkout)."),
         assisted: bool = typer.Option(False, "--assisted",
                                       help="Then step the rollout into assisted (gated; on demo data a recorded "
                                            "demo override) and run the daily cycle, so sends wait in Approvals. "
                                            "Needs a config that lets assisted send: `make run DEMO=assisted`."),
         review_size: int = typer.Option(50, "--review-size", help="Leads in the blind-review set for the AE.")):
    """Into an EMPTY database only: import the demo leads and run a shadow run over them (nothing is sent). On a
    demo database: the shadow run if none ever finished (an earlier `alpha demo` was stopped during it), a
    blind-review set for the AE if none exists, and with --assisted the step into assisted."""
    from sqlmodel import func, select

    from engine.core.defaults import packaged_demo_leads
    from engine.entrypoints.devstack import (
        check_assisted_demo,
        demo_database_problem,
        ensure_review_set,
        shadow_missing,
        step_into_assisted,
    )
    from engine.adapters.models import Lead
    from engine.services.pipeline import daily_run, shadow_run

    app = common.open_app()
    if assisted:
        check_assisted_demo(app)  # before anything is loaded
    with app.store.read() as s:
        n = s.exec(select(func.count()).select_from(Lead)).one()
    if n:
        print(f"demo: the database already holds {n} leads; nothing loaded")
        missing = shadow_missing(app)
        if missing:
            print("demo: the demo leads are loaded but their shadow run never finished (an earlier `alpha demo` "
                  "was stopped during it); running it now")
            update, bar = progress("shadow run")
            with bar:
                summary = shadow_run(app, missing, progress=update)
            print(f"demo: shadow run {summary['run_id']} over {summary['leads']} leads: "
                  + ", ".join(f"{k}={v}" for k, v in summary["by_status"].items()) + " (nothing sent)")
    else:
        update, bar = progress("importing demo leads")
        with bar:
            report = app.import_leads(file or str(packaged_demo_leads()), progress=update)
        print(f"demo: imported {report['imported']} leads ({report['rejected']} bad rows reported, as intended)")
        update, bar = progress("shadow run")
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
    update, bar = progress("daily run")
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
    app = common.open_app(serving="the daily run")
    update, bar = progress("daily run")
    with bar:
        summary = daily_run(app, import_file, progress=update, use_llm=llm)
    try:  # the scheduler's heartbeat: component health shows when the last daily run was
        beat(app.store, SCHEDULER, {"day": summary.get("day"), "leads": summary.get("leads"),
                                    "by_status": summary.get("by_status")})
    except Exception as e:  # noqa: BLE001 - the run itself is done and recorded
        print(f"warning: scheduler heartbeat not recorded: {e}", file=sys.stderr)
    if as_json:
        print_json(summary)
        return
    print(f"daily run {summary['day']}: {summary['leads']} leads: "
          + ", ".join(f"{k}={v}" for k, v in summary["by_status"].items()))


@drafts_cli.command("list")
def drafts_list(status_: Optional[str] = typer.Option(None, "--status"), limit: int = typer.Option(50, "--limit"),
                as_json: bool = JsonOpt):
    """The newest drafts."""
    from sqlmodel import col, select

    from engine.adapters.models import Draft

    app = common.open_app()
    with app.store.read() as s:
        q = select(Draft)
        if status_:
            q = q.where(Draft.status == status_)
        rows = s.exec(q.order_by(col(Draft.id).desc()).limit(limit)).all()
    data = [{"id": d.id, "lead_id": d.lead_id, "sequence": d.sequence, "step": d.step, "template": d.template_id,
             "version": d.template_version, "status": d.status, "subject": d.subject,
             "flags": [f.get("code") for f in (d.flags or [])]} for d in rows]
    if as_json:
        print_json(data)
        return
    for d in data:
        print(f"{d['id']:6} {d['status']:9} lead {d['lead_id']:<6} {d['sequence']}/{d['step']} {d['template']} "
              f"v{d['version']}  {d['subject']}  {','.join(x for x in d['flags'] if x)}")


@drafts_cli.command("approve")
def drafts_approve(draft_id: int, actor: Optional[str] = ActorOpt):
    """Approve a draft (audited)."""
    from engine.services.pipeline import set_draft_status

    app = common.open_app()
    set_draft_status(app, draft_id, "approved", actor or default_actor())
    print(f"draft {draft_id} approved")


@drafts_cli.command("reject")
def drafts_reject(draft_id: int, reason: str = ReasonOpt, actor: Optional[str] = ActorOpt):
    """Reject a draft with a reason (audited)."""
    from engine.services.pipeline import set_draft_status

    app = common.open_app()
    set_draft_status(app, draft_id, "rejected", actor or default_actor(), reason)
    print(f"draft {draft_id} rejected")


@commands.command()
def send(internal_only: bool = typer.Option(False, "--internal-only",
                                            help="Send approved drafts to the internal addresses only."),
         limit: int = typer.Option(3, "--limit")):
    """First live sends (assisted phase): approved drafts to the internal addresses in config, through the gateway."""
    from engine.services.pipeline import send_internal

    if not internal_only:
        raise AlphaError("only --internal-only is supported: lead sends go through `alpha daily run`")
    app = common.open_app()
    for r in send_internal(app, limit):
        print(json.dumps(r, default=str))
