"""One definition of each concept: the paths that read the same fact must agree on it.

Each test feeds one table of inputs to every caller of a concept and compares their answers. Before the concept had
one definition, several of these disagreed (an employee count of "1.000" was 1000 to the importer and 1 to the
scorer; "Ana <ana@acme.io>" was a lead to the importer and no address to the RB2B webhook; a lead with status "hot"
was stopped by the gateway and routed warm by the router).
"""
from __future__ import annotations

import typing
import unicodedata
from datetime import datetime, timezone

import pytest

from engine.adapters import leads_csv
from engine.core.envcheck import BOOL_FALSE, BOOL_TRUE, check_env, env_flag, truthy
from engine.core.identity import canonical_address, normalise_address
from engine.core.statuses import (STOP_LEAD_STATUSES, DecisionStatus, DraftStatus, LeadStatus, OutboxStatus,
                                  SuppressionReason, TemplateStatus, stops_sequence)
from engine.rules import icp, router
from engine.rules.leadfacts import EmployeeCountError, employee_count, read_employee_count
from engine.services import events
from tests.conftest import CONFIG

# ------------------------------------------------------------------------------------------ employee count

# (value, the count every path reads; None: unknown, or unreadable and dropped)
COUNTS = [
    ("1.000", 1000), ("1,000", 1000), ("1 000", 1000), ("1'000", 1000), ("10.000", 10000), ("1.5k", 1500),
    ("10K+", 10000), ("1k", 1000), ("51-200", 125), ("51 to 200", 125), ("1k-5k", 3000), ("10+", 10),
    ("1,000+", 1000), ("10,001+", 10001), ("250", 250), ("250.0", 250), ("120.7", 120), ("11-50 employees", 30),
    ("Myself Only", 1), ("", None), ("   ", None), ("0", None), ("lots", None), ("-5", None), ("200-51", None),
    ("1e9", None), ("50,000,000", None), ("9" * 400, None), ("n/a", None),
]


def _importer(value: str) -> int | None:
    """What `alpha leads import` stores: the cell read, or nothing when the row's value is reported and dropped."""
    try:
        return leads_csv.parse_employee_count(value)
    except ValueError:
        return None


def _scorer(value: str) -> int | None:
    return icp._employees(value)[0]


def _webhook(value: str) -> int | None:
    return events.normalise_rb2b({"email": "ana@acme.io", "employee count": value})["employee_count"]


@pytest.mark.parametrize("value,expected", COUNTS)
def test_the_importer_the_scorer_and_the_webhook_read_an_employee_count_alike(value, expected):
    assert (_importer(value), _scorer(value), _webhook(value)) == (expected, expected, expected)


def test_a_csv_cell_of_1_000_is_scored_as_a_thousand_employees(tmp_path):
    p = tmp_path / "leads.csv"
    p.write_text("email,company,employees\nana@acme.io,Acme,1.000\n", encoding="utf-8")
    [row] = leads_csv.parse_leads_csv(p).rows
    assert row["employee_count"] == 1000
    fit = icp.score_lead({"email": "ana@acme.io", "employee_count": "1.000"}, icp.load_icp(CONFIG))
    assert "1,000 employees" in fit.explain()


@pytest.mark.parametrize("value,n", [(120, 120), (120.9, 120), (0, 0), (None, None)])
def test_numbers_are_read_as_numbers(value, n):
    assert read_employee_count(value).n == n
    assert _webhook(value) == (n or None) == _scorer(value)


@pytest.mark.parametrize("value,why", [(True, "not a number"), (-5, "negative"), (10**40, "implausible"),
                                       (float("nan"), "not a number"), ([], "not a number")])
def test_an_unreadable_number_says_why(value, why):
    with pytest.raises(EmployeeCountError, match="employee count") as e:
        employee_count(value)
    assert e.value.why == why
    assert icp._employees(value) == (None, f"employee count unknown ({why})")


def test_a_range_is_described_with_its_midpoint():
    assert read_employee_count("51-200") == (125, 51, 200)
    assert icp._employees("51-200") == (125, "51-200 employees (midpoint 125)")


# ------------------------------------------------------------------------------------------ email address

ADDRESSES = [
    "ana@acme.io", "  Ana@ACME.io ", "Ana <ana@acme.io>", "mailto:ana@acme.io", "ana@acme.io\x00",
    unicodedata.normalize("NFD", "josé@acme.io"), "JOSÉ@acme.io", "x <Y+tag@GMail.com>",
]


@pytest.mark.parametrize("raw", ADDRESSES)
def test_the_importer_and_the_webhook_store_the_same_address(raw, tmp_path):
    p = tmp_path / "leads.csv"
    p.write_text(f'email,company\n"{raw}",Acme\n', encoding="utf-8")
    rows = leads_csv.parse_leads_csv(p).rows
    stored = normalise_address(raw)
    assert [r["email"] for r in rows] == [stored]
    assert events.normalise_rb2b({"email": raw})["email"] == stored
    assert leads_csv.normalise_email is normalise_address


