"""Ideal customer profile (ICP) scoring: how well a lead fits, as a 0-100 score, a tier and a one-line why.

``config/icp.json`` holds the weights, tier thresholds, size bands, industries, the agency rule, countries and the
title vocabulary. ``load_icp`` validates it like the other configuration files (strict pydantic models; a bad file
raises ``ConfigError`` naming the file, the key, the value and what is allowed).

``score_lead`` is pure (no I/O, no clock, no database). It takes any object or mapping with the attributes or keys
``email, title, company, company_domain, employee_count, industry, country`` (a ``Lead`` row, a dict from an import,
...); missing or malformed values are scored as unknown, never raised on.

Scoring
    Four criteria (size, industry, title, geography) each earn ``weight x share`` points, rounded half up, where the
    share (0..1) depends on the lead; the weights add up to 100, so the score is 0..100.
Disqualifiers, checked first in this order
    existing customer, competitor (the exclusion lists; domain, subdomain or company name, via
    ``guardrails.recipients.matches_exclusion``), excluded country, excluded industry, too small (a known employee
    count below ``size.disqualify_below``), agency (unless its known employee count reaches
    ``agency.enterprise_min_employees``; an agency of unknown size is disqualified). A disqualified lead has
    ``tier=None`` and ``score=0``; its breakdown is still computed, for the record.
Tiers
    Every lead that is not disqualified gets a tier: 1 when ``score >= tiers.tier_1_min``, 2 when
    ``score >= tiers.tier_2_min``, otherwise 3. There is no "not a fit" tier below 3: whatever must never be
    contacted is a disqualifier.
Titles
    Matched as words and phrases, never substrings ("Director" is not "CTO", "Coordinator" is not "COO", "Micro"
    is not "CRO"). The title is split into words ("V.P." is "vp", "&" is "and"), listed abbreviations are expanded
    ("vp" -> "vice president", "revops" -> "revenue operations", "rev ops" -> "revenue operations"), then at each
    position the longest listed term wins. Seniority and function are both needed: share = seniority share x best
    function share. A junior term (assistant, intern, coordinator, ...) makes the share ``junior_share``; an
    unmatched "to" ends the title, so "Assistant to the VP Sales" is an assistant and "Chief of Staff to the CRO"
    is not a CRO.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from engine.core.config import _Strict, _validate, default_config_dir
from engine.core.errors import ConfigError
from engine.rules import leadfacts
from engine.rules.guardrails.recipients import matches_exclusion

CRITERIA = ("size", "industry", "title", "geography")
ICP_FILE = "icp.json"

_MAX_TEXT = 1000            # longer input text is cut before scoring (bounds the work per lead)
_SHOW = 60                  # characters of lead text quoted in a "why"


# --------------------------------------------------------------------------------------------- words

_DOTTED = re.compile(r"\b[a-z](?:\.[a-z])+\b\.?")   # v.p. / c.r.o / u.s.a.
_NON_WORD = re.compile(r"[^a-z0-9]+")


def words(text: str) -> tuple[str, ...]:
    """Lower-case ASCII words: accents dropped, '&' read as 'and', dotted abbreviations joined ('V.P.' -> 'vp')."""
    t = unicodedata.normalize("NFKD", text[:_MAX_TEXT])
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold().replace("&", " and ")
    t = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), t)
    return tuple(w for w in _NON_WORD.split(t) if w)


def _contains(hay: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


def _first_phrase(hay: tuple[str, ...], phrases: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    for p in phrases:
        if _contains(hay, p):
            return p
    return None


def _show(text: str) -> str:
    """Lead text fit for a one-line explanation: no control characters or line breaks, no ';', at most _SHOW chars."""
    t = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text[:_MAX_TEXT])
    t = " ".join(t.split()).replace(";", ",")
    return t if len(t) <= _SHOW else t[:_SHOW - 3].rstrip() + "..."


def _terms_problem(terms: list[str]) -> list[str]:
    for t in terms:
        if not words(t):
            raise ValueError(f"term {t!r} holds no letters or digits")
    return terms


# --------------------------------------------------------------------------------------------- countries

_COUNTRY_NAMES: dict[str, tuple[str, ...]] = {
    "US": ("united states", "united states of america", "usa", "america", "us of a"),
    "CA": ("canada", "can"),
    "GB": ("united kingdom", "uk", "great britain", "britain", "england", "scotland", "wales", "northern ireland",
           "gbr"),
    "IE": ("ireland", "republic of ireland", "irl", "eire"),
    "AU": ("australia", "aus"),
    "NZ": ("new zealand", "nzl"),
    "DE": ("germany", "deutschland", "deu"),
    "FR": ("france", "fra"),
    "NL": ("netherlands", "the netherlands", "holland", "nld"),
    "ES": ("spain", "espana", "esp"),
    "IT": ("italy", "italia", "ita"),
    "PT": ("portugal", "prt"),
    "BE": ("belgium", "bel"),
    "CH": ("switzerland", "che"),
    "AT": ("austria", "aut"),
    "SE": ("sweden", "swe"),
    "NO": ("norway", "nor"),
    "DK": ("denmark", "dnk"),
    "FI": ("finland", "fin"),
    "PL": ("poland", "pol"),
    "IL": ("israel", "isr"),
    "IN": ("india", "ind"),
    "SG": ("singapore", "sgp"),
    "JP": ("japan", "jpn"),
    "CN": ("china", "people s republic of china", "prc", "chn"),
    "KR": ("south korea", "republic of korea", "korea republic of", "kor"),
    "BR": ("brazil", "brasil", "bra"),
    "MX": ("mexico", "mex"),
    "ZA": ("south africa", "zaf"),
    "AE": ("united arab emirates", "uae", "are"),
    "UA": ("ukraine", "ukr"),
    "RU": ("russia", "russian federation", "rus"),
    "BY": ("belarus", "blr"),
    "IR": ("iran", "islamic republic of iran", "iran islamic republic of", "irn"),
    "KP": ("north korea", "dprk", "democratic people s republic of korea", "korea democratic people s republic of",
           "prk"),
    "SY": ("syria", "syrian arab republic", "syr"),
    "CU": ("cuba", "cub"),
}
_COUNTRY_ALIASES = {name: code for code, names in _COUNTRY_NAMES.items() for name in names}


def country_key(text: str) -> str | None:
    """An ISO alpha-2 code for a code or a known name ('United States of America', 'U.S.A.' -> 'US'); otherwise
    the lower-case words; None when there are no words."""
    key = " ".join(words(text))
    if not key:
        return None
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    if len(key) == 2 and key.isalpha():
        return key.upper()
    return key


# --------------------------------------------------------------------------------------------- configuration

_Share = Field(ge=0, le=1)


class Weights(_Strict):
    size: int = Field(ge=0, le=100)
    industry: int = Field(ge=0, le=100)
    title: int = Field(ge=0, le=100)
    geography: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self):
        total = self.size + self.industry + self.title + self.geography
        if total != 100:
            raise ValueError(f"weights must add up to 100 (the score is out of 100), found {total}")
        return self


class Tiers(_Strict):
    tier_1_min: int = Field(ge=1, le=100)
    tier_2_min: int = Field(ge=1, le=100)

    @field_validator("tier_2_min")
    @classmethod
    def _order(cls, v: int, info: ValidationInfo) -> int:
        t1 = info.data.get("tier_1_min")
        if t1 is not None and v >= t1:
            raise ValueError(f"must be below tier_1_min ({t1})")
        return v


class SizeBand(_Strict):
    min: int = Field(ge=0)
    max: int | None = Field(default=None, ge=0)
    share: float = _Share

    @model_validator(mode="after")
    def _order(self):
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must not be below min ({self.min})")
        return self

    def holds(self, n: int) -> bool:
        return self.min <= n and (self.max is None or n <= self.max)

    def span(self) -> str:
        return f"{self.min}+" if self.max is None else f"{self.min}-{self.max}"


class SizeRules(_Strict):
    disqualify_below: int = Field(ge=0)
    target_min: int = Field(ge=1)
    target_max: int = Field(ge=1)
    bands: list[SizeBand] = []
    unknown_share: float = _Share

    @field_validator("target_min")
    @classmethod
    def _above_floor(cls, v: int, info: ValidationInfo) -> int:
        floor = info.data.get("disqualify_below")
        if floor is not None and v < floor:
            raise ValueError(f"must not be below disqualify_below ({floor})")
        return v

    @field_validator("target_max")
    @classmethod
    def _above_min(cls, v: int, info: ValidationInfo) -> int:
        lo = info.data.get("target_min")
        if lo is not None and v < lo:
            raise ValueError(f"must not be below target_min ({lo})")
        return v

    @field_validator("bands")
    @classmethod
    def _disjoint(cls, bands: list[SizeBand], info: ValidationInfo) -> list[SizeBand]:
        floor, lo, hi = (info.data.get(k) for k in ("disqualify_below", "target_min", "target_max"))
        if floor is None or lo is None or hi is None:  # one of them failed its own validation
            return bands
        spans = [(f"the target {lo}-{hi}", lo, hi)]
        for i, b in enumerate(bands):
            if b.min < floor:
                raise ValueError(f"bands[{i}] ({b.span()}) starts below disqualify_below ({floor}), "
                                 "whose leads are disqualified")
            top = b.max if b.max is not None else math.inf
            for name, lo2, hi2 in spans:
                if b.min <= hi2 and lo2 <= top:
                    raise ValueError(f"bands[{i}] ({b.span()}) overlaps {name}")
            spans.append((f"bands[{i}] ({b.span()})", b.min, top))
        return bands


class IndustryRules(_Strict):
    target: list[str] = Field(min_length=1)
    related: list[str] = []
    related_share: float = _Share
    excluded: list[str] = []
    unknown_share: float = _Share
    other_share: float = _Share

    _terms = field_validator("target", "related", "excluded")(_terms_problem)

    @field_validator("excluded")
    @classmethod
    def _disjoint(cls, excluded: list[str], info: ValidationInfo) -> list[str]:
        target = {words(t) for t in info.data.get("target") or ()}
        for t in excluded:
            if words(t) in target:
                raise ValueError(f"{t!r} is also a target industry")
        return excluded


class AgencyRules(_Strict):
    industry_terms: list[str] = []
    company_terms: list[str] = []
    enterprise_min_employees: int = Field(ge=1)

    _terms = field_validator("industry_terms", "company_terms")(_terms_problem)


class GeographyRules(_Strict):
    target: list[str] = []
    excluded: list[str] = []
    other_share: float = _Share
    unknown_share: float = _Share

    _terms = field_validator("target", "excluded")(_terms_problem)

    @field_validator("excluded")
    @classmethod
    def _disjoint(cls, excluded: list[str], info: ValidationInfo) -> list[str]:
        target = {country_key(c) for c in info.data.get("target") or ()}
        for c in excluded:
            if country_key(c) in target:
                raise ValueError(f"{c!r} is also a target country")
        return excluded


class SeniorityLevel(_Strict):
    share: float = _Share
    label: str
    terms: list[str] = Field(min_length=1)

    _terms = field_validator("terms")(_terms_problem)

    @field_validator("label")
    @classmethod
    def _template(cls, v: str) -> str:
        if v.count("{function}") != 1:
            raise ValueError("must hold '{function}' once, e.g. 'VP {function}'")
        return v


class TitleFunction(_Strict):
    share: float = _Share
    label: str = Field(min_length=1)
    terms: list[str] = Field(min_length=1)

    _terms = field_validator("terms")(_terms_problem)


@dataclass(frozen=True)
class _Word:
    seniority: str | None = None
    function: str | None = None
    junior: bool = False


class TitleRules(_Strict):
    abbreviations: dict[str, str] = {}
    seniority: dict[str, SeniorityLevel] = Field(min_length=1)
    functions: dict[str, TitleFunction] = Field(min_length=1)
    junior_terms: list[str] = []
    junior_share: float = _Share
    unspecified_seniority_share: float = _Share
    unknown_share: float = _Share

    _terms = field_validator("junior_terms")(_terms_problem)
    _expand: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    _lexicon: dict[tuple[str, ...], _Word] = PrivateAttr(default_factory=dict)
    _longest: int = PrivateAttr(default=1)

    @field_validator("abbreviations")
    @classmethod
    def _abbr(cls, v: dict[str, str]) -> dict[str, str]:
        for short, full in v.items():
            if len(words(short)) != 1:
                raise ValueError(f"abbreviation {short!r} must be a single word")
            if not words(full):
                raise ValueError(f"expansion of {short!r} holds no letters or digits")
        return v

    def model_post_init(self, _context: Any) -> None:
        self._expand = {words(k)[0]: words(v) for k, v in self.abbreviations.items()}
        lex: dict[tuple[str, ...], dict] = {}

        def add(term: str, **kw) -> None:
            key = self.tokens(term)
            cur = lex.setdefault(key, {"seniority": None, "function": None, "junior": False})
            for k, val in kw.items():
                old = cur[k]
                if k == "seniority" and old is not None and self.seniority[old].share >= self.seniority[val].share:
                    continue
                if k == "function" and old is not None and self.functions[old].share >= self.functions[val].share:
                    continue
                cur[k] = val

        for name, level in self.seniority.items():
            for t in level.terms:
                add(t, seniority=name)
        for name, fn in self.functions.items():
            for t in fn.terms:
                add(t, function=name)
        for t in self.junior_terms:
            add(t, junior=True)
        self._lexicon = {k: _Word(**v) for k, v in lex.items()}
        self._longest = max((len(k) for k in self._lexicon), default=1)

    def tokens(self, text: str) -> tuple[str, ...]:
        out: list[str] = []
        for w in words(text):
            out.extend(self._expand.get(w, (w,)))
        return tuple(out)

    def lex(self, text: str) -> list[tuple[tuple[str, ...], _Word]]:
        """The listed terms in ``text``, longest first at each position; an unmatched 'to' ends the title."""
        toks = self.tokens(text)
        hits, i = [], 0
        while i < len(toks):
            for n in range(min(self._longest, len(toks) - i), 0, -1):
                entry = self._lexicon.get(toks[i:i + n])
                if entry is not None:
                    hits.append((toks[i:i + n], entry))
                    i += n
                    break
            else:
                if toks[i] == "to":
                    break
                i += 1
        return hits


class IcpConfig(_Strict):
    """config/icp.json, validated."""

    weights: Weights
    tiers: Tiers
    size: SizeRules
    industry: IndustryRules
    agency: AgencyRules
    geography: GeographyRules
    titles: TitleRules

    _industry_terms: dict[str, tuple[tuple[str, ...], ...]] = PrivateAttr(default_factory=dict)
    _countries: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    # criteria that depend on one field alone, remembered per value (titles, industries and countries repeat
    # across leads): scoring 100,000 leads reads most of them from here
    _memo: dict = PrivateAttr(default_factory=dict)

    def __getstate__(self) -> dict:  # a copy sent to a worker process starts with an empty memo
        state = super().__getstate__()
        state["__pydantic_private__"] = {**(state.get("__pydantic_private__") or {}), "_memo": {}}
        return state

    def memo(self, kind: str, value: Any, compute: Callable[[], Any]) -> Any:
        key = (kind, value)
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= 100_000:  # bounded: a table of unique titles must not grow memory forever
                self._memo.clear()
            hit = self._memo[key] = compute()
        return hit

    def model_post_init(self, _context: Any) -> None:
        def phrases(terms: list[str]) -> tuple[tuple[str, ...], ...]:
            return tuple(words(t) for t in terms)

        self._industry_terms = {
            "target": phrases(self.industry.target), "related": phrases(self.industry.related),
            "excluded": phrases(self.industry.excluded), "agency_industry": phrases(self.agency.industry_terms),
            "agency_company": phrases(self.agency.company_terms),
        }
        self._countries = {"target": _country_keys(self.geography.target),
                           "excluded": _country_keys(self.geography.excluded)}

    def tier_for(self, score: int) -> int:
        if score >= self.tiers.tier_1_min:
            return 1
        if score >= self.tiers.tier_2_min:
            return 2
        return 3


def load_icp(config_dir: str | Path | None = None) -> IcpConfig:
    """Load and validate ``<config_dir>/icp.json``; raise ConfigError listing every problem."""
    cdir = Path(config_dir) if config_dir else default_config_dir()
    problems: list[str] = []
    icp = _validate(IcpConfig, cdir / ICP_FILE, problems)
    if problems or icp is None:
        raise ConfigError(problems or [f"{cdir / ICP_FILE}: could not be loaded"])
    return icp


# --------------------------------------------------------------------------------------------- result

class Criterion(NamedTuple):
    criterion: str
    points: int
    max: int
    why: str

    def render(self) -> str:
        return f"{self.criterion} {self.points}/{self.max} ({self.why})"


@dataclass(frozen=True)
class IcpResult:
    score: int                  # 0..100; 0 when disqualified
    tier: int | None            # 1, 2 or 3; None when disqualified
    disqualified: bool
    reason: str                 # one line: "tier 1 (score 100)" or "disqualified: competitor (competitor-one.example)"
    breakdown: list[Criterion]  # one per criterion, in CRITERIA order
    disqualifier: str | None = None  # customer | competitor | country | industry | too_small | agency

    def explain(self) -> str:
        """One line: each criterion's points, maximum and why; a disqualified lead's reason comes first."""
        parts = "; ".join(c.render() for c in self.breakdown)
        return f"{self.reason}; {parts}" if self.disqualified else parts


# --------------------------------------------------------------------------------------------- reading a lead

def _get(lead: Any, name: str) -> Any:
    try:
        if isinstance(lead, Mapping):
            return lead.get(name)
        return getattr(lead, name, None)
    except Exception:  # noqa: BLE001 - a broken property reads as missing data
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        s = value
    elif isinstance(value, (bytes, bytearray)):
        s = bytes(value[:_MAX_TEXT]).decode("utf-8", "replace")
    else:
        try:
            s = str(value)
        except Exception:  # noqa: BLE001 - e.g. an int too long to print
            return None
    s = s[:_MAX_TEXT].strip()
    return s or None


def _domain(value: Any) -> str | None:
    s = _text(value)
    if not s:
        return None
    s = s.lower()
    s = re.sub(r"^[a-z][a-z0-9+.-]*://", "", s)
    s = re.split(r"[/?#\s]", s, maxsplit=1)[0]
    s = s.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    return s or None


_WHY_UNKNOWN = {leadfacts.NOT_A_NUMBER: "not a number", leadfacts.NEGATIVE: "negative",
                leadfacts.IMPLAUSIBLE: "implausible"}


def _employees(value: Any) -> tuple[int | None, str]:
    """(count, description), read by engine.rules.leadfacts (the importer's and the webhook's reading too). A count
    of None means unknown, and the description says why."""
    unknown = "employee count unknown"
    if value is None:
        return None, unknown
    try:
        n, low, high = leadfacts.read_employee_count(value)
    except leadfacts.EmployeeCountError as e:
        why = _WHY_UNKNOWN.get(e.why) or repr(_show(str(value)))
        return None, f"{unknown} ({why})"
    if n is None:
        return None, unknown
    if n == 0:
        return None, f"{unknown} (0)"
    if low is not None:
        return n, f"{low:,}-{high:,} employees (midpoint {n:,})"
    return n, f"{n:,} employees"


# --------------------------------------------------------------------------------------------- criteria

def _points(weight: int, share: float) -> int:
    share = min(max(share, 0.0), 1.0)
    return int(math.floor(round(weight * share, 6) + 0.5))


def _criterion(name: str, weight: int, share: float, why: str) -> Criterion:
    return Criterion(name, _points(weight, share), weight, why)


def _size(icp: IcpConfig, n: int | None, desc: str) -> Criterion:
    w, r = icp.weights.size, icp.size
    if n is None:
        return _criterion("size", w, r.unknown_share, desc)
    if n < r.disqualify_below:
        return _criterion("size", w, 0.0, f"{desc}, below {r.disqualify_below}")
    if r.target_min <= n <= r.target_max:
        return _criterion("size", w, 1.0, f"{desc}, in {r.target_min}-{r.target_max}")
    for b in r.bands:
        if b.holds(n):
            return _criterion("size", w, b.share, f"{desc}, in {b.span()}")
    return _criterion("size", w, 0.0, f"{desc}, outside {r.target_min}-{r.target_max}")


def _industry(icp: IcpConfig, industry: str | None, toks: tuple[str, ...]) -> tuple[Criterion, str]:
    """The criterion and the industry's class: unknown | excluded | target | related | other."""
    w, r, t = icp.weights.industry, icp.industry, icp._industry_terms
    if not toks:
        return _criterion("industry", w, r.unknown_share, "industry unknown"), "unknown"
    shown = _show(industry or "")
    if _first_phrase(toks, t["excluded"]):
        return _criterion("industry", w, 0.0, f"{shown}, excluded"), "excluded"
    if _first_phrase(toks, t["target"]):
        return _criterion("industry", w, 1.0, shown), "target"
    if _first_phrase(toks, t["related"]):
        return _criterion("industry", w, r.related_share, f"{shown}, related"), "related"
    return _criterion("industry", w, r.other_share, f"{shown}, not a target industry"), "other"


