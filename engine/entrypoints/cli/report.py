"""`alpha report`: the weekly review of KPIs."""
from __future__ import annotations

from typing import Optional

import typer

from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import JsonOpt, print_json

report_cli = typer.Typer(no_args_is_help=True, help="Reports: the weekly review of KPIs.")


@report_cli.command("weekly")
def report_weekly(week: Optional[str] = typer.Option(None, "--week", help="ISO week, e.g. 2026-W47 (default: "
                                                     "the 7 days ending now)."),
                  out: Optional[str] = typer.Option(None, "--out", help="Folder to write weekly-<week>.md and .csv "
                                                    "into (default: print the Markdown)."),
                  as_json: bool = JsonOpt):
    """The week's KPIs (sent, replies, positive replies, bounces, complaints, approvals and their latency,
    hot leads, agreement trend, guardrail denials by reason) as Markdown and CSV."""
    from engine.queries.report import to_markdown, week_window, weekly, write

    app = common.open_app()
    start, end, label = week_window(week, app.clock())
    r = weekly(app, start, end, label)
    if as_json:
        print_json(r)
    elif out:
        md, cs = write(r, out, f"weekly-{week or f'{end:%Y-%m-%d}'}")
        print(f"wrote {md} and {cs}")
    else:
        print(to_markdown(r), end="")
