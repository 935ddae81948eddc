"""The files of the AI-vs-human comparison: reading a labelled CSV and writing the disagreements.

The statistics are engine.rules.agreement (pure, on text and rows); this module is its file edge.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.adapters.leads_csv import write_safe_csv
from engine.core.errors import AlphaError
from engine.rules.agreement import DISAGREEMENT_COLUMNS, analyze_csv_text, check_csv_options, disagreement_rows


def read_csv_text(path: Path) -> str:
    """The text of a UTF-8 CSV file (a BOM is stripped); AlphaError naming the file when it cannot be read."""
    if not path.exists():
        raise AlphaError(f"comparison file not found: {path}")
    if path.is_dir():
        raise AlphaError(f"{path} is a directory, not a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AlphaError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")  # strips a BOM if there is one
    except UnicodeDecodeError as e:
        raise AlphaError(f"{path} is not UTF-8 text (bad byte at offset {e.start}): save it as CSV (UTF-8) "
                         "and try again") from None


def analyze_csv(path: str | Path, **kw: Any) -> dict:
    """engine.rules.agreement.analyze_csv_text on a CSV file (UTF-8 with or without a BOM). The keyword
    arguments (``min_labels``, ``threshold``) are checked before the file is read."""
    check_csv_options(kw)
    path = Path(path)
    return analyze_csv_text(read_csv_text(path), path, **kw)


def disagreements_csv(result: dict, path: str | Path) -> int:
    """Write ``result["disagreements"]`` to a UTF-8 CSV (columns index, row, ai, human, note; ``row`` is empty for
    a result of ``analyze``). Every cell is neutralised against spreadsheet formula injection (a leading = + - @
    gets an apostrophe). The file is written beside ``path`` and moved into place. Returns the number of rows."""
    return write_safe_csv(path, DISAGREEMENT_COLUMNS, disagreement_rows(result))
