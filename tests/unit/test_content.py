"""Content rules (engine/rules/guardrails/content.py): spam terms, unsubscribe link, postal address, claims, subject."""
from __future__ import annotations

import pytest

from engine.core.config import load_word_list
from engine.rules.guardrails.content import ContentRules, check_content
from engine.core.reasons import Code, Kind
from tests.conftest import CONFIG

UNSUB = "https://alphaswarm.example/unsubscribe/tok-123"
ADDR = "548 Market St, Suite 100, San Francisco, CA 94104, USA"
SUBJECT = "Hiring SDRs at Northwind?"
BODY = "Hi Dana,\nI noticed your team is hiring SDRs. Would a short call next week be useful?\nBest, Sam"


def html_body(inner: str = "", unsub: str | None = None, addr: str | None = None) -> str:
    unsub = unsub if unsub is not None else f'<a href="{UNSUB}">Unsubscribe</a>'
    addr = addr if addr is not None else f"<p>Alpha Swarm Inc., {ADDR}</p>"
    return (f"<html><body><p>Hi Dana,</p><p>I noticed your team is hiring SDRs. {inner}</p>"
            f"<p>Best, Sam</p>{addr}<p>{unsub}</p></body></html>")


def text_body(inner: str = "", unsub: bool = True, addr: str | None = None) -> str:
    out = f"{BODY}\n{inner}\n\nAlpha Swarm Inc., {ADDR if addr is None else addr}\n"
    if unsub:
        out += f"Unsubscribe: {UNSUB}\n"
    return out


@pytest.fixture
def rules(settings):
    return ContentRules.from_settings(settings)


def codes(reasons):
    return [r.code for r in reasons]


def one(reasons, code):
    hits = [r for r in reasons if r.code == code]
    assert len(hits) == 1, reasons
    return hits[0]


# ------------------------------------------------------------------------------------------ compliant

def test_fully_compliant_email_has_no_reasons(rules):
    assert check_content(SUBJECT, html_body(), text_body(), rules) == []


def test_compliant_html_only_and_text_only(rules):
    assert check_content(SUBJECT, html_body(), None, rules) == []
    assert check_content(SUBJECT, None, text_body(), rules) == []


def test_content_reasons_are_permanent(rules):
    reasons = check_content("Re: free", "<p>nothing</p>", "nothing", rules)
    assert set(codes(reasons)) == {Code.SPAM_CONTENT, Code.MISSING_UNSUBSCRIBE, Code.MISSING_POSTAL_ADDRESS,
                                   Code.DECEPTIVE_SUBJECT}
    assert all(r.kind is Kind.PERMANENT for r in reasons)


# ------------------------------------------------------------------------------------------ spam terms

def test_spam_word_list_has_at_least_150_terms(settings):
    problems: list[str] = []
    terms = load_word_list(CONFIG / "spam_words.txt", problems)
    assert problems == []
    assert len(terms) >= 150, len(terms)
    assert settings.spam_terms == terms
    assert "free" in terms and "act now" in terms and "don't delete" in terms


