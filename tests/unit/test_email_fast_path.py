"""syntax_problem's fast path (an ASCII dot-atom local part with a remembered domain verdict) accepts only what
email_validator's full check accepts."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules.guardrails.recipients import _simple_and_valid, syntax_problem

ATEXT = "abcxyzABC0129.-_+!#$%&'*/=?^`{|}~\"() ,;:<>[]\\é@"
LABELS = ["a", "b", "example", "com", "co", "c", "localhost", "test", "invalid", "local", "onion", "123", "xn--",
          "a-b", "-a", "a-", "arpa", "internal", "x" * 63, "x" * 64, ""]


def full_check(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


local_parts = st.one_of(st.text(alphabet=ATEXT, max_size=70),
                        st.sampled_from(["a", "a.b", ".a", "a.", "a..b", "x" * 64, "x" * 65, "first.last+tag"]))
domains = st.lists(st.one_of(st.sampled_from(LABELS), st.text(alphabet=ATEXT, min_size=1, max_size=6)),
                   min_size=1, max_size=4).map(".".join)


@settings(max_examples=3000, deadline=None)
@given(local_parts, domains)
def test_fast_path_accepts_only_what_the_full_check_accepts(local, domain):
    address = f"{local}@{domain}"
    if _simple_and_valid(address):
        assert full_check(address), address
    assert (syntax_problem(address) is None) == full_check(address)


def test_fast_path_takes_ordinary_addresses_and_leaves_the_rest():
    assert _simple_and_valid("jane.doe+news@acme-corp.example")
    for a in ("jane@", "@acme.example", "a..b@acme.example", "x" * 65 + "@acme.example", "jané@acme.example",
              '"q"@acme.example', "a@" + "x" * 250 + ".com", "a@-acme.example"):
        assert not _simple_and_valid(a), a