@pytest.mark.parametrize("raw", ADDRESSES)
def test_the_key_of_an_address_is_the_key_of_its_stored_form(raw):
    assert canonical_address(raw) == canonical_address(normalise_address(raw)) != ""


def test_mailto_and_display_names_are_the_same_mailbox():
    assert canonical_address("Ana <Ana+news@acme.io>") == canonical_address("mailto:ana@acme.io") == "ana@acme.io"


# ------------------------------------------------------------------------------------------ boolean settings

FLAGS = ["1", "true", "TRUE", " yes ", "On", "0", "false", "no", "off", "", "  ", "2", "y", "enabled", "truthy"]


@pytest.mark.parametrize("value", FLAGS)
def test_every_reader_of_a_boolean_setting_agrees(value, monkeypatch, tmp_path):
    from engine.adapters import db, users
    from engine.services import control

    want = value.strip().lower() in BOOL_TRUE
    assert truthy(value) is want
    assert env_flag("X", {"X": value}) is want
    assert control._truthy(value) is want and users._truthy(value) is want
    for name, read in (("ALPHA_REPLY_SECOND_OPINION", events.second_opinion_enabled), ("CI", db.is_ci),
                       ("ALPHA_DEMO", users.demo_mode)):
        monkeypatch.setenv(name, value)
        assert read() is want, name
    monkeypatch.setenv("EMERGENCY_STOP", value)
    assert control.EnvKillSwitch(tmp_path / "none.env").state()[0] is want


@pytest.mark.parametrize("value", FLAGS)
def test_the_environment_check_accepts_exactly_what_reads_as_a_boolean(value):
    problems = check_env({"ALPHA_DEBUG": value})
    accepted = not problems
    blank = not value.strip()
    assert accepted is (blank or value.strip().lower() in BOOL_TRUE + BOOL_FALSE)
    if accepted and not blank:
        assert truthy(value) is (value.strip().lower() in BOOL_TRUE)


def test_unset_is_false():
    assert truthy(None) is False and env_flag("NOT_SET_ANYWHERE", {}) is False


# ------------------------------------------------------------------------------------------ statuses

def test_the_enums_hold_the_stored_strings():
    assert [*DecisionStatus] == ["sent", "shadowed", "pending_approval", "deferred", "denied", "duplicate",
                                 "reconcile"]
    assert [*OutboxStatus] == ["deferred", "pending_approval", "sending", "sent", "failed", "reconcile", "denied",
                               "shadowed", "cancelled"]
    assert [*TemplateStatus] == ["draft", "approved"]
    assert [*DraftStatus] == ["draft", "approved", "rejected", "queued", "sent"]
    assert [*SuppressionReason] == ["unsubscribed", "bounced", "complained", "dnd", "manual"]
    assert OutboxStatus.SENT == "sent" and f"{OutboxStatus.SENT}" == "sent" and {"sent": 1}[OutboxStatus.SENT] == 1


def test_the_public_status_lists_are_built_from_the_enums():
    from engine.app import SUPPRESSION_REASONS
    from engine.queries import outbox
    from engine.rules import messaging
    from engine.services import gateway, shadow_emails

    assert tuple(gateway.STATUSES) == tuple(DecisionStatus)
    assert tuple(outbox.STATUSES) == tuple(OutboxStatus)
    assert set(outbox.COUNTED) | set(outbox.WAITING) | set(outbox.FINAL) <= set(OutboxStatus)
    assert tuple(messaging.STATUSES) == tuple(TemplateStatus)
    assert typing.get_args(messaging.TemplateSpec.model_fields["status"].annotation) == tuple(TemplateStatus)
    assert shadow_emails.DRAFT_STATUSES == tuple(DraftStatus)
    assert all(type(s) is str for s in shadow_emails.DRAFT_STATUSES)  # plain strings for the page's filter
    assert set(shadow_emails.EDITABLE) | set(shadow_emails.REVIEWED) == set(DraftStatus)
    assert tuple(SUPPRESSION_REASONS) == tuple(SuppressionReason)


@pytest.mark.parametrize("status", [*LeadStatus, "HOT", " Replied "])
def test_the_router_and_the_gateway_stop_on_the_same_lead_statuses(status):
    from engine.services import gateway

    cfg = {"warm_window_days": 30, "ghost_after_days": 45}
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    routed_stopped = router.route({"status": status}, now, cfg).stopped
    assert routed_stopped is stops_sequence(status)
    assert (str(status).strip().lower() in gateway.STOPPED_STATUSES) is routed_stopped
    assert gateway.STOPPED_STATUSES is STOP_LEAD_STATUSES
    assert routed_stopped is (str(status).strip().lower() in {"hot", "replied", "unsubscribed", "bounced",
                                                               "complained"})
