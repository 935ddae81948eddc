from datetime import datetime, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.rules import handoff

NOW = datetime(2026, 11, 24, 15, tzinfo=timezone.utc)


def base(budget=200, **extra):
    facts = {"email": ("ana@target.io", "import row 2"), "company": ("Target", "import row 2"),
             "tier": (1, "icp"), "exclusions": ("none", "config/exclusions"), "suppression": ("none", "suppression"),
             "consent": ("legitimate interest", "policy"), **extra}
    return handoff.start(7, facts, token_budget=budget)


def test_envelope_carries_facts_with_sources_and_decisions_in_order():
    env = base(title=("VP Sales", "import row 2"))
    env = handoff.hand_off(env, "ENRICHER", "found", "lead matched the territory", NOW)
    env = handoff.hand_off(env, "SEGMENTOR", "enriched", "industry from Clay", NOW, {"industry": ("SaaS", "clay")})
    assert env.stage == "SEGMENTOR" and [d.stage for d in env.decisions] == ["HUNTER", "ENRICHER"]
    assert env.fact("industry") == "SaaS" and handoff.missing_critical(env) == []
    assert {f.name: f.source for f in env.facts}["email"] == "import row 2"
    assert "industry=SaaS" in env.summary and "ENRICHER: enriched" in env.summary


def test_compaction_drops_optional_content_never_critical_facts():
    env = base(budget=60, notes=("x" * 500, "crm"), title=("VP Sales", "import"))
    for name in handoff.CRITICAL:
        assert f"{name}=" in env.summary
    assert "notes=" not in env.summary


def test_critical_facts_over_budget_are_kept_and_flagged():
    env = base(budget=5)
    assert env.over_budget and all(f"{n}=" in env.summary for n in handoff.CRITICAL)


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage"):
        handoff.hand_off(base(), "MARKETER", "x", "y", NOW)


@hsettings(max_examples=150, deadline=None)
@given(budget=st.integers(1, 400), extra=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=300),
                                                           max_size=6))
def test_no_budget_ever_loses_a_critical_fact(budget, extra):
    env = base(budget=budget, **{f"x_{k}": (v, "test") for k, v in extra.items()})
    for name in handoff.CRITICAL:
        assert f"{name}=" in env.summary
    if not env.over_budget:
        assert handoff.estimate_tokens(env.summary) <= budget
