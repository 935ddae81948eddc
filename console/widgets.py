"""Shared console widgets: readable local times, the age of what a page shows, and status marks in words.

Times: the engine keeps UTC; a person reads their browser's time zone (``st.context.timezone``, else UTC), as
``Sun 6 Dec 14:05`` (the year only when it is not this year), never raw ISO with microseconds. Marks are words with a
colour that carries meaning: green ok, orange needs attention, red danger only, grey unknown/not configured.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from engine.core.clock import duration_text

UTC = timezone.utc

# state -> (colour, word). Red is reserved for danger (something is being refused, broken or stopped).
MARKS = {
    "ok": ("green", "OK"), "pass": ("green", "PASS"), "closed": ("green", "closed"),
    "warn": ("orange", "CHECK"), "stale": ("orange", "STALE"), "pending": ("orange", "pending"),
    "half_open": ("orange", "half-open"), "sandbox": ("orange", "SANDBOX"),
    "fail": ("red", "FAIL"), "down": ("red", "DOWN"), "open": ("red", "OPEN"), "danger": ("red", "STOP"),
    "unknown": ("gray", "unknown"), "not_configured": ("gray", "not configured"), "skipped": ("gray", "skipped"),
}


def browser_zone() -> ZoneInfo | timezone:
    """The viewer's time zone as the browser reports it; UTC when unknown."""
    try:
        name = st.context.timezone
    except Exception:  # noqa: BLE001 - outside a script run (tests, bare mode)
        name = None
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def _parse(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def local_time(value, with_seconds: bool = False, zone=None) -> str:
    """A datetime or ISO string as a person reads it in their own zone: ``Sun 6 Dec 14:05 CET``; "" for none."""
    dt = _parse(value)
    if dt is None:
        return "" if value in (None, "") else str(value)
    tz = zone or browser_zone()
    loc = dt.astimezone(tz)
    now = datetime.now(tz)
    fmt = "%a %-d %b" + (" %Y" if loc.year != now.year else "") + (" %H:%M:%S" if with_seconds else " %H:%M")
    return f"{loc.strftime(fmt)} {loc.tzname() or ''}".strip()


def age(value, now: datetime | None = None) -> str:
    """How long ago: ``12 s ago``, ``4 min ago``, ``3 h ago``, ``2 days ago``; "never" for none."""
    dt = _parse(value)
    if dt is None:
        return "never"
    delta = (now or datetime.now(UTC)) - dt
    if delta.total_seconds() < 0:
        return "in the future"
    return f"{duration_text(delta)} ago"


def mark(state: str, text: str | None = None) -> str:
    """Markdown for a status mark: a coloured badge with a word (no emoji)."""
    colour, word = MARKS.get((state or "unknown").lower(), ("gray", state or "unknown"))
    return f":{colour}-badge[{text or word}]"


def stamp(checked_at=None, what: str = "Shown") -> None:
    """A caption saying when the data on the page was read, so a stale page says so."""
    when = _parse(checked_at) or datetime.now(UTC)
    st.caption(f"{what} as of {local_time(when, with_seconds=True)} ({age(when)}).")


def word(state: str) -> str:
    """The plain word of a mark, for table cells (which show text, not badges)."""
    return MARKS.get((state or "unknown").lower(), ("gray", state or "unknown"))[1]


def when(value, now: datetime | None = None, with_seconds: bool = False) -> str:
    """Local time and age together: ``Sun 6 Dec 14:05 UTC (3 min ago)``; "never" for none."""
    if _parse(value) is None:
        return "never"
    return f"{local_time(value, with_seconds=with_seconds)} ({age(value, now)})"


def clock_time(value=None) -> str:
    """Just the local time of day with seconds and zone (``14:05:03 CET``), for a header that refreshes."""
    dt = _parse(value) or datetime.now(UTC)
    loc = dt.astimezone(browser_zone())
    return f"{loc:%H:%M:%S} {loc.tzname() or ''}".strip()


def local_rows(rows, *columns: str) -> list[dict]:
    """Table rows with the named columns (datetimes or ISO strings) as local readable times; empty stays empty."""
    out = []
    for r in rows:
        r = dict(r)
        for c in columns:
            if c in r:
                r[c] = local_time(r[c], with_seconds=True) if r[c] not in (None, "") else ""
        out.append(r)
    return out


def component_state(c: dict) -> str:
    """The state of a component of ``app.status()["components"]``; derived from ``ok`` when it has none."""
    state = c.get("state") if isinstance(c, dict) else None
    if state:
        return str(state)
    ok = c.get("ok") if isinstance(c, dict) else None
    return "unknown" if ok is None else ("ok" if ok else "down")


def components_summary(components: dict) -> str:
    """A compact markdown line for the header: ``components: 3 ok, worker STALE``."""
    if not components:
        return "components: " + mark("unknown")
    states = {name: component_state(c) for name, c in components.items()}
    good = sum(1 for s in states.values() if s == "ok")
    parts = [f"{good} ok"] if good else []
    parts += [f"{name.replace('_', ' ')} {mark(s)}" for name, s in states.items() if s != "ok"]
    return "components: " + ", ".join(parts)


def step_buttons(prev_col, next_col, key: str, shown: list, prefix: str) -> None:
    """Previous (K) and Next (J) buttons that move the selectbox ``key`` through ``shown`` (keys
    ``<prefix>_prev`` and ``<prefix>_next``), stopping at either end."""
    def move(step: int) -> None:
        cur = st.session_state.get(key)
        idx = shown.index(cur) if cur in shown else 0
        st.session_state[key] = shown[max(0, min(len(shown) - 1, idx + step))]

    prev_col.button("Previous", key=f"{prefix}_prev", shortcut="K", on_click=move, args=(-1,), width="stretch",
                    icon=":material/keyboard_arrow_up:")
    next_col.button("Next", key=f"{prefix}_next", shortcut="J", on_click=move, args=(1,), width="stretch",
                    icon=":material/keyboard_arrow_down:")
