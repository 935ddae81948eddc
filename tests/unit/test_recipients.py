"""Recipient rules (engine/rules/guardrails/recipients.py): syntax, suppression, customer/competitor exclusions."""
from __future__ import annotations

import pytest

from engine.core.config import load_settings
from engine.rules.guardrails.recipients import (Suppressed, check_exclusions, check_suppression, check_syntax,
                                          matches_exclusion)
from engine.core.reasons import Code, Kind


def excluded(settings, domain=None, company=None):
    return check_exclusions(domain, company, settings.customer_exclusions, settings.competitor_exclusions)


@pytest.fixture
def named_settings(config_factory):
    """Shipped config plus company-name entries in the exclusion lists."""
    cdir = config_factory()
    with open(cdir / "exclusions" / "customers.txt", "a") as f:
        f.write("\nAcme Inc.\nGlobex Corporation\n")
    with open(cdir / "exclusions" / "competitors.txt", "a") as f:
        f.write("\nInitech LLC\n")
    return load_settings(cdir)


# ------------------------------------------------------------------------------------------ syntax

@pytest.mark.parametrize("address, problem", [
    ("plainaddress", "must have an @-sign"),
    ("dana@", "something after the @-sign"),
    ("@northwind.example", "something before the @-sign"),
    ("dana@@northwind.example", "invalid characters"),
    ("dana smith@northwind.example", "invalid characters"),
    ("dana@northwind", "should have a period"),
    ("dana..smith@northwind.example", "two periods in a row"),
    (".dana@northwind.example", "cannot start with a period"),
    ("dana@northwind..example", "two periods in a row"),
])
def test_invalid_recipient(address, problem):
    reasons = check_syntax(address)
    assert [r.code for r in reasons] == [Code.INVALID_RECIPIENT]
    assert reasons[0].kind is Kind.PERMANENT
    assert reasons[0].detail.startswith(repr(address) + ": ")
    assert problem in reasons[0].detail


@pytest.mark.parametrize("address", [None, ""])
def test_missing_recipient(address):
    reasons = check_syntax(address)
    assert [(r.code, r.detail) for r in reasons] == [(Code.INVALID_RECIPIENT, "no recipient address")]


@pytest.mark.parametrize("address", ["dana@northwind.example", "dana.smith+sales@mail.northwind.example",
                                     "o'brien@northwind.example", "ünïcode@northwind.example"])
def test_valid_recipient(address):
    assert check_syntax(address) == []


# ------------------------------------------------------------------------------------------ suppression

@pytest.mark.parametrize("why", ["unsubscribed", "bounced", "complained", "dnd", "manual"])
def test_suppressed_for_each_reason(why):
    reasons = check_suppression(Suppressed("dana@northwind.example", why, "ghl webhook"))
    assert [r.code for r in reasons] == [Code.SUPPRESSED_RECIPIENT]
    assert reasons[0].kind is Kind.PERMANENT
    assert reasons[0].detail == f"dana@northwind.example is suppressed: {why} (ghl webhook)"


def test_suppressed_without_source():
    reasons = check_suppression(Suppressed("dana@northwind.example", "bounced"))
    assert reasons[0].detail == "dana@northwind.example is suppressed: bounced"


def test_not_suppressed():
    assert check_suppression(None) == []


# ------------------------------------------------------------------------------------------ exclusions: domains

@pytest.mark.parametrize("domain, kind, entry", [
    ("customer-one.example", "existing customer", "customer-one.example"),
    ("customer-two.example", "existing customer", "customer-two.example"),
    ("mail.customer-one.example", "existing customer", "customer-one.example"),
    ("eu.mail.customer-two.example", "existing customer", "customer-two.example"),
    ("Customer-One.Example", "existing customer", "customer-one.example"),
    ("customer-one.example.", "existing customer", "customer-one.example"),
    ("competitor-one.example", "competitor", "competitor-one.example"),
    ("sales.competitor-two.example", "competitor", "competitor-two.example"),
])
def test_excluded_domains(settings, domain, kind, entry):
    reasons = excluded(settings, domain=domain)
    assert [r.code for r in reasons] == [Code.EXCLUDED_RECIPIENT]
    assert reasons[0].kind is Kind.PERMANENT
    assert reasons[0].detail == f"{kind} ({entry})"


@pytest.mark.parametrize("domain", [
    "notcustomer-one.example",   # lookalike: suffix without a dot boundary
    "customer-one.example.com",  # the excluded domain as a prefix
    "customer-one.exampl",
    "customer.example",
    "competitor-three.example",
    "northwind.example",
])
def test_lookalike_domains_are_not_excluded(settings, domain):
    assert excluded(settings, domain=domain) == []


def test_no_domain_no_company_is_not_excluded(settings):
    assert excluded(settings) == []


def test_at_prefixed_domain_entry():
    assert matches_exclusion("mail.acme.example", None, ("@acme.example",)) == "@acme.example"
    assert matches_exclusion("notacme.example", None, ("@acme.example",)) is None


# ------------------------------------------------------------------------------------------ exclusions: names

@pytest.mark.parametrize("company, kind, entry", [
    ("Acme Inc.", "existing customer", "Acme Inc."),
    ("ACME", "existing customer", "Acme Inc."),
    ("acme, inc", "existing customer", "Acme Inc."),
    ("Acme LLC", "existing customer", "Acme Inc."),
    ("  Acme   Inc  ", "existing customer", "Acme Inc."),
    ("globex", "existing customer", "Globex Corporation"),
    ("GLOBEX CORP.", "existing customer", "Globex Corporation"),
    ("Initech", "competitor", "Initech LLC"),
    ("initech, llc.", "competitor", "Initech LLC"),
])
def test_excluded_company_names(named_settings, company, kind, entry):
    reasons = excluded(named_settings, domain="unrelated.example", company=company)
    assert [(r.code, r.detail) for r in reasons] == [(Code.EXCLUDED_RECIPIENT, f"{kind} ({entry})")]


@pytest.mark.parametrize("company", ["Acme Rockets", "Acmeco", "Globex Labs", "Initechnology", "Inc.", ""])
def test_other_company_names_not_excluded(named_settings, company):
    assert excluded(named_settings, domain="unrelated.example", company=company) == []


def test_customer_checked_before_competitor():
    reasons = check_exclusions("x.example", None, ("x.example",), ("x.example",))
    assert reasons[0].detail == "existing customer (x.example)"
