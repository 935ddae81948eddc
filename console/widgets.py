"""Shared console widgets: readable local times, the age of what a page shows, and status marks in words.

Times: the engine keeps UTC; a person reads their browser's time zone (``st.context.timezone``, else UTC), as
``Sun 6 Dec 14:05`` (the year only when it is not this year), never raw ISO with microseconds. Marks are words with a
colour that carries meaning: green ok, orange needs attention, red danger only, grey unknown/not configured.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
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


STAMP_TICK_SECONDS = 10  # how often a page's "as of" stamp re-counts its age in the open page
STALE_AFTER = timedelta(minutes=5)  # older than this, the stamp turns into a warning to read the page again


def stamp_text(when: datetime, what: str = "Shown", now: datetime | None = None) -> tuple[bool, str]:
    """(stale, text) of a page's stamp: when its data was read and how long ago, counted at ``now``."""
    now = now or datetime.now(UTC)
    text = f"{what} as of {local_time(when, with_seconds=True)} ({age(when, now)})."
    if now - when > STALE_AFTER:
        return True, text + " Not re-read since: press Refresh or reload the page to see the current state."
    return False, text


@st.fragment(run_every=STAMP_TICK_SECONDS)
def _live_stamp(when_iso: str, what: str) -> None:
    when = _parse(when_iso) or datetime.now(UTC)
    stale, text = stamp_text(when, what)
    slug = re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")[:40]
    with st.container(key=f"stamp_{'stale' if stale else 'fresh'}_{slug}"):
        if stale:
            st.warning(text)
        else:
            st.caption(text)


def stamp(checked_at=None, what: str = "Shown") -> None:
    """A caption saying when the data on the page was read and how long ago, counted on in the open page (a
    fragment re-renders it every STAMP_TICK_SECONDS without re-reading the data), so a page left open shows its
    age growing, and a warning once it is older than STALE_AFTER; any click re-reads the page and resets it."""
    when = _parse(checked_at) or datetime.now(UTC)
    _live_stamp(when.isoformat(), what)


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


# ------------------------------------------------------------------------------------------ an email, rendered

# st.html is not an iframe: the email's HTML becomes part of the console page. Only its text and layout are kept
# (an allow-list of tags, attributes and inline style properties): a <style> would restyle the whole console, an
# element "position: fixed" would cover it, an <img>, a CSS url() or a <link> would load a remote tracker from the
# reviewer's browser (an "open" before the email was ever sent), and an <a href> would be a live link.
_EMAIL_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "noembed", "noframes", "iframe",
                         "object", "embed", "applet", "frame", "frameset", "svg", "math", "textarea", "select",
                         "option", "xmp", "plaintext", "audio", "video", "picture", "canvas", "map"})
_EMAIL_TAGS = frozenset({
    "p", "br", "div", "span", "b", "strong", "i", "em", "u", "s", "strike", "small", "big", "sub", "sup", "font",
    "center", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "code",
    "hr", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col", "abbr", "cite", "q",
    "mark", "del", "ins", "tt", "address", "article", "section", "header", "footer", "main", "aside", "figure",
    "figcaption", "label", "a"})
_EMAIL_VOID = frozenset({"br", "hr", "col"})
_EMAIL_ATTRS = frozenset({"align", "valign", "width", "height", "colspan", "rowspan", "bgcolor", "color", "border",
                          "cellpadding", "cellspacing", "dir", "lang", "title", "face", "size", "style"})
_CSS_PROPS = re.compile(
    r"(?:color|background-color|font(?:-[a-z]+)?|text-(?:align|decoration|transform|indent)|line-height|"
    r"letter-spacing|word-spacing|white-space|(?:margin|padding)(?:-(?:top|right|bottom|left))?|"
    r"border(?:-[a-z-]+)?|(?:min-|max-)?(?:width|height)|display|visibility|vertical-align|opacity|"
    r"list-style(?:-[a-z]+)?|direction|table-layout|word-break|overflow-wrap)")
