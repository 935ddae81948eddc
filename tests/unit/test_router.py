"""The lead router (engine/rules/router.py): cold, warm via each signal, ghost, stopped, and next-step delays."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.rules.messaging import RouterConfig, load_pack
from engine.adapters.models import Lead
from engine.rules.router import NextStep, Route, next_step, route, stop_reason
from tests.conftest import CONFIG

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
PACK = load_pack(CONFIG)
CFG = RouterConfig(warm_window_days=30, ghost_after_days=45)
SIGNALS = ("last_open_at", "last_click_at", "last_reply_at", "last_visit_at", "last_engaged_at")


def ago(**kw) -> datetime:
    return NOW - timedelta(**kw)


def lead(**kw) -> dict:
    return {"email": "pat@northwind.example", "status": "new", **kw}


# ------------------------------------------------------------------------------------------ cold

def test_no_engagement_is_cold():
    r = route(lead(), NOW, CFG)
    assert r == Route("cold", "no engagement recorded")
    assert not r.stopped


def test_a_lead_row_routes_like_a_mapping():
    row = Lead(email="pat@northwind.example", status="cold")
    assert route(row, NOW, CFG).sequence == "cold"
    row.last_click_at = ago(days=2)
    assert route(row, NOW, CFG).sequence == "warm"


# ------------------------------------------------------------------------------------------ warm

@pytest.mark.parametrize("signal", SIGNALS)
def test_each_recent_signal_makes_a_lead_warm(signal):
    r = route(lead(**{signal: ago(days=3)}), NOW, CFG)
    assert r.sequence == "warm"
    assert r.signal == signal
    assert "3 days ago" in r.reason and "30-day warm window" in r.reason
    assert r.last_engaged_at == ago(days=3)


@pytest.mark.parametrize("status", ["warm", "WARM"])
def test_identified_visitor_without_dated_signal_is_warm(status):
    r = route(lead(status=status), NOW, CFG)
    assert r.sequence == "warm" and "identified website visitor" in r.reason and r.signal == "status"


def test_website_visits_count_without_a_date_is_warm():
    r = route(lead(website_visits=2), NOW, CFG)
    assert r.sequence == "warm" and "2 visits" in r.reason


def test_latest_signal_decides():
    r = route(lead(last_open_at=ago(days=100), last_click_at=ago(days=2)), NOW, CFG)
    assert r.sequence == "warm" and r.signal == "last_click_at"


def test_window_boundaries():
    assert route(lead(last_open_at=ago(days=30)), NOW, CFG).sequence == "warm"
    gap = route(lead(last_open_at=ago(days=40)), NOW, CFG)
    assert gap.sequence == "warm" and "outside the 30-day warm window" in gap.reason
    assert route(lead(last_open_at=ago(days=45)), NOW, CFG).sequence == "warm"
    assert route(lead(last_open_at=ago(days=45, seconds=1)), NOW, CFG).sequence == "ghost"


def test_future_naive_and_iso_signals():
    assert route(lead(last_open_at=NOW + timedelta(hours=2)), NOW, CFG).reason.startswith("opened today")
    naive = ago(days=3).replace(tzinfo=None)
    assert route(lead(last_click_at=naive), NOW, CFG).sequence == "warm"
    assert route(lead(last_visit_at="2026-11-20T10:00:00Z"), NOW, CFG).sequence == "warm"
    assert route(lead(last_visit_at="not a date"), NOW, CFG).sequence == "cold"


# ------------------------------------------------------------------------------------------ ghost

@pytest.mark.parametrize("signal", SIGNALS)
def test_engaged_once_then_silent_is_ghost(signal):
    r = route(lead(**{signal: ago(days=60)}), NOW, CFG)
    assert r.sequence == "ghost" and "silent for more than 45 days" in r.reason and r.signal == signal


def test_old_signal_beats_a_leftover_warm_status():
    # events.py marks a lead warm on an open; two months later it is a ghost, not warm
    assert route(lead(status="warm", last_engaged_at=ago(days=60)), NOW, CFG).sequence == "ghost"


# ------------------------------------------------------------------------------------------ stopped

# a hot lead replied with interest: a person takes over (engine/core/statuses STOP_LEAD_STATUSES, as the gateway)
@pytest.mark.parametrize("status", ["replied", "unsubscribed", "bounced", "complained", "hot"])
def test_stop_statuses(status):
    r = route(lead(status=status, last_click_at=ago(days=1)), NOW, CFG)
    assert r.sequence == "stopped" and r.stopped and status in r.reason


def test_reply_as_recorded_by_the_webhook_stops():
    # engine/services/events.py: a reply marks the lead hot and sets sequence_stopped_at with stop_reason "replied"
    r = route(lead(status="hot", sequence_stopped_at=ago(hours=1), stop_reason="replied",
                   last_engaged_at=ago(hours=1)), NOW, CFG)
    assert r.sequence == "stopped" and "replied" in r.reason and r.signal == "sequence_stopped_at"
    assert route(lead(sequence_stopped_at=ago(days=1)), NOW, CFG).reason.startswith(
        "sequence stopped (no reason recorded)")


def test_disqualified_lead_is_stopped():
    r = route(lead(disqualified_reason="existing customer"), NOW, CFG)
    assert r.sequence == "stopped" and "existing customer" in r.reason


def test_stopped_lead_has_no_next_step():
    stopped = lead(status="unsubscribed")
    assert stop_reason(stopped) == "status is 'unsubscribed'"
    assert next_step(stopped, PACK.sequence("cold"), 0, None, NOW) is None
    assert next_step(lead(sequence_stopped_at=NOW), PACK.sequence("cold"), 1, ago(days=9), NOW) is None


# ------------------------------------------------------------------------------------------ config

def test_route_reads_the_pack_its_routing_or_a_mapping():
    ld = lead(last_open_at=ago(days=35))
    assert route(ld, NOW, PACK).sequence == route(ld, NOW, PACK.routing).sequence == "warm"
    assert route(ld, NOW, {"warm_window_days": 7, "ghost_after_days": 30}).sequence == "ghost"
    assert route(ld, NOW, {"routing": {"warm_window_days": 40, "ghost_after_days": 40}}).sequence == "warm"
    with pytest.raises(ValueError, match="ghost_after_days"):
        route(ld, NOW, {"warm_window_days": 30, "ghost_after_days": 10})


# ------------------------------------------------------------------------------------------ next_step

def test_first_step_is_due_now():
    n = next_step(lead(), PACK.sequence("cold"), 0, None, NOW)
    assert n == NextStep("cold", 1, "first_touch", 0, NOW, True)


@pytest.mark.parametrize("sequence", ["cold", "warm", "ghost"])
def test_follow_ups_wait_their_delay_after_the_previous_send(sequence):
    seq = PACK.sequence(sequence)
    assert len(seq.steps) >= 3  # first touch + at least two follow-ups
    sent = NOW
    for st_ in seq.steps[1:]:
        n = next_step(lead(), seq, st_.step - 1, sent, sent)
        assert n.step == st_.step and n.kind == "follow_up" and n.sequence == sequence
        assert n.delay_days == st_.delay_days >= 1
        assert n.due_at == sent + timedelta(days=st_.delay_days)
        assert not n.due
        just_before = next_step(lead(), seq, st_.step - 1, sent, n.due_at - timedelta(seconds=1))
        assert not just_before.due
        assert next_step(lead(), seq, st_.step - 1, sent, n.due_at).due
        sent = n.due_at
    assert next_step(lead(), seq, seq.last_step, sent, sent + timedelta(days=30)) is None


def test_shipped_delays():
    delays = {name: [s.delay_days for s in PACK.sequence(name).steps] for name in ("cold", "warm", "ghost")}
    assert delays == {"cold": [0, 3, 5], "warm": [0, 2, 4], "ghost": [0, 4, 7]}


def test_next_step_needs_the_last_send_time_after_a_step():
    with pytest.raises(ValueError, match="last_sent_at is required"):
        next_step(lead(), PACK.sequence("warm"), 1, None, NOW)
    with pytest.raises(ValueError, match="last_step"):
        next_step(lead(), PACK.sequence("warm"), -1, None, NOW)


def test_next_step_accepts_plain_data_and_no_lead():
    seq = {"name": "custom", "steps": [{"step": 1, "kind": "first_touch", "delay_days": 0},
                                       {"step": 2, "kind": "follow_up", "delay_days": 10}]}
    n = next_step(None, seq, 1, "2026-11-01T00:00:00Z", NOW)
    assert n.step == 2 and n.due_at == datetime(2026, 11, 11, tzinfo=timezone.utc) and n.due


# ------------------------------------------------------------------------------------------ properties

@given(age_hours=st.integers(min_value=0, max_value=24 * 400), signal=st.sampled_from(SIGNALS),
       warm=st.integers(min_value=1, max_value=90), extra=st.integers(min_value=0, max_value=90))
def test_route_by_age_of_the_only_signal(age_hours, signal, warm, extra):
    cfg = RouterConfig(warm, warm + extra)
    r = route(lead(**{signal: NOW - timedelta(hours=age_hours)}), NOW, cfg)
    age = timedelta(hours=age_hours)
    expected = "ghost" if age > timedelta(days=warm + extra) else "warm"
    assert r.sequence == expected
