"""`alpha compare`: the AI-vs-human blind comparison of lead tiers."""
from __future__ import annotations

from typing import Optional

import typer

from engine.entrypoints.cli import common
from engine.entrypoints.cli.common import ActorOpt, JsonOpt, default_actor, print_json

compare_cli = typer.Typer(no_args_is_help=True, help="AI-vs-human blind comparison of lead tiers.")


@compare_cli.command("generate")
def compare_generate(n: int, seed: Optional[int] = typer.Option(None, "--seed"), actor: Optional[str] = ActorOpt):
    """Draw N leads, stratified by the AI's tier, into a new blind review set."""
    from engine.services.blind_review import generate

    app = common.open_app()
    r = generate(app, n, seed, actor or default_actor())
    print(f"review set {r['set_id']}: {r['size']} leads (" + ", ".join(
        f"AI tier {k}: {v}" for k, v in sorted(r["by_ai_tier"].items())) + ")")


@compare_cli.command("next")
def compare_next(set_id: Optional[int] = typer.Option(None, "--set"), as_json: bool = JsonOpt):
    """The next unlabeled lead of a set: its facts only (the AI's tier is never shown)."""
    from engine.services.blind_review import next_item

    app = common.open_app()
    item = next_item(app, set_id)
    if item is None:
        print("nothing left to label")
        return
    if as_json:
        print_json(item.to_dict())
        return
    print(f"item {item.item_id} ({item.labeled + 1} of {item.total})")
    for k, v in item.facts.items():
        print(f"  {k:15} {'' if v is None else v}")


@compare_cli.command("label")
def compare_label(item_id: int, label: str, note: Optional[str] = typer.Option(None, "--note"),
                  actor: Optional[str] = ActorOpt):
    """Label a review item: 1, 2, 3 or disqualified."""
    from engine.services.blind_review import label as do_label

    app = common.open_app()
    do_label(app, item_id, label, actor or default_actor(), note)
    print(f"item {item_id} labeled")


@compare_cli.command("analyze")
def compare_analyze(set_id: Optional[int] = typer.Option(None, "--set"),
                    from_csv: Optional[str] = typer.Option(None, "--from-csv", help="ai_label,human_label CSV."),
                    export: Optional[str] = typer.Option(None, "--export-disagreements"),
                    as_json: bool = JsonOpt):
    """n, agreement, Cohen's kappa, confusion matrix, per-tier precision/recall, disagreements, pass/fail."""
    from engine.adapters.agreement_csv import analyze_csv, disagreements_csv
    from engine.services.blind_review import analyze

    if from_csv:
        from engine.core.config import load_settings

        c = load_settings().production.comparison
        result = analyze_csv(from_csv, min_labels=c.min_labels, threshold=c.agreement_threshold)
    else:
        result = analyze(common.open_app(), set_id)
    if export:
        disagreements_csv(result, export)
    if as_json:
        print_json(result)
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