def _title(icp: IcpConfig, title: str | None) -> Criterion:
    w, r = icp.weights.title, icp.titles
    if not title or not words(title):
        return _criterion("title", w, r.unknown_share, "title unknown")
    shown = _show(title)
    quoted = f'"{shown}"'
    hits = r.lex(title)
    junior = [" ".join(k) for k, e in hits if e.junior]
    if junior:
        return _criterion("title", w, r.junior_share, f"junior or support role ({junior[0]}): {quoted}")
    levels = [e.seniority for _, e in hits if e.seniority]
    fns = [e.function for _, e in hits if e.function]
    fn = max(fns, key=lambda f: r.functions[f].share, default=None)
    if fn is None or r.functions[fn].share <= 0:
        return _criterion("title", w, 0.0, f"not a sales or revenue role: {quoted}")
    function = r.functions[fn]
    if not levels:
        return _criterion("title", w, r.unspecified_seniority_share * function.share,
                          f"{function.label}, seniority not stated: {quoted}")
    level = r.seniority[max(levels, key=lambda s: r.seniority[s].share)]
    label = level.label.replace("{function}", function.label)
    why = label if label.casefold() == shown.casefold() else f"{quoted} read as {label}"
    return _criterion("title", w, level.share * function.share, why)


def _country_keys(names: list[str]) -> frozenset[str]:
    """The keys of configured countries (each has words: _terms_problem), so no None joins the set."""
    return frozenset(k for k in map(country_key, names) if k is not None)


