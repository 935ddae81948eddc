"""Content rules: spam terms, visible unsubscribe link, postal address, forbidden claims, deceptive subject.

Terms match as whole words or phrases (any run of white space between words), case-insensitively, so
"free" flags "Free!" but not "freedom" or "carefree".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser

from ..config import Settings
from ..reasons import Code, Reason

_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])|opacity\s*:\s*0(?![.\d]*[1-9])", re.I)
_DECEPTIVE = re.compile(r"^\s*(re|fw|fwd|aw|wg|tr)\s*(\[\d+\])?\s*:", re.I)
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source", "track", "embed", "param"}


def _phrase_regex(terms: tuple[str, ...]) -> re.Pattern | None:
    """Any of ``terms`` as a whole word or phrase (white space between words matching any run of white space),
    case-insensitively; where several match at one place, the longest. The alternatives are a trie (common
    prefixes factored out), so the engine tries a handful of branches at each place instead of every term:
    4-5x faster than a flat alternation on the 170 spam terms."""
    if not terms:
        return None
    trie: dict = {}
    for t in terms:
        words = t.lower().split()
        if not words:
            continue
        node = trie
        for i, w in enumerate(words):
            for ch in ((" ",) if i else ()) + tuple(w):
                node = node.setdefault(ch, {})
        node[""] = {}  # a term ends here
    if not trie:
        return None
    return re.compile(r"(?<!\w)" + _trie_pattern(trie) + r"(?!\w)", re.I)


def _trie_pattern(node: dict) -> str:
    """The regex of a trie node: longer continuations before ending here (so the longest term wins, as with
    alternatives sorted longest first), a space standing for any run of white space."""
    branches = [(r"\s+" if ch == " " else re.escape(ch)) + _trie_pattern(child)
                for ch, child in sorted(node.items()) if ch != ""]
    if "" in node:
        branches.append("")
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def _normalize(text: str) -> str:
    return (text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
            .replace("\u201c", '"').replace("\u201d", '"'))


@dataclass
class Anchor:
    href: str
    text: str
    hidden: bool


class _Extractor(HTMLParser):
    """Visible text and anchors of an HTML body (script/style and hidden elements excluded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.anchors: list[Anchor] = []
        self._stack: list[tuple[str, bool]] = []
        self._anchor: dict | None = None

    def _hidden(self) -> bool:
        return any(h for _, h in self._stack)

    def handle_starttag(self, tag, attrs):
        a = dict((k, v or "") for k, v in attrs)
        hidden = tag in ("script", "style", "head", "title") or "hidden" in a or bool(_HIDDEN_STYLE.search(a.get("style", "")))
        if tag in ("br", "p", "div", "tr", "li"):
            self.text.append("\n")
        if tag in _VOID:
            return
        self._stack.append((tag, hidden))
        if tag == "a":
            self._anchor = {"href": a.get("href", ""), "text": [], "hidden": self._hidden()}

    def handle_startendtag(self, tag, attrs):
        if tag in ("br",):
            self.text.append("\n")

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if tag == "a" and self._anchor is not None:
            self.anchors.append(Anchor(self._anchor["href"], "".join(self._anchor["text"]).strip(), self._anchor["hidden"]))
            self._anchor = None
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        if tag in ("p", "div", "tr", "li"):
            self.text.append("\n")

    def handle_data(self, data):
        if self._hidden():
            return
        self.text.append(data)
        if self._anchor is not None:
            self._anchor["text"].append(data)


def html_to_text(html: str) -> tuple[str, list[Anchor]]:
    p = _Extractor()
    try:
        p.feed(html)
        p.close()
    except Exception:  # html.parser is lenient; never let a weird body crash the gate
        pass
    return "".join(p.text), p.anchors


@dataclass(frozen=True)
class ContentRules:
    spam: re.Pattern | None
    claims: re.Pattern | None
    unsubscribe_base: str
    postal_key: str

    @staticmethod
    def from_settings(settings: Settings) -> "ContentRules":
        return _rules(settings.spam_terms, settings.forbidden_claims,
                      settings.production.sender.unsubscribe_base_url, settings.production.sender.postal_address)


@lru_cache(maxsize=16)
def _rules(spam: tuple, claims: tuple, base: str, postal: str) -> ContentRules:
    return ContentRules(_phrase_regex(spam), _phrase_regex(claims), base.lower(), _alnum(postal))


def _alnum(s: str) -> str:
    return re.sub(r"[^0-9a-z]", "", s.lower())


def _found(pattern: re.Pattern | None, *texts: str) -> list[str]:
    if pattern is None:
        return []
    hits: list[str] = []
    for t in texts:
        for m in pattern.finditer(t):
            w = " ".join(m.group(0).lower().split())
            if w not in hits:
                hits.append(w)
    return hits


def check_content(subject: str | None, html: str | None, text: str | None, rules: ContentRules,
                  first_touch: bool = True) -> list[Reason]:
    """The content rules' reasons for one email. A pure function, and the same email is checked twice on its way
    (when drafted, and by the gateway): the last results are remembered."""
    return list(_check_content(subject, html, text, rules, first_touch))


@lru_cache(maxsize=1024)
def _check_content(subject: str | None, html: str | None, text: str | None, rules: ContentRules,
                   first_touch: bool) -> tuple[Reason, ...]:
    subject = _normalize(subject or "")
    parts: list[tuple[str, str, list[Anchor] | None]] = []
    if html:
        visible, anchors = html_to_text(_normalize(html))
        parts.append(("html", visible, anchors))
    if text:
        parts.append(("text", _normalize(text), None))
    out: list[Reason] = []
    bodies = [p[1] for p in parts]

    spam = _found(rules.spam, subject, *bodies)
    if spam:
        out.append(Reason(Code.SPAM_CONTENT, "spam terms: " + ", ".join(f'"{s}"' for s in spam[:10])))
    claims = _found(rules.claims, subject, *bodies)
    if claims:
        out.append(Reason(Code.FORBIDDEN_CLAIM, "forbidden claims: " + ", ".join(f'"{c}"' for c in claims[:10])))

    missing_unsub = []
    for name, body, anchors in parts:
        if anchors is not None:
            ok = any(a.href.strip().lower().startswith(rules.unsubscribe_base) and a.text and not a.hidden
                     for a in anchors)
        else:
            ok = rules.unsubscribe_base in body.lower()
        if not ok:
            missing_unsub.append(name)
    if missing_unsub:
        out.append(Reason(Code.MISSING_UNSUBSCRIBE,
                          f"no visible link to {rules.unsubscribe_base} in the {' and '.join(missing_unsub)} body"))

    missing_addr = [name for name, body, _ in parts if rules.postal_key not in _alnum(body)]
    if missing_addr:
        out.append(Reason(Code.MISSING_POSTAL_ADDRESS,
                          f"the sender's postal address is not in the {' and '.join(missing_addr)} body"))

    if first_touch and _DECEPTIVE.match(subject):
        out.append(Reason(Code.DECEPTIVE_SUBJECT, f"first touch with a reply/forward prefix: {subject[:60]!r}"))
    return tuple(out)
