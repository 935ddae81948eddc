"""AI-vs-human blind comparison: how well the AI's lead labels agree with a person's labels for the same leads.

A reviewer labels a sample of leads without seeing the AI's answer; ``analyze`` compares the two columns.

Labels are the ICP tiers ``"1"``, ``"2"``, ``"3"`` and ``"disqualified"`` (``normalise_label`` accepts the usual
spellings). The result is plain JSON-ready data:

* ``agreement``: the share of leads where both labels are the same (observed agreement, p_o).
* ``kappa``: Cohen's kappa, unweighted: ``(p_o - p_e) / (1 - p_e)`` where the chance agreement p_e is
  ``sum over labels of (AI share of the label) * (human share of the label)``. It is computed from integer counts,
  ``(n * agreed - S) / (n * n - S)`` with ``S = sum of ai_count * human_count``, so no rounding creeps in before the
  final division. When p_e is 1 (every label in both columns is the same one) kappa is 0/0; it is then defined as
  1.0 if the labels all agree (they then always do) and 0.0 otherwise, and ``reasons`` says so.
* ``confusion[AI_LABEL][HUMAN_LABEL]``: counts; every canonical label appears, zero-filled.
* ``prevalence``: each column's share of each label (None when there are no labels).
* ``per_tier``: precision and recall per label with the HUMAN label taken as the truth; None (never NaN) when
  undefined (precision: the AI never gave the label; recall: the human never did). ``support`` is the number of
  human labels of that kind.
* ``disagreements``: ``{"index", "ai", "human", "note"}`` for each pair that differs, ``index`` being the pair's
  position (0-based) in the input.
* ``passed``: at least ``min_labels`` labels AND agreement strictly above ``threshold``. ``reasons`` says, in words,
  why it did not pass.

``analyze_csv_text`` reads the text of a CSV with ``ai_label`` and ``human_label`` columns (optional ``note``). A
row with a label that is not understood is reported in ``errors`` (``{"row", "field", "error"}``, ``row`` = line
number in the file, the header being line 1) and left out of the statistics; it is never dropped silently. Its
disagreements also carry ``row``. ``disagreement_rows`` gives the disagreements as CSV cells. Reading and
writing the files is engine.adapters.agreement_csv (``analyze_csv``, ``disagreements_csv``): this module stays pure.
"""
from __future__ import annotations

import csv
import io
import math
import numbers
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from engine.core.errors import AlphaError

LABELS: tuple[str, ...] = ("1", "2", "3", "disqualified")
DQ = "disqualified"

ACCEPTED = ("1, 2 or 3 (also written 'tier 1', 'Tier1' or 'T1') or disqualified (also written 'dq', 'none' or 'x'); "
            "case does not matter")

_TIER = re.compile(r"(?:tier|t)?([123])")
_DQ_FORMS = frozenset({"dq", "disqualified", "none", "x"})
_SHOW = 60


def _show(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= _SHOW else r[:_SHOW - 3] + "..."


def normalise_label(value: Any) -> str:
    """The canonical label ("1", "2", "3" or "disqualified") for one of its accepted spellings.

    Raises ValueError (naming the value and the accepted forms) for anything else, including an empty cell and
    Python ``None``: a missing label is not a judgement. (The *string* "none" means disqualified.)"""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if 1 <= int(value) <= 3:
            return str(int(value))
    elif isinstance(value, str):
        key = re.sub(r"[\s_\-]+", "", value).casefold()
        m = _TIER.fullmatch(key)
        if m:
            return m.group(1)
        if key in _DQ_FORMS:
            return DQ
        if not key:
            raise ValueError(f"empty label {_show(value)}: expected {ACCEPTED}")
    raise ValueError(f"unrecognised label {_show(value)}: expected {ACCEPTED}")


# ------------------------------------------------------------------------------------------------ statistics

def _pct(x: float, threshold: float) -> str:
    """A share as a percentage with one decimal ("70.0%"); more decimals when one would make a value below the
    threshold look equal to it (74.96% is not shown as "75.0%")."""
    for digits in (1, 2, 3, 4):
        s = f"{x * 100:.{digits}f}"
        if float(s) != round(threshold * 100, digits) or x == threshold:
            break
    return s + "%"


def _pct_plain(x: float) -> str:
    return f"{x * 100:g}%"


def _check_params(min_labels: Any, threshold: Any) -> None:
    if isinstance(min_labels, bool) or not isinstance(min_labels, numbers.Integral) or min_labels < 0:
        raise ValueError(f"min_labels must be a whole number >= 0, not {_show(min_labels)}")
    if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)
            or threshold < 0 or not threshold <= 1):  # (numbers.Real declares only < and <=, so 0 <= x fails typing)
        raise ValueError(f"threshold must be a share between 0 and 1 (0.75 = 75%), not {_show(threshold)}")