def _geography(icp: IcpConfig, country: str | None) -> tuple[Criterion, str | None]:
    """The criterion and the country's key when it is excluded."""
    w, r, c = icp.weights.geography, icp.geography, icp._countries
    key = country_key(country) if country else None
    if key is None:
        return _criterion("geography", w, r.unknown_share, "country unknown"), None
    shown = key if len(key) == 2 and key.isupper() else _show(country or "")
    if key in c["excluded"]:
        return _criterion("geography", w, 0.0, f"{shown}, excluded"), shown
    if key in c["target"]:
        return _criterion("geography", w, 1.0, shown), None
    return _criterion("geography", w, r.other_share, f"{shown}, outside target countries"), None


def _entries(values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return tuple(v for v in values if isinstance(v, str) and v.strip())


def _excluded(domains: list[str], company: str | None, entries: tuple[str, ...]) -> str | None:
    if not entries:
        return None
    candidates: list[str | None] = [*domains] if domains else [None]  # no domain: the company name alone
    for d in candidates:
        hit = matches_exclusion(d, company, entries)
        if hit:
            return hit
    return None


# --------------------------------------------------------------------------------------------- scoring

def score_lead(lead_like: Any, icp: IcpConfig, customers: Iterable[str] | None = (),
               competitors: Iterable[str] | None = ()) -> IcpResult:
    """Score one lead against the ICP. Pure: no I/O. Never raises on the lead's data.

    ``customers`` and ``competitors`` are exclusion entries (domains or company names), as in
    ``Settings.customer_exclusions`` / ``Settings.competitor_exclusions``.
    """
    email = _text(_get(lead_like, "email"))
    title = _text(_get(lead_like, "title"))
    company = _text(_get(lead_like, "company"))
    industry = _text(_get(lead_like, "industry"))
    country = _text(_get(lead_like, "country"))
    n, size_desc = _employees(_get(lead_like, "employee_count"))

    domains = []
    for d in (_domain(_get(lead_like, "company_domain")), _domain(email) if email and "@" in email else None):
        if d and d not in domains:
            domains.append(d)

    def industry_criterion():
        toks = words(industry) if industry else ()
        return (*_industry(icp, industry, toks), toks)

    size_c = _size(icp, n, size_desc)
    industry_c, industry_class, industry_toks = icp.memo("industry", industry, industry_criterion)
    title_c = icp.memo("title", title, lambda: _title(icp, title))
    geo_c, excluded_country = icp.memo("geography", country, lambda: _geography(icp, country))
    breakdown = [size_c, industry_c, title_c, geo_c]

    def disqualified(code: str, why: str) -> IcpResult:
        return IcpResult(score=0, tier=None, disqualified=True, reason=f"disqualified: {why}",
                         breakdown=breakdown, disqualifier=code)

    hit = _excluded(domains, company, _entries(customers))
    if hit:
        return disqualified("customer", f"existing customer ({_show(hit)})")
    hit = _excluded(domains, company, _entries(competitors))
    if hit:
        return disqualified("competitor", f"competitor ({_show(hit)})")
    if excluded_country:
        return disqualified("country", f"excluded country ({excluded_country})")
    if industry_class == "excluded":
        return disqualified("industry", f"excluded industry ({_show(industry or '')})")
    if n is not None and n < icp.size.disqualify_below:
        return disqualified("too_small", f"too small ({n:,} employees, minimum {icp.size.disqualify_below})")

    agency = _show(industry or "") if _first_phrase(industry_toks, icp._industry_terms["agency_industry"]) else None
    if agency is None and company and industry_class not in ("target", "related") \
            and _first_phrase(words(company), icp._industry_terms["agency_company"]):
        agency = _show(company)
    if agency is not None:
        need = icp.agency.enterprise_min_employees
        if n is None or n < need:
            size = "employee count unknown" if n is None else f"{n:,} employees"
            return disqualified("agency", f"agency ({agency}), {size}, {need:,}+ needed for an enterprise agency")

    score = max(0, min(100, sum(c.points for c in breakdown)))
    tier = icp.tier_for(score)
    return IcpResult(score=score, tier=tier, disqualified=False, reason=f"tier {tier} (score {score})",
                     breakdown=breakdown)


def fit_fields(fit: IcpResult) -> dict:
    """A result as the lead's stored fields: score, tier, icp (explanation), disqualified_reason."""
    return {"score": fit.score, "tier": fit.tier, "icp": {"explain": fit.explain(), "reason": fit.reason},
            "disqualified_reason": fit.reason if fit.disqualified else None}


def scored_fields(lead_like: Any, icp: IcpConfig, customers: Iterable[str] | None = (),
                  competitors: Iterable[str] | None = ()) -> dict:
    """``fit_fields`` of ``score_lead``: module-level, so that a ``functools.partial`` of it can score rows in a
    worker process (the import's)."""
    return fit_fields(score_lead(lead_like, icp, customers, competitors))
