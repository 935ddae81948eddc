"""The gateway's decision order as a pure function (engine/rules/decision.py), without a database.

Three things are pinned here: the order (for every pair of blocking rules, the one that comes first in the
gateway's order decides the status and gives the first reason), fail-closed behaviour when a group of facts was
not derived, and a property: whatever the facts, nothing is ``sending`` while any blocking fact is present.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from engine.core.actions import Action, parse_action
from engine.core.config import Settings, load_settings
from engine.core.reasons import Code, Reason
from engine.rules.decision import (
    GROUPS,
    PHASE_HOLD,
    Breaker,
    Control,
    Decision,
    Facts,
    LeadState,
    Outbox,
    Outcome,
    Standing,
    StoredSend,
    decide,
    derive_recipient,
    needs_approval,
)
from engine.rules.guardrails import DomainState, Suppressed, Usage
from tests.conftest import WORK_TIME, write_config
from tests.helpers import email

NOW = WORK_TIME  # Tuesday 15:00 UTC: 10:00 in New York (inside 08:00-18:00), midnight in Tokyo
UTC = timezone.utc
PRODUCTION = {
    "email_behavior": {"actually_send": True, "shadow_mode": False},
    "block_production_writes": False,
    "email_limits": {"min_delay_seconds": 30},
    "working_hours": {"start": "08:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                      "default_timezone": "America/New_York"},
}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> dict[str, Settings]:
    """The settings the decisions run on: CRM writes allowed ('open') or blocked by configuration ('blocked')."""
    base = tmp_path_factory.mktemp("decision-config")
    open_ = load_settings(write_config(base / "open", PRODUCTION, {"enabled": False}))
    blocked = load_settings(write_config(base / "blocked", {**PRODUCTION, "block_production_writes": True},
                                         {"enabled": False}))
    return {"open": open_, "blocked": blocked}


def an_email(key: str = "k1", **extra) -> Action:
    return parse_action(email(key, **extra))


def all_clear(action: Action) -> Facts:
    """Facts under which the action leaves: live autonomous phase, nothing stored, nothing suppressed or used."""
    email_ = action.spec is not None and action.spec.kind == "email"
    return Facts(
        control=Control(False, None, False, None, "autonomous", True),
        permission=(),
        message=(),
        outbox=Outbox(None),
        recipient=derive_recipient(action, "jane@acme.io", "acme.io", None, False, "America/New_York"),
        standing=Standing(None, Usage(warmup_phase=1) if email_ else None, None, ()),
        breaker=Breaker("ghl", True),
    )


def test_all_clear_is_sending(cfg):
    d = decide(an_email(), all_clear(an_email()), cfg["open"], NOW)
    assert (d.outcome, d.status, d.reasons, d.execute) == (Outcome.DECIDED, "sending", (), True)
    assert d.live is True and d.high_risk is False and d.all_reasons == ()


# ------------------------------------------------------------------------------------------------ the order

Case = tuple[Action, Facts, Settings]


@dataclass(frozen=True)
class Rule:
    """One blocking rule: how to trip it, and what it decides (status, first reason code, outcome)."""

    name: str
    trip: Callable[[Case], Case]
    status: str
    code: Code
    outcome: Outcome = Outcome.DECIDED


def _facts(**changes) -> Callable[[Case], Case]:
    def trip(case: Case) -> Case:
        action, facts, settings = case
        return action, dataclasses.replace(facts, **changes), settings
    return trip


def _control(**changes) -> Callable[[Case], Case]:
    def trip(case: Case) -> Case:
        action, facts, settings = case
        assert facts.control is not None
        return action, dataclasses.replace(facts, control=dataclasses.replace(facts.control, **changes)), settings
    return trip


def _standing(**changes) -> Callable[[Case], Case]:
    def trip(case: Case) -> Case:
        action, facts, settings = case
        assert facts.standing is not None
        return action, dataclasses.replace(facts, standing=dataclasses.replace(facts.standing, **changes)), settings
    return trip


def _read_only_action(case: Case) -> Case:
    action, facts, settings = case
    return dataclasses.replace(action, action="crm_read_contact"), facts, settings


def _crm_write_blocked(case: Case) -> Case:
    action, facts, _ = case
    return dataclasses.replace(action, action="crm_add_tag"), facts, CFG["blocked"]


def _stored(status: str, payload_hash: str | None = None, resume: bool = False) -> Callable[[Case], Case]:
    def trip(case: Case) -> Case:
        action, facts, settings = case
        row = StoredSend(7, payload_hash or action.payload_hash, status, ({"code": "LIMIT_HOURLY", "detail": "x"},))
        return action, dataclasses.replace(facts, outbox=Outbox(row), resume_id=7 if resume else None), settings
    return trip


def _phase_held(case: Case) -> Case:
    return _control(live_allowed=False)(_stored("deferred", resume=True)(case))


CFG: dict[str, Settings] = {}  # filled by the autouse fixture below (the rules refer to the blocked settings)


@pytest.fixture(autouse=True)
def _cfg(cfg):
    CFG.update(cfg)


# The gateway's order, highest priority first (engine/rules/decision.py, module docstring).
ORDER = [
    Rule("kill switch", _control(kill_switch=True, kill_reason="incident"), "denied", Code.KILL_SWITCH,
         Outcome.REFUSED),
    Rule("maintenance", _control(maintenance=True), "denied", Code.MAINTENANCE, Outcome.REFUSED),
    Rule("permission", _facts(permission=(Reason(Code.PERMISSION_DENIED, "no"),)), "denied",
         Code.PERMISSION_DENIED, Outcome.VIOLATION),
    Rule("action map", _read_only_action, "denied", Code.UNMAPPED_ACTION, Outcome.REFUSED),
    Rule("CRM writes blocked", _crm_write_blocked, "denied", Code.PRODUCTION_WRITES_BLOCKED, Outcome.REFUSED),
    Rule("idempotency conflict", _stored("sent", payload_hash="another"), "denied", Code.IDEMPOTENCY_CONFLICT,
         Outcome.REFUSED),
    Rule("duplicate", _stored("pending_approval"), "duplicate", Code.LIMIT_HOURLY, Outcome.DUPLICATE),
    Rule("suppressed", _standing(suppression=Suppressed("jane@acme.io", "unsubscribed")), "denied",
         Code.SUPPRESSED_RECIPIENT),
    Rule("phase held", _phase_held, "deferred", Code.PHASE_HELD),
    Rule("phase shadow", _control(live_allowed=False, phase="shadow"), "shadowed", Code.PHASE_BLOCKS_SEND),
    Rule("domain cooling", _standing(sender_domain=DomainState("alphaswarm.example", 10.0, True)), "deferred",
         Code.DOMAIN_COOLING),
    Rule("approval", _control(phase="assisted"), "pending_approval", Code.APPROVAL_REQUIRED),
    Rule("breaker", _facts(breaker=Breaker("ghl", False, NOW + timedelta(minutes=5))), "deferred",
         Code.BREAKER_OPEN),
]
# pairs that cannot hold at once: one action is either read-only or a CRM write; one stored row under the key;
# a phase hold is a resume, where the stored row is the truth (no conflict) and a final row is skipped
EXCLUSIVE = {frozenset(p) for p in [("action map", "CRM writes blocked"), ("idempotency conflict", "duplicate"),
                                    ("idempotency conflict", "phase held"), ("duplicate", "phase held")]}


def run(*rules: Rule) -> Decision:
    action = an_email()
    case: Case = (action, all_clear(action), CFG["open"])
    for rule in rules:
        case = rule.trip(case)
    return decide(case[0], case[1], case[2], NOW)


@pytest.mark.parametrize("rule", ORDER, ids=lambda r: r.name)
def test_each_rule_alone_decides(rule):
    d = run(rule)
    assert (d.status, d.reasons[0].code, d.outcome) == (rule.status, rule.code, rule.outcome), d
    assert not d.execute


PAIRS = [(hi, lo) for hi, lo in itertools.combinations(ORDER, 2) if frozenset((hi.name, lo.name)) not in EXCLUSIVE]


@pytest.mark.parametrize("hi,lo", PAIRS, ids=lambda r: r.name)
def test_the_higher_rule_decides_and_its_reason_comes_first(hi, lo):
    for d in (run(hi, lo), run(lo, hi)):  # whichever was tripped first
        assert (d.status, d.outcome) == (hi.status, hi.outcome), f"{hi.name} must outrank {lo.name}: {d}"
        assert d.reasons[0].code == hi.code, f"{hi.name} must outrank {lo.name}: {d.codes}"


def test_every_pair_of_rules_is_covered():
    assert len(PAIRS) == len(ORDER) * (len(ORDER) - 1) // 2 - len(EXCLUSIVE)


def test_shadow_keeps_the_temporary_reasons_after_its_own():
    d = run(ORDER[9], ORDER[10])  # phase shadow + domain cooling
    assert d.codes == ["PHASE_BLOCKS_SEND", "DOMAIN_COOLING"] and d.status == "shadowed"


def test_every_permanent_reason_is_denied_in_the_order_found():
    action = an_email(to="ceo@customer-one.example", subject="Re: hi", first_touch=False)
    facts = dataclasses.replace(
        all_clear(action), message=(Reason(Code.INVALID_RECIPIENT, "x"), Reason(Code.DECEPTIVE_SUBJECT, "y")),
        standing=Standing(Suppressed("ceo@customer-one.example", "bounced"), Usage(), None, ()))
    d = decide(action, facts, CFG["open"], NOW)
    assert d.status == "denied"
    assert d.codes == ["SUPPRESSED_RECIPIENT", "INVALID_RECIPIENT", "DECEPTIVE_SUBJECT"]


def test_a_follow_up_drops_the_deceptive_subject_reason_only_when_the_outbox_says_so():
    action = an_email(subject="Re: our call", first_touch=False)
    msg = (Reason(Code.DECEPTIVE_SUBJECT, "Re:"),)
    first = dataclasses.replace(all_clear(action), message=msg)  # no earlier send: the claim is ignored
    assert decide(action, first, CFG["open"], NOW).codes == ["DECEPTIVE_SUBJECT"]
    prior = derive_recipient(action, "jane@acme.io", "acme.io", None, True, "America/New_York")
    follow_up = dataclasses.replace(first, recipient=prior)
    assert decide(action, follow_up, CFG["open"], NOW).status == "sending"


def test_the_latest_temporary_reason_sets_not_before():
    late = NOW + timedelta(hours=3)
    facts = dataclasses.replace(all_clear(an_email()), standing=Standing(
        None, Usage(), DomainState("alphaswarm.example", 10.0, True), (Reason(Code.AGENT_RATE_LIMIT, "r", late),)))
    d = decide(an_email(), facts, CFG["open"], NOW)
    assert d.status == "deferred" and d.codes == ["DOMAIN_COOLING", "AGENT_RATE_LIMIT"] and d.not_before == late


def test_phase_hold_is_looked_at_again_after_the_hold():
    assert run(ORDER[8]).not_before == NOW + PHASE_HOLD


def test_an_approved_row_is_resumed_and_sent_and_a_pending_one_is_not_requested_twice():
    action = an_email()

    def with_row(status: str, approval: str | None, resume: bool) -> Facts:
        row = StoredSend(7, action.payload_hash, status, approval_status=approval)
        facts = dataclasses.replace(all_clear(action), outbox=Outbox(row), resume_id=7 if resume else None)
        return dataclasses.replace(facts, control=Control(False, None, False, None, "assisted", True))

    assert decide(action, with_row("pending_approval", "approved", True), CFG["open"], NOW).status == "sending"
    again = decide(action, with_row("deferred", "pending", False), CFG["open"], NOW)
    assert again.status == "pending_approval" and again.request_approval is False
    fresh = decide(action, dataclasses.replace(all_clear(action), control=Control(
        False, None, False, None, "assisted", True)), CFG["open"], NOW)
    assert fresh.request_approval is True
    skipped = decide(action, with_row("sent", None, True), CFG["open"], NOW)
    assert (skipped.outcome, skipped.status) == (Outcome.SKIPPED, "sent")
    foreign = decide(action, dataclasses.replace(with_row("deferred", None, True), resume_id=8), CFG["open"], NOW)
    assert foreign.codes == ["INVALID_ACTION"] and foreign.outcome is Outcome.REFUSED


def test_needs_approval_by_phase():
    assert [needs_approval(p, r) for p in ("assisted", "autonomous", "shadow") for r in (False, True)] == [
        True, True, False, True, False, False]


def test_the_stored_lead_stops_pauses_and_excludes():
    lead = LeadState(id=3, status="replied", stop_reason="reply", paused_until=(NOW + timedelta(days=2)).replace(
        tzinfo=None), company_domain="customer-one.example")
    action = an_email()
    facts = dataclasses.replace(all_clear(action), recipient=derive_recipient(
        action, "jane@acme.io", "acme.io", lead, False, "America/New_York"))
    d = decide(action, facts, CFG["open"], NOW)
    assert d.status == "denied" and d.codes == ["SEQUENCE_STOPPED", "EXCLUDED_RECIPIENT"]
    assert d.all_reasons[1].code == Code.LEAD_PAUSED and d.all_reasons[1].not_before == NOW + timedelta(days=2)


# ------------------------------------------------------------------------------------------------ fail closed

def _without(facts: Facts, group: str) -> Facts:
    return dataclasses.replace(facts, **{group: None})


@pytest.mark.parametrize("group", list(GROUPS))
def test_a_missing_group_of_facts_lets_nothing_leave(cfg, group):
    action = an_email()
    d = decide(action, _without(all_clear(action), group), cfg["open"], NOW)
    assert (d.outcome, d.missing, d.execute) == (Outcome.MISSING, group, False)
    assert d.status == GROUPS[group][0] and d.status in ("denied", "deferred")
    assert d.codes == [GROUPS[group][1].value]


def test_nothing_derived_asks_for_the_control_state_first(cfg):
    d = decide(an_email(), Facts(), cfg["open"], NOW)
    assert (d.missing, d.status, d.codes) == ("control", "denied", ["KILL_SWITCH"])


def test_an_email_without_its_limits_read_is_missing_its_standing(cfg):
    action = an_email()
    facts = all_clear(action)
    assert facts.standing is not None
    d = decide(action, dataclasses.replace(facts, standing=dataclasses.replace(facts.standing, usage=None)),
               cfg["open"], NOW)
    assert (d.outcome, d.missing, d.status) == (Outcome.MISSING, "standing", "denied")


def test_groups_are_asked_for_in_the_order_the_rules_need_them(cfg):
    """Each group is asked for only once every earlier one is given: the gateway reads them lazily, in order."""
    action = an_email()
    full = all_clear(action)
    asked = []
    facts = Facts(resume_id=full.resume_id, shadow_run=full.shadow_run)
    while (d := decide(action, facts, cfg["open"], NOW)).outcome is Outcome.MISSING:
        asked.append(d.missing)
        facts = dataclasses.replace(facts, **{d.missing: getattr(full, d.missing)})
    assert asked == list(GROUPS) and d.status == "sending"


# ------------------------------------------------------------------------------------------------ property

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "UTC", "Australia/Sydney"]


@dataclass(frozen=True)
class Blockers:
    """The blocking facts one example holds, named so a failure says which."""

    kill: bool
    maintenance: bool
    denied_permission: bool
    shadow_run: bool
    not_live: bool
    assisted_unapproved: bool
    suppressed: bool
    outside_hours: bool
    over_daily_limit: bool
    over_hourly_limit: bool
    too_soon: bool
    cooling_domain: bool
    agent_rate: bool
    stopped_lead: bool
    paused_lead: bool
    breaker_open: bool
    missing: str | None

    def any(self) -> bool:
        return any(v for v in dataclasses.asdict(self).values())


def _outside(now: datetime, zones: tuple[str, ...]) -> bool:
    from zoneinfo import ZoneInfo

    for z in zones:
        local = now.astimezone(ZoneInfo(z))
        if local.weekday() >= 5 or not (8 <= local.hour < 18):
            return True
    return False


@st.composite
def examples(draw):
    s = CFG["open"]
    lim = s.limits
    now = draw(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
    action = an_email(draw(st.sampled_from(["k1", "k2"])), tier=draw(st.sampled_from([None, 2, 3])),
                      timezone=draw(st.sampled_from([None, *ZONES])))
    b = Blockers(*(draw(st.booleans()) for _ in range(16)), missing=draw(st.sampled_from([None, None, *GROUPS])))
    phase = "assisted" if b.assisted_unapproved else draw(st.sampled_from(["autonomous", "shadow", "parallel"]))
    live = not b.not_live and phase in ("assisted", "autonomous")
    b = dataclasses.replace(b, not_live=not live)
    lead = LeadState(id=1, status="replied" if b.stopped_lead else draw(st.sampled_from(["new", "cold", "warm"])),
                     paused_until=now + timedelta(hours=draw(st.integers(1, 200))) if b.paused_lead else None,
                     timezone=draw(st.sampled_from([None, *ZONES])))
    recipient = derive_recipient(action, "jane@acme.io", "acme.io", draw(st.sampled_from([None, lead])),
                                 draw(st.booleans()), "America/New_York")
    if recipient.lead is None:  # the lead's own blockers need its record
        b = dataclasses.replace(b, stopped_lead=False, paused_lead=False)
    b = dataclasses.replace(b, outside_hours=_outside(now, recipient.timezones))
    usage = Usage(day_count=lim.daily_limit + draw(st.integers(0, 5)) if b.over_daily_limit else 0,
                  hour_times=tuple(now - timedelta(minutes=1) for _ in range(lim.hourly_limit))
                  if b.over_hourly_limit else (),
                  mailbox_last=now - timedelta(seconds=1) if b.too_soon else None, warmup_phase=1)
    facts = Facts(
        control=Control(b.kill, None, b.maintenance, None, phase, live),
        permission=(Reason(Code.UNKNOWN_AGENT, "x"),) if b.denied_permission else (),
        message=(), outbox=Outbox(None), recipient=recipient,
        standing=Standing(Suppressed("jane@acme.io", "bounced") if b.suppressed else None, usage,
                          DomainState("alphaswarm.example", 10.0, True) if b.cooling_domain
                          else draw(st.sampled_from([None, DomainState("alphaswarm.example", 90.0, False)])),
                          (Reason(Code.AGENT_RATE_LIMIT, "r", now + timedelta(minutes=1)),) if b.agent_rate else ()),
        breaker=Breaker("ghl", not b.breaker_open, None if not b.breaker_open else now + timedelta(minutes=1)),
        shadow_run=b.shadow_run,
    )
    if b.missing:
        facts = _without(facts, b.missing)
    return action, facts, now, b


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(examples())
def test_nothing_is_sent_while_any_blocking_fact_is_present(ex):
    action, facts, now, blockers = ex
    d = decide(action, facts, CFG["open"], now)
    if blockers.any():
        assert d.status != "sending" and not d.execute, (blockers, d)
    else:  # and with none, it is sent: the blockers above are exactly what stops this action
        assert d.status == "sending" and d.execute, (blockers, d)
