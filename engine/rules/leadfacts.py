"""How a lead's facts are read, once for every path that reads them.

The CSV importer (engine/adapters/leads_csv.py), the RB2B visitor webhook (engine/services/events.py) and the ICP
scorer (engine/rules/icp.py) all read an employee count. They used to have their own parsers, and they disagreed:
"1.000" (a thousand, as written in Germany) was 1000 to the importer and 1 to the scorer. ``read_employee_count``
is now the only reading; the callers differ only in what they do with a value it cannot read (the importer reports
the row, the webhook and the scorer treat the count as unknown).

What it reads (the strictest of the old parsers, which the importer's tests pin down):

- numbers: an int, a float or a Decimal (a fraction is cut: 120.7 -> 120); a bool is not a number;
- text: "250", "250.0", "1,000" / "1.000" / "1 000" / "1'000" (thousands separators), "10+" / "1,000+" (the number),
  "51-200" / "51 to 200" / "51–200" (the midpoint, rounded down: 125), "1k" / "1.5k" / "10K+", an optional trailing
  "employees"/"staff"/..., and "Myself Only" / "self-employed" / "solo" (1);
- "" and None are unknown; 0 is unknown (a count of 0 is a missing value, not a company of nobody);
- anything else (negative, more than ``MAX_EMPLOYEES``, "1e9", "lots", "200-51") raises ``EmployeeCountError``.
"""
from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

MAX_EMPLOYEES = 10_000_000   # more than any employer: a larger count is a data error
_MAX_TEXT = 200              # longer text is no employee count (and bounds the work per value)
_SHOW = 60                   # characters of the value quoted in an error

_SOLO = ("myself only", "self-employed", "self employed", "just me", "solo")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_THOUSANDS_SEP = re.compile(r"(?<=\d)[ ,_'](?=\d{3}\b)")           # 1,000 / 1 000 / 1_000 / 1'000
_THOUSANDS_DOT = re.compile(r"\d{1,3}(?:\.\d{3})+")                # 1.000 / 10.000.000
_COUNT_WORDS = re.compile(r"\s*(employees|employee|emps|emp|people|staff|ppl)\.?$")
_COUNT_RANGE = re.compile(r"(\d+(?:\.\d+)?k?)(?:\s*(?:-|\u2013|\u2014|to)\s*(\d+(?:\.\d+)?k?))?\s*\+?")

# why a value is not an employee count (EmployeeCountError.why)
NOT_A_NUMBER = "not a number"
NEGATIVE = "negative"
IMPLAUSIBLE = "implausible"
UNREADABLE = "unreadable"


class EmployeeCountError(ValueError):
    """A value that is no employee count; ``why`` is one of NOT_A_NUMBER, NEGATIVE, IMPLAUSIBLE, UNREADABLE and the
    message quotes the value (cut to 60 characters)."""

    def __init__(self, value: object, why: str):
        self.value, self.why = value, why
        text = str(value)
        shown = repr(text if len(text) <= _SHOW else text[:_SHOW - 3] + "...")
        if why == UNREADABLE:
            message = f"{shown} is not an employee count (expected e.g. 250, 51-200 or 1,000+)"
        elif why == IMPLAUSIBLE:
            message = f"{shown} is not a plausible employee count"
        else:
            message = f"{shown} is not an employee count ({why})"
        super().__init__(message)


class Headcount(NamedTuple):
    """A read employee count: ``n`` (0 when the value said 0, None when it said nothing) and, when the value was a
    range, its bounds (``n`` is then their midpoint)."""

    n: int | None
    low: int | None = None
    high: int | None = None


def _number(s: str) -> float:
    mult = 1000 if s.endswith("k") else 1
    s = s.rstrip("k")
    if mult == 1 and _THOUSANDS_DOT.fullmatch(s):  # "1.000" as written in Germany or the Netherlands
        s = s.replace(".", "")
    return float(s) * mult


def _checked(value: object, x: float) -> int:
    if not math.isfinite(x):
        raise EmployeeCountError(value, NOT_A_NUMBER if isinstance(value, (numbers.Real, Decimal)) else IMPLAUSIBLE)
    if x < 0:
        raise EmployeeCountError(value, NEGATIVE)
    if x > MAX_EMPLOYEES:
        raise EmployeeCountError(value, IMPLAUSIBLE)
    return int(x)


@lru_cache(maxsize=16384)  # pure, and values repeat from row to row (errors are not cached)
def _read_text(value: str) -> Headcount:
    s = " ".join(_CONTROL.sub("", value).split()).lower()
    if not s:
        return Headcount(None)
    if len(s) > _MAX_TEXT:
        raise EmployeeCountError(value, UNREADABLE)
    if s in _SOLO:
        return Headcount(1)
    s = _COUNT_WORDS.sub("", _THOUSANDS_SEP.sub("", s)).strip()
    m = _COUNT_RANGE.fullmatch(s)
    if not m:
        raise EmployeeCountError(value, UNREADABLE)
    try:
        lo = _number(m.group(1))
        hi = _number(m.group(2)) if m.group(2) else None
    except ValueError:
        raise EmployeeCountError(value, UNREADABLE) from None
    if hi is None:
        return Headcount(_checked(value, lo))
    low, high = _checked(value, lo), _checked(value, hi)
    if hi < lo:
        raise EmployeeCountError(value, UNREADABLE)
    return Headcount(_checked(value, (lo + hi) // 2), low, high)


def read_employee_count(value: object) -> Headcount:
    """The employee count ``value`` gives (see the module's docstring), with a range's bounds. Raises
    ``EmployeeCountError`` (a ValueError naming the value and why) when it is no employee count."""
    if value is None:
        return Headcount(None)
    if isinstance(value, bool):
        raise EmployeeCountError(value, NOT_A_NUMBER)
    if isinstance(value, numbers.Integral):
        n = int(value)  # never through float: a huge int would round
        if n < 0:
            raise EmployeeCountError(value, NEGATIVE)
        if n > MAX_EMPLOYEES:
            raise EmployeeCountError(value, IMPLAUSIBLE)
        return Headcount(n)
    if isinstance(value, (numbers.Real, Decimal)):
        try:
            x = float(value)
        except (OverflowError, ValueError):
            raise EmployeeCountError(value, NOT_A_NUMBER) from None
        return Headcount(_checked(value, x))
    if isinstance(value, str):
        return _read_text(value)
    raise EmployeeCountError(value, NOT_A_NUMBER)


def employee_count(value: object) -> int | None:
    """The employee count to store: None when unknown (nothing, or 0). Raises ``EmployeeCountError``."""
    return read_employee_count(value).n or None


def employee_count_or_none(value: object) -> int | None:
    """The employee count, or None when unknown or unreadable: for a source whose bad values are dropped silently."""
    try:
        return employee_count(value)
    except EmployeeCountError:
        return None