_NOTE = "color: #666; font-size: 0.85em"
_CSS_BAD_VALUE = re.compile(r"url\s*\(|expression|javascript:|@import|\\|/\*|<|image\s*\(|var\s*\(|attr\s*\(", re.I)


def _email_style(style: str) -> str:
    keep = []
    for decl in style.split(";"):
        name, sep, value = decl.partition(":")
        name, value = name.strip().lower(), value.strip()
        if sep and value and _CSS_PROPS.fullmatch(name) and not _CSS_BAD_VALUE.search(value) \
                and "fixed" not in value.lower():
            keep.append(f"{name}: {value}")
    return "; ".join(keep)


def email_html(source: str | None) -> str:
    """An email's HTML reduced to what can be shown inside the console: its text and layout, no styles sheets, no
    positioning, nothing loaded and nothing clickable. A link shows its text and where it goes (as text); an
    image is a marked placeholder naming its address. The engine's gate reads the original; this is for eyes."""
    from html import escape, unescape
    from html.parser import HTMLParser

    out: list[str] = []
    stack: list[str] = []

    class _Reader(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.drop = 0  # inside an element dropped with its content
            self.links: list[tuple[str, int]] = []  # the open <a>: its address and where its text starts

        def handle_starttag(self, tag, attrs):
            self._start(tag, attrs, closed=False)

        def handle_startendtag(self, tag, attrs):
            self._start(tag, attrs, closed=True)

        def _start(self, tag, attrs, closed):
            if tag in _EMAIL_DROP:
                if not closed:
                    self.drop += 1
                    stack.append("\0" + tag)
                return
            if self.drop:
                return
            attrs = [(k.lower(), v or "") for k, v in attrs]
            if tag == "img":
                src = next((v for k, v in attrs if k == "src"), "").strip()
                alt = next((v for k, v in attrs if k == "alt"), "").strip()
                label = "image not loaded" + (f": {alt}" if alt else "") + (f" ({src})" if src else "")
                out.append(f'<span style="{_NOTE}; border: 1px dashed #999; padding: 0 4px">[{escape(label)}]</span>')
                return
            if tag not in _EMAIL_TAGS:
                return  # the tag goes, its text stays
            kept = []
            for k, v in attrs:
                if k == "style" and tag != "a":
                    v = _email_style(v)
                    if v:
                        kept.append(f' style="{escape(v, quote=True)}"')
                elif k in _EMAIL_ATTRS and k != "style":
                    kept.append(f' {k}="{escape(v, quote=True)}"')
            if tag == "a":  # never a link: the text, marked, and its address as text after it
                href = next((v for k, v in attrs if k == "href"), "").strip()
                if href:
                    kept.append(f' title="{escape(href, quote=True)}" style="text-decoration: underline"')
                self.links.append((href, len(out) + 1))
            out.append(f"<{tag}{''.join(kept)}>")
            if tag not in _EMAIL_VOID:
                stack.append(tag)

        def handle_endtag(self, tag):
            if "\0" + tag in stack:
                while stack:
                    t = stack.pop()
                    if t.startswith("\0"):
                        self.drop -= 1
                        if t == "\0" + tag:
                            return
                    else:
                        self.close_tag(t)
                return
            if self.drop or tag not in stack:
                return
            while stack:
                t = stack.pop()
                self.close_tag(t)
                if t == tag:
                    return

        def close_tag(self, tag):
            out.append(f"</{tag}>")
            if tag == "a" and self.links:
                href, start = self.links.pop()
                shown = unescape(re.sub(r"<[^>]*>", "", "".join(out[start:-1]))).strip()
                if href and shown != href:
                    out.append(f' <span style="{_NOTE}">[{escape(href)}]</span>')

        def handle_data(self, data):
            if not self.drop:
                out.append(escape(data, quote=False))

    reader = _Reader()
    reader.feed(source or "")
    reader.close()
    while stack:
        t = stack.pop()
        if not t.startswith("\0"):
            reader.close_tag(t)
    return "".join(out)