def _analyze(pairs: Sequence[tuple[str, str]], notes: Sequence[str | None], rows: Sequence[int] | None,
             min_labels: int, threshold: float) -> dict:
    """Statistics for already-normalised pairs."""
    n = len(pairs)
    seen = {lab for pair in pairs for lab in pair}
    labels = list(LABELS) + sorted(seen - set(LABELS))
    confusion = {a: {h: 0 for h in labels} for a in labels}
    for a, h in pairs:
        confusion[a][h] += 1
    ai_count = Counter(a for a, _ in pairs)
    human_count = Counter(h for _, h in pairs)
    agreed = sum(confusion[lab][lab] for lab in labels)
    reasons: list[str] = []

    if n == 0:
        agreement = kappa = None
    else:
        agreement = agreed / n
        s = sum(ai_count[lab] * human_count[lab] for lab in labels)  # n^2 * p_e
        denominator = n * n - s                                      # n^2 * (1 - p_e)
        if denominator == 0:
            only = next(iter(seen))
            kappa = 1.0 if agreed == n else 0.0
            reasons.append(f"kappa is set to {kappa:.1f} by convention: every label in both columns is {only!r}, "
                           "so chance agreement is 100% and Cohen's kappa would be 0/0")
        else:
            kappa = (n * agreed - s) / denominator

    def share(count: int) -> float | None:
        return count / n if n else None

    prevalence = {"ai": {lab: share(ai_count[lab]) for lab in labels},
                  "human": {lab: share(human_count[lab]) for lab in labels}}
    per_tier = {}
    for lab in labels:
        tp = confusion[lab][lab]
        per_tier[lab] = {"precision": tp / ai_count[lab] if ai_count[lab] else None,
                         "recall": tp / human_count[lab] if human_count[lab] else None,
                         "support": human_count[lab]}
    disagreements = []
    for i, (a, h) in enumerate(pairs):
        if a != h:
            d = {"index": i, "ai": a, "human": h, "note": notes[i]}
            if rows is not None:
                d["row"] = rows[i]
            disagreements.append(d)

    enough = n >= min_labels
    above = agreement is not None and agreement > threshold
    if not enough:
        reasons.insert(0, f"only {n} label{'' if n == 1 else 's'}; at least {min_labels} are needed")
    if agreement is None:  # n == 0
        reasons.insert(1 if not enough else 0, "no labels to compare, so there is no agreement to measure")
    elif not above:
        reasons.insert(1 if not enough else 0,
                       f"agreement {_pct(agreement, threshold)} is not above {_pct_plain(threshold)}")
    return {"n": n, "agreement": agreement, "kappa": kappa, "confusion": confusion, "prevalence": prevalence,
            "per_tier": per_tier, "disagreements": disagreements, "passed": enough and above, "reasons": reasons}


def analyze(pairs: Iterable[tuple[Any, Any]], min_labels: int = 50, threshold: float = 0.75,
            notes: Sequence[str | None] | None = None) -> dict:
    """Compare (ai_label, human_label) pairs; see the module docstring for the result. Labels are normalised with
    ``normalise_label``; a label it does not accept raises ValueError naming the pair's index and column."""
    _check_params(min_labels, threshold)
    raw = list(pairs)
    if notes is None:
        notes = [None] * len(raw)
    else:
        notes = list(notes)
        if len(notes) != len(raw):
            raise ValueError(f"notes has {len(notes)} entries but there are {len(raw)} pairs; give one note "
                             "(or None) per pair")
    clean = []
    for i, pair in enumerate(raw):
        try:
            ai, human = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {i} is {_show(pair)}: expected (ai_label, human_label)") from None
        try:
            a = normalise_label(ai)
        except ValueError as e:
            raise ValueError(f"pair {i}, ai label: {e}") from None
        try:
            h = normalise_label(human)
        except ValueError as e:
            raise ValueError(f"pair {i}, human label: {e}") from None
        clean.append((a, h))
    return _analyze(clean, notes, None, min_labels, threshold)


