"""Context handoff between the pipeline's agents (HUNTER -> ENRICHER -> SEGMENTOR -> CRAFTER -> GATEKEEPER ->
GHL_MASTER): each stage hands the next a typed envelope with the critical facts and their source, the decisions
so far and why, and a compact summary for LLM prompts within a token budget.

Compaction never drops a critical fact (email, company, tier, exclusions, suppression, consent): when the
budget is tight, optional facts and old decision reasons go first; if the critical facts alone exceed the
budget, they are kept anyway and the envelope says it is over budget.
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime

from engine.core.clock import iso

STAGES = ("HUNTER", "ENRICHER", "SEGMENTOR", "CRAFTER", "GATEKEEPER", "GHL_MASTER")
CRITICAL = ("email", "company", "tier", "exclusions", "suppression", "consent")


@dataclass(frozen=True)
class Fact:
    name: str
    value: object
    source: str           # where it came from: "import:demo_leads.csv row 12", "icp", "suppression list", ...
    critical: bool = False


@dataclass(frozen=True)
class Decision:
    stage: str
    decision: str
    why: str
    at: str


@dataclass(frozen=True)
class Envelope:
    lead_id: int | None
    stage: str
    facts: tuple[Fact, ...] = ()
    decisions: tuple[Decision, ...] = ()
    summary: str = ""
    over_budget: bool = False
    token_budget: int = 200

    def fact(self, name: str):
        for f in self.facts:
            if f.name == name:
                return f.value
        return None

    def to_dict(self) -> dict:
        """The same as ``dataclasses.asdict(self)``, several times faster (it runs for every stored envelope)."""
        return {"lead_id": self.lead_id, "stage": self.stage,
                "facts": tuple({"name": f.name, "value": _plain(f.value), "source": f.source, "critical": f.critical}
                               for f in self.facts),
                "decisions": tuple({"stage": d.stage, "decision": d.decision, "why": d.why, "at": d.at}
                                   for d in self.decisions),
                "summary": self.summary, "over_budget": self.over_budget, "token_budget": self.token_budget}


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, (str, int, float, bool)) else deepcopy(value)


def estimate_tokens(text: str) -> int:
    """A conservative estimate (about 4 characters per token), good enough for budgeting prompts."""
    return max(1, (len(text) + 3) // 4)


def start(lead_id: int | None, facts: dict[str, tuple[object, str]], token_budget: int = 200) -> Envelope:
    """The HUNTER's envelope. ``facts`` maps name -> (value, source); critical names are marked critical."""
    fs = tuple(Fact(n, v, src, n in CRITICAL) for n, (v, src) in facts.items())
    return compact(Envelope(lead_id, STAGES[0], fs, (), token_budget=token_budget))


def hand_off(env: Envelope, to_stage: str, decision: str, why: str, now: datetime,
             new_facts: dict[str, tuple[object, str]] | None = None) -> Envelope:
    """Record the current stage's decision and hand the envelope to ``to_stage``."""
    if to_stage not in STAGES:
        raise ValueError(f"unknown stage {to_stage!r}; stages: {', '.join(STAGES)}")
    facts = {f.name: f for f in env.facts}
    for n, (v, src) in (new_facts or {}).items():
        facts[n] = Fact(n, v, src, n in CRITICAL)
    d = Decision(env.stage, decision, why, iso(now))
    return _compacted(env.lead_id, to_stage, tuple(facts.values()), env.decisions + (d,), env.token_budget)


def _line(f: Fact) -> str:
    return f"{f.name}={f.value}"


def compact(env: Envelope) -> Envelope:
    """Build the summary within the token budget, dropping optional content first and never a critical fact."""
    return _compacted(env.lead_id, env.stage, env.facts, env.decisions, env.token_budget)


def _compacted(lead_id: int | None, stage: str, facts: tuple[Fact, ...], decisions: tuple[Decision, ...],
               budget: int) -> Envelope:
    critical = [f for f in facts if f.critical]
    optional = [f for f in facts if not f.critical]
    base = "; ".join(_line(f) for f in critical)
    over = estimate_tokens(base) > budget
    summary = base
    if not over:
        for f in optional:
            cand = summary + "; " + _line(f)
            if estimate_tokens(cand) <= budget:
                summary = cand
        for d in reversed(decisions):  # newest decisions first
            cand = summary + f" | {d.stage}: {d.decision} ({d.why})"
            if estimate_tokens(cand) > budget:
                cand = summary + f" | {d.stage}: {d.decision}"
                if estimate_tokens(cand) > budget:
                    break
            summary = cand
    return Envelope(lead_id, stage, facts, decisions, summary, over, budget)


def missing_critical(env: Envelope) -> list[str]:
    have = {f.name for f in env.facts}
    return [n for n in CRITICAL if n not in have]


@dataclass
class Trail:
    """The envelopes of one lead's journey, in order (stored with the lead for audit)."""

    envelopes: list[Envelope] = field(default_factory=list)

    def add(self, env: Envelope) -> Envelope:
        self.envelopes.append(env)
        return env
