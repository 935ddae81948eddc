"""`make bench`: the engine measured side by side with the bare cost of the same work (see benchmarks/run.py)."""