@pytest.mark.parametrize("snippet", ["It's Free!", "FREE", "free.", "(free)", "totally free", "free-range ideas"])
def test_free_flags_whole_word(rules, snippet):
    r = one(check_content(SUBJECT, html_body(snippet), text_body(snippet), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "free"'


@pytest.mark.parametrize("snippet", ["freedom to choose", "a carefree week", "freely available", "freebie"])
def test_free_does_not_flag_inside_other_words(rules, snippet):
    assert check_content(SUBJECT, html_body(snippet), text_body(snippet), rules) == []


@pytest.mark.parametrize("snippet", ["act\nnow", "act    now", "Act \r\n\t NOW", "act\u00a0now"])
def test_phrase_across_line_breaks_and_spaces_in_text(rules, snippet):
    r = one(check_content(SUBJECT, None, text_body(snippet), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "act now"'


@pytest.mark.parametrize("snippet", ["act<br>now", "act<br/>now", "act&nbsp;&nbsp;now", "act\n   now",
                                     "<b>act</b> now"])
def test_phrase_across_line_breaks_and_spaces_in_html(rules, snippet):
    r = one(check_content(SUBJECT, html_body(snippet), None, rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "act now"'


def test_phrase_not_matched_when_words_are_apart(rules):
    assert check_content(SUBJECT, None, text_body("act on it now"), rules) == []
    assert check_content(SUBJECT, None, text_body("react now"), rules) == []


@pytest.mark.parametrize("snippet", ["Don\u2019t delete this email", "don't delete this", "DON\u2018T DELETE"])
def test_curly_apostrophes_match(rules, snippet):
    r = one(check_content(SUBJECT, html_body(snippet), text_body(snippet), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "don\'t delete"'


def test_spam_in_subject(rules):
    r = one(check_content("Free trial for your team", html_body(), text_body(), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "free trial"'  # the longest phrase wins


def test_spam_terms_listed_once_each(rules):
    r = one(check_content("Urgent", html_body("urgent: act now"), text_body("URGENT"), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "urgent", "act now"'


def test_spam_term_from_custom_list(settings_factory, tmp_path):
    # a term added to the editable list is enforced without code changes
    s = settings_factory()
    from dataclasses import replace

    s2 = replace(s, spam_terms=s.spam_terms + ("synergy blast",))
    r = one(check_content(SUBJECT, None, text_body("one Synergy\n Blast"), ContentRules.from_settings(s2)),
            Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "synergy blast"'


# ------------------------------------------------------------------------------------------ unsubscribe

MISSING_HTML = "no visible link to https://alphaswarm.example/unsubscribe in the html body"


@pytest.mark.parametrize("unsub", [
    "",                                                                               # nothing
    f"Unsubscribe: {UNSUB}",                                                          # URL but no <a>
    '<a href="https://other.example/unsubscribe/x">Unsubscribe</a>',                  # wrong target
    f'<a href="{UNSUB}"></a>',                                                        # no text
    f'<a href="{UNSUB}">   </a>',                                                     # blank text
    f'<a href="{UNSUB}"><img src="x.png"></a>',                                       # no text, image only
    f'<a href="{UNSUB}" style="display:none">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="color:#999; display : none">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="font-size:0">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="font-size: 0px">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="visibility:hidden">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="opacity:0">Unsubscribe</a>',
    f'<a href="{UNSUB}" hidden>Unsubscribe</a>',
    f'<div style="display:none"><a href="{UNSUB}">Unsubscribe</a></div>',
    f'<span style="font-size:0"><a href="{UNSUB}">Unsubscribe</a></span>',
    f'<a href="{UNSUB}"><span style="display:none">Unsubscribe</span></a>',
    f'<!-- <a href="{UNSUB}">Unsubscribe</a> -->',
])
def test_html_without_visible_unsubscribe_link(rules, unsub):
    r = one(check_content(SUBJECT, html_body(unsub=unsub), None, rules), Code.MISSING_UNSUBSCRIBE)
    assert r.detail == MISSING_HTML


@pytest.mark.parametrize("unsub", [
    f'<a href="{UNSUB}">Unsubscribe</a>',
    f'<a href="{UNSUB.upper()}">Unsubscribe</a>',
    f'<a href=" {UNSUB} ">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="font-size:11px;color:#888">Unsubscribe</a>',
    f'<a href="{UNSUB}" style="font-size:0.8em">Unsubscribe</a>',
    f'<a href="{UNSUB}"><span>Un</span>subscribe</a>',
    f'<a href="{UNSUB}"><span style="display:none">x</span>Unsubscribe</a>',
    f'<span style="display:none">hidden note</span> <a href="{UNSUB}">Unsubscribe</a>',
])
def test_html_with_visible_unsubscribe_link(rules, unsub):
    assert check_content(SUBJECT, html_body(unsub=unsub), None, rules) == []


def test_text_body_needs_the_unsubscribe_url(rules):
    r = one(check_content(SUBJECT, None, text_body(unsub=False), rules), Code.MISSING_UNSUBSCRIBE)
    assert r.detail == "no visible link to https://alphaswarm.example/unsubscribe in the text body"
    other = text_body(unsub=False) + "Unsubscribe: https://other.example/unsubscribe/x\n"
    assert Code.MISSING_UNSUBSCRIBE in codes(check_content(SUBJECT, None, other, rules))


def test_both_bodies_are_checked(rules):
    r = one(check_content(SUBJECT, html_body(unsub=""), text_body(unsub=False), rules), Code.MISSING_UNSUBSCRIBE)
    assert r.detail.endswith("in the html and text body")
    r = one(check_content(SUBJECT, html_body(), text_body(unsub=False), rules), Code.MISSING_UNSUBSCRIBE)
    assert r.detail.endswith("in the text body")


# ------------------------------------------------------------------------------------------ postal address

@pytest.mark.parametrize("addr", [
    "<p>548 Market St, Suite 100<br>San Francisco, CA 94104<br>USA</p>",
    "<p>548 Market St,<br/>Suite 100,<br />San Francisco, CA 94104, USA</p>",
    "<div>548 Market St, Suite 100</div><div>San Francisco, CA&nbsp;94104, USA</div>",
    "<p>548 MARKET ST. SUITE 100 SAN FRANCISCO CA 94104 USA</p>",
])
def test_postal_address_split_or_reformatted_still_counts(rules, addr):
    assert check_content(SUBJECT, html_body(addr=addr), None, rules) == []


def test_postal_address_split_across_text_lines(rules):
    text = text_body(addr="548 Market St\nSuite 100\nSan Francisco, CA 94104\nUSA")
    assert check_content(SUBJECT, None, text, rules) == []


@pytest.mark.parametrize("addr", [
    "",
    "<p>548 Market St, San Francisco</p>",                               # partial
    f'<p style="display:none">{ADDR}</p>',                               # hidden
    f'<p style="font-size:0">{ADDR}</p>',
])
def test_missing_postal_address_in_html(rules, addr):
    r = one(check_content(SUBJECT, html_body(addr=addr), None, rules), Code.MISSING_POSTAL_ADDRESS)
    assert r.detail == "the sender's postal address is not in the html body"


def test_missing_postal_address_in_text(rules):
    r = one(check_content(SUBJECT, html_body(), text_body(addr="San Francisco"), rules), Code.MISSING_POSTAL_ADDRESS)
    assert r.detail == "the sender's postal address is not in the text body"


# ------------------------------------------------------------------------------------------ forbidden claims

@pytest.mark.parametrize("snippet, claim", [
    ("We can double your revenue this year.", "double your revenue"),
    ("Zero\nrisk for you.", "zero risk"),
    ("It is risk-free.", "risk-free"),
])
def test_forbidden_claim_in_body(rules, snippet, claim):
    reasons = check_content(SUBJECT, html_body(snippet), text_body(snippet), rules)
    r = one(reasons, Code.FORBIDDEN_CLAIM)
    assert r.detail == f'forbidden claims: "{claim}"'


def test_shipped_claim_number_one_in_the_world_is_enforced(settings, rules):
    assert "#1 in the world" in settings.forbidden_claims
    r = one(check_content(SUBJECT, None, text_body("We are #1 in the world."), rules), Code.FORBIDDEN_CLAIM)
    assert r.detail == 'forbidden claims: "#1 in the world"'


def test_symbol_only_spam_term_matches(rules):
    r = one(check_content(SUBJECT, None, text_body("Make $$$ fast"), rules), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "$$$"'


def test_forbidden_claim_in_subject(rules):
    r = one(check_content("10x your pipeline", html_body(), text_body(), rules), Code.FORBIDDEN_CLAIM)
    assert r.detail == 'forbidden claims: "10x your pipeline"'


def test_claim_words_inside_other_words_not_flagged(rules):
    assert check_content(SUBJECT, None, text_body("no risky moves; zero risks taken"), rules) == []


# ------------------------------------------------------------------------------------------ deceptive subject

@pytest.mark.parametrize("subject", ["Re: your team", "RE : your team", "re:quick note", "Fwd: pricing",
                                     "FW: notes", "  Re: hello", "Re[2]: follow up", "FWD : deck", "AW: Termin"])
def test_reply_or_forward_prefix_on_first_touch_is_deceptive(rules, subject):
    r = one(check_content(subject, html_body(), text_body(), rules), Code.DECEPTIVE_SUBJECT)
    assert r.detail == f"first touch with a reply/forward prefix: {subject[:60]!r}"


@pytest.mark.parametrize("subject", ["Re: your team", "Fwd: pricing", "FW: notes"])
def test_reply_prefix_allowed_when_not_first_touch(rules, subject):
    assert check_content(subject, html_body(), text_body(), rules, first_touch=False) == []


@pytest.mark.parametrize("subject", ["Regarding your team", "Review: Q3 hiring plan", "Renewal dates", "Fwding",
                                     "A note re: your team", "Trends: SDR hiring"])
def test_ordinary_subjects_are_not_deceptive(rules, subject):
    assert check_content(subject, html_body(), text_body(), rules) == []
