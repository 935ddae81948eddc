"""engine/services/shadow_emails.py pure parts: locating guardrail findings in a text, and plain text back to safe
HTML."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.services.shadow_emails import finding_terms, segments, text_to_html
from engine.rules.guardrails.content import ContentRules, check_content
from tests.helpers import ADDRESS, UNSUB


def rules(settings) -> ContentRules:
    return ContentRules.from_settings(settings)


def test_segments_mark_spam_claims_and_unsupported_terms(settings):
    text = "Hi Pat,\nThis is 100% FREE and\nguaranteed results for Northwind. Act  now!"
    got = segments(text, rules(settings), ["Northwind"])
    assert "".join(p for p, _ in got) == text
    marked = [(p, c) for p, c in got if c]
    assert ("100% FREE", "SPAM_CONTENT") in marked
    assert ("guaranteed results", "FORBIDDEN_CLAIM") in marked  # the longer match wins over "guaranteed"
    assert ("Northwind", "unsupported_claim") in marked
    assert ("Act  now", "SPAM_CONTENT") in marked  # any run of white space between the words


def test_segments_of_a_clean_text_is_the_text(settings):
    assert segments("Hello there", rules(settings)) == [("Hello there", None)]
    assert segments("", rules(settings)) == [("", None)]
    assert segments("freedom and carefree", rules(settings)) == [("freedom and carefree", None)]


@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=8), max_size=3))
def test_segments_always_join_back_to_the_text(text, terms):
    from engine.core.config import load_settings
    from tests.conftest import CONFIG

    got = segments(text, ContentRules.from_settings(load_settings(CONFIG)), terms)
    assert "".join(p for p, _ in got) == text


def test_finding_terms():
    flags = [{"code": "unsupported_claim", "terms": ["Acme", "40%"]}, {"code": "SPAM_CONTENT", "detail": "x"},
             {"code": "unsupported_claim", "terms": ["Acme", " "]}, "junk"]
    assert finding_terms(flags) == ["Acme", "40%"]
    assert finding_terms(None) == []


def test_text_to_html_escapes_and_keeps_links_and_paragraphs(settings):
    text = (f"Hi <b>Pat</b> & co,\nsecond line\n\nBye\n\n{ADDRESS}\nUnsubscribe ({UNSUB}/tok123).\n"
            "javascript:alert(1) stays text")
    out = text_to_html(text)
    assert "<b>" not in out and "&lt;b&gt;Pat&lt;/b&gt; &amp; co" in out
    assert "<p>Hi &lt;b&gt;Pat&lt;/b&gt; &amp; co,<br>\nsecond line</p>" in out
    assert f'<a href="{UNSUB}/tok123">{UNSUB}/tok123</a>).' in out  # trailing punctuation stays outside
    assert 'href="javascript' not in out
    found = {r.code.value for r in check_content("A question", out, text, rules(settings))}
    assert "MISSING_UNSUBSCRIBE" not in found and "MISSING_POSTAL_ADDRESS" not in found


def test_text_to_html_quotes_in_urls_cannot_break_out():
    out = text_to_html('see https://x.example/a"onmouseover="alert(1) now')
    assert 'onmouseover="' not in out
