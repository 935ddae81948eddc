"""Recipient rules: syntax, suppression list, exclusion lists (customers, competitors)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from engine.core.identity import canonical_domain
from engine.core.reasons import Code, Reason


def fold_text(s: str) -> str:
    """NFKC, accents removed (Ünited -> United): company names compare as people read them."""
    import unicodedata

    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", s))
    return "".join(c for c in s if not unicodedata.combining(c))


@dataclass(frozen=True)
class Suppressed:
    email: str
    reason: str  # unsubscribed | bounced | complained | dnd | manual
    source: str = ""


# An ASCII dot-atom local part of at most 64 characters is valid in every mode of validate_email; with such a
# local part the address is valid exactly when its domain is and it is at most 254 characters long. The domain
# check (every character against the IDNA tables) was nearly half the time of a 100,000-row import, for domains
# that repeat from row to row: its verdict is remembered per domain (_domain_accepted), asked through
# email_validator's public validate_email with a fixed one-letter local part. Anything else takes the full check,
# which also gives the message.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_DOMAIN_ASCII = re.compile(r"[A-Za-z0-9.-]+\Z")


@lru_cache(maxsize=16384)
def _domain_accepted(domain: str) -> bool:
    """Whether validate_email accepts an address at ``domain`` (syntax only, no DNS)."""
    try:
        validate_email(f"x@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _simple_and_valid(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not at or len(address) > 254 or len(local) > 64 or not _DOT_ATOM.match(local) \
            or not _DOMAIN_ASCII.match(domain):
        return False
    return _domain_accepted(domain)


@lru_cache(maxsize=4096)
def syntax_problem(address: str) -> str | None:
    if _simple_and_valid(address):
        return None
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as e:
        return str(e)
    return None


def check_syntax(address: str | None) -> list[Reason]:
    if not address:
        return [Reason(Code.INVALID_RECIPIENT, "no recipient address")]
    problem = syntax_problem(address)
    return [Reason(Code.INVALID_RECIPIENT, f"{address!r}: {problem}")] if problem else []


def check_suppression(entry: Suppressed | None) -> list[Reason]:
    if entry is None:
        return []
    src = f" ({entry.source})" if entry.source else ""
    return [Reason(Code.SUPPRESSED_RECIPIENT, f"{entry.email} is suppressed: {entry.reason}{src}")]


def _company_key(name: str) -> str:
    n = re.sub(r"[^0-9a-z ]", " ", fold_text(name).lower())
    n = re.sub(r"\b(inc|llc|ltd|gmbh|corp|corporation|co|company|plc|sa|ag|bv)\b", " ", n)
    return " ".join(n.split())


def _is_domain(entry: str) -> bool:
    return "." in entry and " " not in entry.strip()


def matches_exclusion(domain: str | None, company: str | None, entries: tuple[str, ...]) -> str | None:
    """The exclusion entry matching a recipient domain (itself or a subdomain; Unicode and punycode spellings
    alike, engine/core/identity) or a company name (legal suffixes and punctuation ignored)."""
    d = canonical_domain(domain)
    ck = _company_key(company) if company else ""
    for e in entries:
        el = e.strip()
        if _is_domain(el):
            el = canonical_domain(el)
            if d and el and (d == el or d.endswith("." + el)):
                return e
        elif ck and _company_key(el) == ck:
            return e
    return None


def check_exclusions(domain: str | None, company: str | None, customers: tuple[str, ...],
                     competitors: tuple[str, ...]) -> list[Reason]:
    hit = matches_exclusion(domain, company, customers)
    if hit:
        return [Reason(Code.EXCLUDED_RECIPIENT, f"existing customer ({hit})")]
    hit = matches_exclusion(domain, company, competitors)
    if hit:
        return [Reason(Code.EXCLUDED_RECIPIENT, f"competitor ({hit})")]
    return []
