"""`make bench`: run the benchmarks, write benchmarks/results.json and benchmarks/RESULTS.md.

    python -m benchmarks.run                 # everything, full sizes (several minutes)
    python -m benchmarks.run --quick         # tiny sizes, one run each: a smoke test of the harness
    python -m benchmarks.run --only gateway  # one benchmark (repeatable: --only shadow --only drafting)

Each figure is the median of several runs (3, or 5 where a run is cheap), measured beside the bare cost of the
same work where one is defined. One line per run goes to stderr. Every database is a throwaway: a temporary
SQLite file or a fresh PostgreSQL database on ALPHA_TEST_PG_URL (default 127.0.0.1:5432), dropped afterwards;
the user's .data is never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import bench_console, bench_drafting, bench_gateway, bench_import, bench_replies, bench_shadow
from .common import Figure, isolate_env, log, machine

BENCHMARKS = {m.NAME: m for m in (bench_import, bench_shadow, bench_gateway, bench_drafting, bench_console,
                                   bench_replies)}
HERE = Path(__file__).resolve().parent


@dataclass
class Context:
    quick: bool
    tmp: Path
    forced_runs: int | None = None

    def size(self, quick, full):
        """The problem size: ``quick`` in a smoke run, ``full`` otherwise."""
        return quick if self.quick else full

    def runs(self, default: int) -> int:
        """How many times to repeat a measurement: ``default`` (3, or 5 where cheap), 1 in quick mode."""
        if self.forced_runs:
            return self.forced_runs
        return 1 if self.quick else default


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return ""
    if unit == "s":
        return f"{x:,.2f} s"
    if unit.endswith("/s"):
        return f"{x:,.0f}/s"
    return f"{x:,.3g} {unit}".strip()


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"`make bench` ({'quick smoke run, tiny sizes' if results['quick'] else 'full sizes'}), "
        f"{_dates(results)}. Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}; Python "
        f"{m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or 'not available'}"
        + (f"; load average {m['load_before']} when the run started" if m.get("load_before") else "") + ".",
        "Each figure is the median of its runs; the bare baseline is the cost of the same work without the "
        "engine, measured in the same run; CPU is this process's CPU time (the steadier figure when other "
        "processes share the cores). Raw samples: `benchmarks/results.json`.",
        "",
        "| benchmark | median | min | max | runs | CPU | bare | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in results["benchmarks"]:
        if b.get("error"):
            lines.append(f"| {b['title']} | error: {b['error'].splitlines()[0][:120]} | | | | | | | | no |")
            continue
        for f in b["figures"]:
            met = {True: "yes", False: "**no**", None: ""}[f["passed"]]
            ratio = "" if f["ratio"] is None else f"{f['ratio']:.2f}x"
            lines.append(f"| {f['name']} | {_fmt(f['median'], f['unit'])} | {_fmt(f['min'], f['unit'])} | "
                         f"{_fmt(f['max'], f['unit'])} | {f['runs']} | {_fmt(f.get('cpu_median'), 's')} | "
                         f"{_fmt(f['baseline'], f['unit'])} | {ratio} | "
                         f"{f['goal']} | {met} |")
    lines += ["", "## Notes", "",
              "- Load average (1, 5, 15 min) when each benchmark started: "
              + "; ".join(f"{b['name']} {b.get('load_before') or '?'}" for b in results["benchmarks"])
              + f" ({m['cores']} cores: above {m['cores']} other processes were competing for them)."]
    for b in results["benchmarks"]:
        for f in b.get("figures", []):
            if f.get("note"):
                lines.append(f"- **{f['name']}**: {f['note']}")
    for b in results["benchmarks"]:
        if b.get("machine"):
            bm = b["machine"]
            lines.append(f"- **{b['title']}** was measured on another machine: {bm['cpu']}, {bm['cores']} cores, "
                         f"load average {bm.get('load_before') or '?'} ({b.get('date')}).")
    for b in results["benchmarks"]:
        if b["name"] == bench_replies.NAME and not b.get("error"):
            lines += bench_replies.markdown_section(b)
    analysis = HERE / "ANALYSIS.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    return "\n".join(lines) + "\n"


def _dates(results: dict) -> str:
    dates = sorted({b["date"] for b in results["benchmarks"] if b.get("date")})
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else results["machine"]["date"]


def _load() -> str | None:
    """The machine's load average (1, 5, 15 minutes): how much else was running."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and one run each (a smoke test)")
    ap.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                    help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, or 5 where cheap)")
    ap.add_argument("--out", type=Path, default=HERE, help="where results.json and RESULTS.md go (default benchmarks/)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other benchmarks' entries of the results.json in --out (with --only)")
    ap.add_argument("--markdown-only", action="store_true",
                    help="only rewrite RESULTS.md from the results.json in --out (e.g. after editing ANALYSIS.md)")
    args = ap.parse_args(argv)
    if args.markdown_only:
        (args.out / "RESULTS.md").write_text(markdown(json.loads((args.out / "results.json").read_text())))
        return 0

    names = args.only or list(BENCHMARKS)
    tmp = Path(tempfile.mkdtemp(prefix="alpha-bench-"))
    isolate_env(tmp)
    results = {"quick": args.quick, "machine": {**machine(), "load_before": _load()}, "benchmarks": []}
    failed = 0
    try:
        for name in names:
            mod = BENCHMARKS[name]
            log(f"[{name}] {mod.TITLE}")
            started = time.perf_counter()
            entry = {"name": name, "title": mod.TITLE, "load_before": _load(),
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            try:
                figures: list[Figure] = mod.run(Context(args.quick, tmp, args.runs))
                entry["figures"] = [f.to_dict() for f in figures]
            except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
                failed += 1
                entry["error"] = f"{type(e).__name__}: {e}"
                log(f"[{name}] FAILED: {entry['error']}\n{traceback.format_exc()}")
            entry["seconds"] = round(time.perf_counter() - started, 1)
            results["benchmarks"].append(entry)
            for f in entry.get("figures", []):
                met = {True: "met", False: "MISSED", None: "-"}[f["passed"]]
                log(f"[{name}] {f['name']}: median {_fmt(f['median'], f['unit'])} "
                    f"(bare {_fmt(f['baseline'], f['unit']) or '-'}) goal {f['goal'] or '-'}: {met}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge and (args.out / "results.json").exists():
        old = json.loads((args.out / "results.json").read_text())
        fresh = {b["name"]: b for b in results["benchmarks"]}
        kept = [b for b in old["benchmarks"] if b["name"] not in fresh]
        if kept and old.get("machine") and old["machine"].get("cpu") != results["machine"].get("cpu"):
            for b in fresh.values():  # the header keeps the machine of the figures merged into
                b["machine"] = results["machine"]
            results["machine"] = old["machine"]
        results["benchmarks"] = [fresh.pop(b["name"], b) for b in old["benchmarks"]] + list(fresh.values())
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(results))
    log(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