# ------------------------------------------------------------------------------------------------ CSV in and out

_AI, _HUMAN, _NOTE = "ai_label", "human_label", "note"


def _column_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def check_csv_options(kw: dict[str, Any]) -> tuple[Any, Any]:
    """(min_labels, threshold) from analyze_csv's keyword arguments; TypeError for anything else (the notes come
    from the file's 'note' column), ValueError for values ``analyze`` would refuse."""
    if "notes" in kw:
        raise TypeError("analyze_csv takes the notes from the file's 'note' column, not from notes=")
    kw = dict(kw)
    min_labels = kw.pop("min_labels", 50)
    threshold = kw.pop("threshold", 0.75)
    if kw:
        raise TypeError(f"analyze_csv() got unexpected keyword argument(s): {', '.join(sorted(kw))}")
    _check_params(min_labels, threshold)
    return min_labels, threshold


def analyze_csv_text(text: str, path: str | Path, **kw: Any) -> dict:
    """``analyze`` for the text of a CSV file (``path`` names it in messages) with ``ai_label`` and ``human_label``
    columns and an optional ``note`` column (header names are case-insensitive). Keyword arguments go to
    ``analyze`` (``min_labels``, ``threshold``). Rows whose cells are all empty are skipped. A row with a label that
    is not understood goes to ``errors`` and is left out of the statistics. A file without the two columns raises
    AlphaError naming the columns it has. Pure: engine.adapters.agreement_csv.analyze_csv reads the file."""
    min_labels, threshold = check_csv_options(kw)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)  # blank lines before the header
    except csv.Error as e:
        raise AlphaError(f"{path}: cannot read the header row: {e}") from None
    if header is None:
        raise AlphaError(f"{path} is empty: expected a header row with columns {_AI} and {_HUMAN}")
    keys = [_column_key(h) for h in header]
    for wanted in (_AI, _HUMAN, _NOTE):
        if keys.count(wanted) > 1:
            dup = [h for h, k in zip(header, keys) if k == wanted]
            raise AlphaError(f"{path} has more than one {wanted} column ({', '.join(map(repr, dup))}); keep one")
    missing = [c for c in (_AI, _HUMAN) if c not in keys]
    if missing:
        found = ", ".join(repr(h) for h in header) or "none"
        raise AlphaError(f"{path} has no {' or '.join(missing)} column: expected columns {_AI} and {_HUMAN} "
                         f"(and optionally {_NOTE}); the columns found are: {found}")
    ai_i, human_i = keys.index(_AI), keys.index(_HUMAN)
    note_i = keys.index(_NOTE) if _NOTE in keys else None

    pairs: list[tuple[str, str]] = []
    notes: list[str | None] = []
    rows: list[int] = []
    errors: list[dict] = []
    line = reader.line_num
    while True:
        start = line + 1  # the record's first line (a quoted cell may span lines)
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append({"row": start, "field": None, "error": f"cannot read this row: {e}"})
            break
        line = reader.line_num
        if not any(c.strip() for c in record):
            continue

        def cell(i: int | None, record: list[str] = record) -> str:
            return record[i] if i is not None and i < len(record) else ""

        labels = {}
        for field, i in ((_AI, ai_i), (_HUMAN, human_i)):
            try:
                labels[field] = normalise_label(cell(i))
            except ValueError as e:
                errors.append({"row": start, "field": field, "error": str(e)})
        if len(labels) == 2:
            pairs.append((labels[_AI], labels[_HUMAN]))
            note = cell(note_i).strip()
            notes.append(note or None)
            rows.append(start)
    result = _analyze(pairs, notes, rows, min_labels, threshold)
    result["errors"] = errors
    return result


DISAGREEMENT_COLUMNS = ("index", "row", "ai", "human", "note")


def disagreement_rows(result: dict) -> list[list[str]]:
    """``result["disagreements"]`` as the text cells of DISAGREEMENT_COLUMNS (``row`` is empty for a result of
    ``analyze``); engine.adapters.agreement_csv.disagreements_csv writes them."""
    return [["" if d.get(c) is None else str(d.get(c)) for c in DISAGREEMENT_COLUMNS]
            for d in result.get("disagreements", [])]
