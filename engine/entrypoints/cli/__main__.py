"""`python -m engine.entrypoints.cli`: the same as the `alpha` script."""
from engine.entrypoints.cli import main

main()
