"""`make bench` cannot rot silently: the runner in --quick mode (tiny sizes, one run each) runs every benchmark
end to end and writes well-formed results. No timing is asserted here: the figures are benchmarks/RESULTS.md's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_runs_every_benchmark_and_writes_its_results(tmp_path):
    p = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    m = results["machine"]
    assert m["cores"] >= 1 and m["python"] and m["sqlite"] and m["date"] and "postgresql" in m
    from benchmarks.run import BENCHMARKS

    assert [b["name"] for b in results["benchmarks"]] == list(BENCHMARKS)
    for b in results["benchmarks"]:
        assert "error" not in b, b
        assert b["figures"], f"{b['name']} measured nothing"
        for f in b["figures"]:
            assert f["runs"] == len(f["samples"]) >= 1 and f["min"] <= f["median"] <= f["max"], f
            assert f["unit"] and "passed" in f and "goal" in f
    names = {f["name"] for b in results["benchmarks"] for f in b["figures"]}
    assert any(n.startswith("Gateway submit, sqlite") for n in names)
    assert any(n.startswith("Page Status") for n in names)  # every existing console page is rendered
    drafting = next(b for b in results["benchmarks"] if b["name"] == "drafting")["figures"]
    assert drafting[0]["refused_429"] == [0] and drafting[1]["llm_calls"] == [0]  # limit held; cache served all
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| benchmark | median |" in table and "Gateway submit, sqlite" in table
    assert "[gateway]" in p.stderr and "1/1" in p.stderr  # one progress line per run on stderr
