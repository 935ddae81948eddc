"""Recipient identity: one canonical form of an email address, so that every rule that asks "is this the same
person?" (suppression, exclusion, first touch, per-recipient limits, the unsubscribe token) gets one answer.

Two spellings are the same recipient when they reach the same mailbox:
- case (local part and domain), Unicode normal form (NFC; NFKC for compatibility forms such as fullwidth letters),
  surrounding white space and a trailing dot on the domain;
- a Unicode domain and its punycode (IDNA) form: the canonical domain is the ASCII (``xn--``) form;
- provider rules, as configuration (``production.json`` ``address_rules``): plus-tags (``user+tag@``) and, for
  the providers that ignore them, dots in the local part (``j.o.e@gmail.com``); domain aliases
  (``googlemail.com`` is ``gmail.com``).

Over-matching only ever holds mail back (a suppressed ``user@`` also stops ``user+x@``), so the rules err that way.
The canonical form is for comparing and storing keys; mail still goes to the address as given, cleaned by
``normalise_address`` (the form stored in ``Lead.email``, ``Suppression.email`` and looked up by them). The
canonical form is always taken of that cleaned form, so the stored address and its key never disagree.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import idna


@dataclass(frozen=True)
class Rules:
    plus_tag_separators: tuple[str, ...] = ("+",)
    plus_tag_domains: tuple[str, ...] = ()          # empty: every domain
    dot_insensitive_domains: tuple[str, ...] = ("gmail.com", "googlemail.com")
    domain_aliases: tuple[tuple[str, str], ...] = (("googlemail.com", "gmail.com"),)

    @staticmethod
    def from_settings(settings) -> "Rules":
        r = getattr(settings.production, "address_rules", None)
        if r is None:
            return DEFAULT
        return _rules(tuple(r.plus_tag_separators), tuple(canonical_domain(d) for d in r.plus_tag_domains),
                      tuple(canonical_domain(d) for d in r.dot_insensitive_domains),
                      tuple(sorted((canonical_domain(a), canonical_domain(b)) for a, b in r.domain_aliases.items())))


@lru_cache(maxsize=8)
def _rules(*args) -> Rules:
    return Rules(*args)


DEFAULT = Rules()
_active: list[Rules] = [DEFAULT]


def use_rules(rules: Rules) -> None:
    """Make ``rules`` the process's address rules (the App does this from production.json when it starts), so
    every module that compares recipients uses the same ones without threading the settings through."""
    _active[0] = rules


def active_rules() -> Rules:
    return _active[0]


def rules_fingerprint(rules: Rules | None = None) -> str:
    """A stable digest of address rules: stored keys made under another fingerprint must be recomputed."""
    import hashlib
    from dataclasses import astuple

    return hashlib.sha256(repr(astuple(rules or active_rules())).encode()).hexdigest()


def _text(s: str) -> str:
    # NFKC folds compatibility forms (fullwidth letters, ligatures); NFC alone would keep them apart
    return unicodedata.normalize("NFKC", s.strip()).strip()


@lru_cache(maxsize=65536)
def canonical_domain(domain: str | None) -> str:
    """The domain in lower-case ASCII (IDNA 2008 with UTS 46 mapping: ``bücher.de`` -> ``xn--bcher-kva.de``),
    without a trailing dot. A domain IDNA refuses is kept lower-case NFKC (it can only equal itself)."""
    d = _text(domain or "").rstrip(".").removeprefix("@")
    if not d:
        return ""
    try:
        return idna.encode(d, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return d.casefold()


def display_domain(domain: str | None) -> str:
    """The domain as a person reads it (Unicode), for messages."""
    d = canonical_domain(domain)
    try:
        return idna.decode(d)
    except (idna.IDNAError, UnicodeError, ValueError):
        return d


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BRACKETED = re.compile(r"<([^<>]*)>")


@lru_cache(maxsize=65536)
def normalise_address(value: str | None) -> str:
    """The one stored and shown form of an address as written ('' for none): one line (control characters
    removed, white space collapsed), the address inside ``Name <address>``, no ``mailto:``, trimmed, lower-case,
    Unicode NFC. The CSV importer, the webhooks and the suppression list all store this form, so a lookup by the
    address as written finds what another path stored. Not a comparison key: see ``canonical_address``."""
    v = " ".join(_CONTROL.sub("", value or "").split())
    m = _BRACKETED.search(v)
    if m:
        v = m.group(1).strip()
    if v.lower().startswith("mailto:"):
        v = v[7:]
    return unicodedata.normalize("NFC", v.strip().lower())


@lru_cache(maxsize=65536)
def _canonical(address: str, rules: Rules) -> str:
    a = _text(address)
    local, at, domain = a.rpartition("@")
    if not at:
        return a.casefold()
    dom = canonical_domain(domain)
    dom = dict(rules.domain_aliases).get(dom, dom)
    local = local.casefold()
    if len(local) >= 2 and local[0] == local[-1] == '"':  # a quoted local part: the quotes are not the name
        local = local[1:-1]
    if not rules.plus_tag_domains or dom in rules.plus_tag_domains:
        for sep in rules.plus_tag_separators:
            head, found, _ = local.partition(sep)
            if found and head:
                local = head
    if dom in rules.dot_insensitive_domains:
        local = local.replace(".", "")
    return f"{local}@{dom}"


def canonical_address(address: str | None, rules: Rules | None = None) -> str:
    """The one form of ``address`` that every comparison of recipients uses ('' for none); ``rules`` default to
    the process's (``use_rules``)."""
    a = normalise_address(address) if address else ""
    if not a:
        return ""
    return _canonical(a, rules or _active[0])


def address_domain(address: str | None) -> str:
    """The canonical (ASCII, lower-case) domain of an address ('' for none)."""
    if not address or "@" not in address:
        return ""
    return canonical_domain(address.rpartition("@")[2])


def same_recipient(a: str | None, b: str | None, rules: Rules | None = None) -> bool:
    return bool(a) and bool(b) and canonical_address(a, rules) == canonical_address(b, rules)
