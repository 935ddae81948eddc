"""Content rules that hold against evasion (engine/rules/guardrails/content.py, textnorm.py, visibility.py).

Spam terms and forbidden claims disguised with invisible characters, soft hyphens, fullwidth or look-alike letters
and markdown emphasis, or hidden in the HTML, are still found; a postal address or unsubscribe link hidden in any
of the ways a mail client would not show is not counted; reply/forward prefixes in other languages and disguises
are deceptive on a first touch; the postal address may be written with the usual abbreviations; the unsubscribe
link must carry the recipient's own token. Then the same as properties (hypothesis), and the negative side: the
shipped templates and ordinary words still pass.
"""
from __future__ import annotations

import html as htmllib
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules import guardrails
from engine.core.actions import parse_action
from engine.core.config import load_settings
from engine.rules.guardrails.content import ContentRules, check_content
from engine.rules.messaging import load_pack, render
from engine.core.reasons import Code
from engine.rules.unsubscribe import unsubscribe_url
from tests.badinput.strategies import COMMON
from tests.conftest import CONFIG

SETTINGS = load_settings(CONFIG)
RULES = ContentRules.from_settings(SETTINGS)
SENDER = SETTINGS.production.sender
BASE = SENDER.unsubscribe_base_url
ADDR = SENDER.postal_address  # "548 Market St, Suite 100, San Francisco, CA 94104, USA"
SECRET = b"evasion-test-secret"
TO = "dana@northwind.example"
LINK = unsubscribe_url(BASE, TO, SECRET)
SUBJECT = "Hiring SDRs at Northwind?"
PACK = load_pack(CONFIG)


def html_body(inner: str = "", unsub: str | None = None, addr: str | None = None) -> str:
    unsub = unsub if unsub is not None else f'<a href="{LINK}">Unsubscribe</a>'
    addr = addr if addr is not None else f"<p>Alpha Swarm Inc., {ADDR}</p>"
    return (f"<html><body><p>Hi Dana,</p><p>I noticed your team is hiring SDRs. {inner}</p>"
            f"<p>Best, Sam</p>{addr}<p>{unsub}</p></body></html>")


def text_body(inner: str = "", addr: str | None = None, link: str | None = LINK) -> str:
    out = f"Hi Dana,\nI noticed your team is hiring SDRs. {inner}\nBest, Sam\n\nAlpha Swarm Inc., "
    out += f"{ADDR if addr is None else addr}\n"
    return out + (f"Unsubscribe: {link}\n" if link else "")


def codes(reasons) -> set[str]:
    return {r.code.value for r in reasons}


def one(reasons, code: Code):
    hits = [r for r in reasons if r.code == code]
    assert len(hits) == 1, reasons
    return hits[0]


# ------------------------------------------------------------------------------------------ ways of hiding

# name -> HTML hiding "{x}"; colour-only hiding does not reach a link (a link has its own colour), so for a link
# those are applied inside it
HIDE = {
    "display:none": '<div style="display:none">{x}</div>',
    "display:none on a self-closed div": '<div style="display:none"/>{x}</div>',
    "display:none past a stray end tag": '<span><div style="display: none"></span>{x}</div>',
    "visibility:hidden": '<div style="visibility:hidden">{x}</div>',
    "template": "<template>{x}</template>",
    "noscript": "<noscript>{x}</noscript>",
    "hidden attribute": "<div hidden>{x}</div>",
    "class hidden by a style block": '<style>.fine-print { display: none }</style><div class="fine-print">{x}</div>',
    "id hidden by a later style block": '<div id="f9">{x}</div><style>#f9{visibility:hidden!important}</style>',
    "off-screen absolute": '<div style="position:absolute;left:-9999px">{x}</div>',
    "off-screen fixed": '<div style="position:fixed; top:-5000px">{x}</div>',
    "text-indent": '<div style="text-indent:-9999px">{x}</div>',
    "margin-left": '<div style="margin-left:-9999px">{x}</div>',
    "font-size:0": '<div style="font-size:0">{x}</div>',
    "font-size:1px": '<div style="font-size:1px">{x}</div>',
    "font-size:2px": '<div style="font-size:2px">{x}</div>',
    "font shorthand 0/0": '<div style="font:0/0 a">{x}</div>',
    "zero box, overflow hidden": '<div style="width:0;height:0;overflow:hidden">{x}</div>',
    "1px box, overflow hidden": '<div style="width:1px;height:1px;overflow:hidden">{x}</div>',
    "max-height:0": '<div style="max-height:0px">{x}</div>',
    "opacity:0": '<div style="opacity:0">{x}</div>',
    "opacity:0.05": '<div style="opacity:0.05">{x}</div>',
    "clip rect": '<div style="position:absolute;clip:rect(0 0 0 0)">{x}</div>',
    "clip-path": '<div style="clip-path: inset(50%)">{x}</div>',
    "comment": "<!-- {x} -->",
    "unclosed comment": "<!-- {x}",
    "mso-hide:all": '<div style="mso-hide:all">{x}</div>',
    "closed details": "<details>{x}</details>",
    "scale(0)": '<div style="transform:scale(0)">{x}</div>',
}
COLOUR_HIDE = {
    "white text #fff": '<span style="color:#fff">{x}</span>',
    "white text #ffffff": '<span style="color:#FFFFFF">{x}</span>',
    "white text by name": '<span style="color: white">{x}</span>',
    "white text rgb()": '<span style="color:rgb(255, 255, 255)">{x}</span>',
    "near-white text": '<span style="color:#fefefe">{x}</span>',
    "colour equal to the background":
        '<div style="background-color:#334455"><span style="color:#334455">{x}</span></div>',
    "colour equal to own background": '<span style="color:#0a0;background-color:#00aa00">{x}</span>',
    "white <font>": '<font color="#ffffff">{x}</font>',
}
ALL_HIDE = {**HIDE, **COLOUR_HIDE}
# what the old model (before this change) already caught: display:none, visibility:hidden, font-size:0, opacity:0,
# the hidden attribute and (closed) comments
OLD_CAUGHT = {"display:none", "visibility:hidden", "font-size:0", "opacity:0", "hidden attribute", "comment"}


def hide(how: str, x: str) -> str:
    return ALL_HIDE[how].replace("{x}", x)


def hidden_link(how: str, inside: bool) -> str:
    if inside or how in COLOUR_HIDE:
        return f'<a href="{LINK}">{hide(how, "Unsubscribe")}</a>'
    return hide(how, f'<a href="{LINK}">Unsubscribe</a>')


# ------------------------------------------------------------------------------------------ spam, disguised

ZERO_WIDTH = {"zero width space": "\u200b", "zero width non-joiner": "\u200c", "zero width joiner": "\u200d",
              "word joiner": "\u2060", "byte order mark": "\ufeff", "soft hyphen": "\u00ad",
              "soft hyphen entity": "&shy;", "zero width entity": "&#8203;"}


@pytest.mark.parametrize("name", sorted(ZERO_WIDTH))
def test_spam_split_by_invisible_characters_is_found(name):
    ch = ZERO_WIDTH[name]
    html_snippet = f"Act{ch} n{ch}ow for a f{ch}r{ch}e{ch}e trial"
    r = one(check_content(SUBJECT, html_body(html_snippet), None, RULES), Code.SPAM_CONTENT)
    assert '"act now"' in r.detail and '"free trial"' in r.detail
    if "&" not in ch:
        for rs in (check_content(SUBJECT, None, text_body(html_snippet), RULES),
                   check_content(f"F{ch}ree trial for you", None, text_body(), RULES)):
            assert '"free trial"' in one(rs, Code.SPAM_CONTENT).detail


@pytest.mark.parametrize("snippet, term", [
    ("ｆｒｅｅ", "free"), ("ＡＣＴ ＮＯＷ", "act now"), ("𝐟𝐫𝐞𝐞", "free"), ("ⓕⓡⓔⓔ", "free"),
    ("ﬁnancial freedom", "financial freedom"),
])
def test_spam_in_fullwidth_or_compatibility_letters_is_found(snippet, term):
    for reasons in (check_content(SUBJECT, html_body(snippet), None, RULES),
                    check_content(SUBJECT, None, text_body(snippet), RULES),
                    check_content(f"{snippet} inside", None, text_body(), RULES)):
        assert f'"{term}"' in one(reasons, Code.SPAM_CONTENT).detail


@pytest.mark.parametrize("snippet, code, term", [
    ("fr\u0435\u0435", Code.SPAM_CONTENT, "free"),                       # Cyrillic е
    ("\u0430ct n\u043ew", Code.SPAM_CONTENT, "act now"),                  # Cyrillic а, о
    ("\u0441he\u0430\u0440", Code.SPAM_CONTENT, "cheap"),                 # Cyrillic с, а, р
    ("e\u0445pires tod\u0430\u0443", Code.SPAM_CONTENT, "expires today"),  # Cyrillic х, а, у
    ("FR\u0415\u0415", Code.SPAM_CONTENT, "free"),                        # Cyrillic Е
    ("zer\u03bf risk", Code.FORBIDDEN_CLAIM, "zero risk"),                # Greek ο
    ("\u03b1pproved by the fd\u03b1", Code.FORBIDDEN_CLAIM, "approved by the fda"),  # Greek α
    ("fr\u00e9e", Code.SPAM_CONTENT, "free"),                             # accent
    ("f\u0336r\u0336e\u0336e\u0336", Code.SPAM_CONTENT, "free"),          # combining strike-through
])
def test_spam_and_claims_in_look_alike_letters_are_found(snippet, code, term):
    for reasons in (check_content(SUBJECT, html_body(snippet), None, RULES),
                    check_content(SUBJECT, None, text_body(snippet), RULES)):
        assert f'"{term}"' in one(reasons, code).detail


@pytest.mark.parametrize("snippet, term", [
    ("_free_", "free"), ("__free__", "free"), ("_act_ _now_", "act now"), ("free_trial", "free trial"),
    ("**_free_**", "free"), ("~~_act now_~~", "act now"),
])
def test_spam_in_markdown_emphasis_is_found(snippet, term):
    # "_" is a word character to a regular expression: "_free_" slipped past the whole-word match ("*" and "~"
    # did not; the property test below covers them too)
    for reasons in (check_content(SUBJECT, html_body(snippet), None, RULES),
                    check_content(SUBJECT, None, text_body(snippet), RULES)):
        assert f'"{term}"' in one(reasons, Code.SPAM_CONTENT).detail


@pytest.mark.parametrize("how", sorted(ALL_HIDE))
def test_hidden_spam_and_claims_are_still_scanned(how):
    r = one(check_content(SUBJECT, html_body(hide(how, "Act now: zero risk")), None, RULES), Code.SPAM_CONTENT)
    assert r.detail == 'spam terms: "act now" (hidden text: "act now")'
    r = one(check_content(SUBJECT, html_body(hide(how, "Act now: zero risk")), None, RULES), Code.FORBIDDEN_CLAIM)
    assert r.detail == 'forbidden claims: "zero risk" (hidden text: "zero risk")'


@pytest.mark.parametrize("link", [
    f'<a href="{LINK}" style="pointer-events:none">Unsubscribe</a>',
    f'<div inert><a href="{LINK}">Unsubscribe</a></div>',
    f'<style>.quiet a {{ pointer-events: none }}</style><p class="quiet"><a href="{LINK}">Unsubscribe</a></p>',
])
def test_unsubscribe_link_that_cannot_be_clicked_does_not_count(link):
    reasons = check_content(SUBJECT, html_body(unsub=link), None, RULES, recipient=TO, secret=SECRET)
    assert one(reasons, Code.MISSING_UNSUBSCRIBE).detail.startswith("no visible link to ")


def test_spam_in_style_generated_content_is_scanned():
    body = html_body('<style>.x::after { content: "Act now" }</style><span class="x"></span>')
    assert '"act now"' in one(check_content(SUBJECT, body, None, RULES), Code.SPAM_CONTENT).detail


# ------------------------------------------------------------------------------------------ hidden compliance footer

@pytest.mark.parametrize("how", sorted(set(ALL_HIDE) - OLD_CAUGHT))
def test_hidden_postal_address_does_not_count(how):
    reasons = check_content(SUBJECT, html_body(addr=hide(how, f"Alpha Swarm Inc., {ADDR}")), None, RULES)
    r = one(reasons, Code.MISSING_POSTAL_ADDRESS)
    assert r.detail == "the sender's postal address is not in the html body"


@pytest.mark.parametrize("inside", [False, True], ids=["around the link", "inside the link"])
@pytest.mark.parametrize("how", sorted(set(ALL_HIDE) - OLD_CAUGHT))
def test_hidden_unsubscribe_link_does_not_count(how, inside):
    reasons = check_content(SUBJECT, html_body(unsub=hidden_link(how, inside)), None, RULES,
                            recipient=TO, secret=SECRET)
    assert one(reasons, Code.MISSING_UNSUBSCRIBE).detail.startswith("no visible link to ")


@pytest.mark.parametrize("markup", [
    f'<p aria-hidden="true">Alpha Swarm Inc., {ADDR}<br><a href="{LINK}">Unsubscribe</a></p>',
    f'<div style="font-size:0"><p style="font-size:13px">Alpha Swarm Inc., {ADDR}</p><a href="{LINK}" '
    f'style="font-size:12px">Unsubscribe</a></div>',                                 # reset below a font-size:0 wrapper
    f'<div style="background:#111111;color:#ffffff">Alpha Swarm Inc., {ADDR} <a href="{LINK}">Unsubscribe</a></div>',
    f'<div style="color:#ffffff"><a href="{LINK}">Unsubscribe</a></div><p>{ADDR}</p>',  # a link keeps its colour
    f'<style>@media print {{ .x {{ color: #000 }} }}</style><p class="x">{ADDR}</p><a href="{LINK}">Unsubscribe</a>',
    f'<p style="color:#999;font-size:11px">{ADDR}</p><p><a href="{LINK}" style="color:#999">Unsubscribe</a></p>',
])
def test_visible_footer_styles_still_count(markup):
    body = f"<p>Hi Dana,</p><p>A short note.</p>{markup}"
    assert check_content(SUBJECT, body, None, RULES, recipient=TO, secret=SECRET) == []


# ------------------------------------------------------------------------------------------ deceptive subjects

@pytest.mark.parametrize("subject", [
    "Re：your team", "[External] Re: your team", "[EXT] RE: your team", "\u200bRe: your team", "\ufeffRE: notes",
    "SV: möte", "RV: propuesta", "RES: proposta", "ENC: proposta", "Antw: offerte", "Doorst: offerte",
    "Odp: oferta", "PD: oferta", "VS: tarjous", "VL: tarjous", "R: offerta", "I: offerta", "Re(2): follow up",
    "回复：合作", "转发：合作", "返信: ご提案", "Ответ: предложение", "R\u0435: your team", "[Ticket] RE: help",
    "Ｒｅ: your team", "R\u200be: your team", "\u2060Fw\u00ad: deck",
])
def test_reply_or_forward_prefix_on_first_touch_is_deceptive(subject):
    # (Re:, RE :, Fw:, Fwd:, AW:, WG:, TR:, Re[2]: were caught already: tests/unit/test_content.py, and the
    # property test below)
    r = one(check_content(subject, html_body(), None, RULES), Code.DECEPTIVE_SUBJECT)
    assert r.detail == f"first touch with a reply/forward prefix: {subject[:60]!r}"
    assert check_content(subject, html_body(), None, RULES, first_touch=False) == []


@pytest.mark.parametrize("subject", [
    "Regarding your team", "Review: Q3 hiring plan", "Results of the SDR survey", "RSVP: SDR roundtable",
    "Resources for SDR leaders", "Trends: SDR hiring", "I wanted to ask", "R&D hiring", "Iris from Alpha Swarm",
    "PDF: the SDR report", "Svelte or React?", "Encore: the webinar", "Vs. last year", "A note re: your team",
])
def test_ordinary_subjects_are_not_deceptive(subject):
    assert check_content(subject, html_body(), None, RULES) == []


# ------------------------------------------------------------------------------------------ postal address

@pytest.mark.parametrize("addr", [
    "548 Market Street, Ste. 100, San Francisco, California 94104, United States",
    "548 Market St., Ste 100, San Francisco, CA 94104, US",
    "548 Market Street #100, San Francisco, CA 94104, U.S.A.",
    "548 MARKET STREET, SUITE 100\nSAN FRANCISCO, CALIFORNIA 94104\nUNITED STATES OF AMERICA",
    "548 Market St, Suite 100, San Francisco, CA 94104-2201, USA",
])
def test_postal_address_with_common_abbreviations_counts(addr):
    assert check_content(SUBJECT, html_body(addr=f"<p>{htmllib.escape(addr)}</p>"), text_body(addr=addr),
                         RULES) == []


@pytest.mark.parametrize("addr", [
    "549 Market Street, Ste. 100, San Francisco, California 94104, United States",    # street number
    "548 Mission Street, Ste. 100, San Francisco, California 94104, United States",   # street name
    "548 Market Avenue, Ste. 100, San Francisco, California 94104, United States",    # street type
    "548 Market Street, Ste. 200, San Francisco, California 94104, United States",    # suite
    "548 Market Street, Ste. 100, San Francisco, California 94105, United States",    # ZIP
    "548 Market Street, Ste. 100, San Francisco, Nevada 94104, United States",        # state
    "548 Market Street, Ste. 100, San Francisco, California 94104",                   # no country
])
def test_a_different_postal_address_still_fails(addr):
    reasons = check_content(SUBJECT, html_body(addr=f"<p>{addr}</p>"), text_body(addr=addr), RULES)
    r = one(reasons, Code.MISSING_POSTAL_ADDRESS)
    assert r.detail == "the sender's postal address is not in the html and text body"


# ------------------------------------------------------------------------------------------ the recipient's token

OTHER = unsubscribe_url(BASE, "someone.else@northwind.example", SECRET)
FORGED = unsubscribe_url(BASE, TO, b"not-the-secret")
TOKEN_DETAIL = "does not carry this recipient's token"


@pytest.mark.parametrize("href", [OTHER, FORGED, f"{BASE}/bogus-token", f"{BASE}/", BASE,
                                  f"{BASE}/{LINK.rsplit('/', 1)[1]}x"])
def test_unsubscribe_link_with_another_or_a_bogus_token_is_refused(href):
    reasons = check_content(SUBJECT, html_body(unsub=f'<a href="{href}">Unsubscribe</a>'), text_body(link=href),
                            RULES, recipient=TO, secret=SECRET)
    r = one(reasons, Code.MISSING_UNSUBSCRIBE)
    assert r.detail == f"the unsubscribe link in the html and text body {TOKEN_DETAIL}"


def test_another_recipients_link_next_to_the_right_one_is_refused():
    unsub = f'<a href="{LINK}">Unsubscribe</a> <a href="{OTHER}">Unsubscribe a colleague</a>'
    r = one(check_content(SUBJECT, html_body(unsub=unsub), None, RULES, recipient=TO, secret=SECRET),
            Code.MISSING_UNSUBSCRIBE)
    assert TOKEN_DETAIL in r.detail


@pytest.mark.parametrize("href", [
    LINK, LINK.replace("https://alphaswarm.example", "HTTPS://AlphaSwarm.Example"), LINK + "/",
    f"{BASE}/{quote(LINK.rsplit('/', 1)[1], safe='')}", LINK.replace("/unsubscribe/", "/%75nsubscribe/"),
    LINK.replace(".example/", ".example:443/"), f"  {LINK}\n",
])
def test_own_token_link_counts_however_written(href):
    reasons = check_content(SUBJECT, html_body(unsub=f'<a href="{href}">Unsubscribe</a>'), None, RULES,
                            recipient="Dana@Northwind.example", secret=SECRET)
    assert reasons == []


def test_text_body_link_must_carry_the_token_too():
    r = one(check_content(SUBJECT, None, text_body(link=OTHER), RULES, recipient=TO, secret=SECRET),
            Code.MISSING_UNSUBSCRIBE)
    assert r.detail == f"the unsubscribe link in the text body {TOKEN_DETAIL}"
    assert check_content(SUBJECT, None, text_body(link=LINK + "."), RULES, recipient=TO, secret=SECRET) == []


def test_without_the_secret_any_link_to_the_base_counts():
    # the rule needs both the recipient and the secret; without them it is the URL-prefix check it always was
    assert check_content(SUBJECT, html_body(unsub=f'<a href="{OTHER}">Unsubscribe</a>'), None, RULES) == []
    assert check_content(SUBJECT, html_body(unsub=f'<a href="{OTHER}">Unsubscribe</a>'), None, RULES,
                         recipient=TO) == []


def _action(href: str):
    return parse_action({"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": "evasion-1", "to": TO,
                         "from": "sales@alphaswarm.example", "subject": SUBJECT,
                         "html": html_body(unsub=f'<a href="{href}">Unsubscribe</a>')})


def test_static_reasons_and_check_message_pass_the_recipient_and_secret():
    assert Code.MISSING_UNSUBSCRIBE not in {r.code for r in guardrails.static_reasons(_action(LINK), SETTINGS,
                                                                                      secret=SECRET)}
    for reasons in (guardrails.static_reasons(_action(OTHER), SETTINGS, first_touch=True, secret=SECRET),
                    guardrails.check_message(_action(OTHER), SETTINGS, None, secret=SECRET)):
        assert TOKEN_DETAIL in one(reasons, Code.MISSING_UNSUBSCRIBE).detail


# ------------------------------------------------------------------------------------------ properties

SPAM = [t for t in SETTINGS.spam_terms if t.strip()]
CLAIMS = [t for t in SETTINGS.forbidden_claims if t.strip()]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202c", "\u2066", "\ufe0f",
             "\u034f", "\u180e"]
# look-alikes from Unicode's confusables.txt (Cyrillic, Greek, Armenian), kept apart from the implementation's table
LOOKALIKE = {
    "a": "аα", "c": "сϲ", "d": "ԁ", "e": "еҽ", "h": "һհ", "i": "іι", "j": "ј", "n": "ո", "o": "оοօ", "p": "рρ",
    "q": "ԛ", "s": "ѕ", "u": "υս", "v": "νѵ", "w": "ԝ", "x": "х", "y": "уү",
    "A": "АΑ", "B": "ВΒ", "C": "СϹ", "E": "ЕΕ", "H": "НΗ", "I": "ІΙ", "J": "Ј", "K": "КΚ", "M": "МΜ", "N": "Ν",
    "O": "ОΟ", "P": "РΡ", "S": "Ѕ", "T": "ТΤ", "X": "ХΧ", "Y": "ҮΥ", "Z": "Ζ",
}
SPACES = [" ", "\u00a0", "\u2003", "\u3000", "\n", "  \t"]


def _fullwidth(c: str) -> str:
    return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c


def _math_bold(c: str) -> str:
    if "a" <= c <= "z":
        return chr(0x1D41A + ord(c) - ord("a"))
    if "A" <= c <= "Z":
        return chr(0x1D400 + ord(c) - ord("A"))
    return c


@st.composite
def disguised(draw, term: str) -> str:
    out = []
    for c in term:
        if c == " ":
            out.append(draw(st.sampled_from(SPACES)))
            continue
        c = draw(st.sampled_from([c.lower(), c.upper()])) if c.isalpha() else c
        how = draw(st.sampled_from(["keep", "lookalike", "fullwidth", "bold", "accent"]))
        if how == "lookalike" and c in LOOKALIKE:
            c = draw(st.sampled_from(LOOKALIKE[c]))
        elif how == "fullwidth":
            c = _fullwidth(c)
        elif how == "bold":
            c = _math_bold(c)
        elif how == "accent" and c.isalpha():
            c += draw(st.sampled_from(["\u0301", "\u0336", "\u0308"]))
        out.append(c)
        if draw(st.booleans()):
            out.append(draw(st.sampled_from(INVISIBLE)))
    word = "".join(out)
    mark = draw(st.sampled_from(["", "_", "__", "*", "**", "~~"]))
    return f"{mark}{word}{mark}"


@st.composite
def hidden_or_not(draw, term: str) -> tuple[str, str | None, str | None, str | None]:
    """(where, subject, html, text) with the disguised term in one place."""
    d = draw(disguised(term))
    where = draw(st.sampled_from(["subject", "text", "html"] + sorted(ALL_HIDE)))
    if where == "subject":
        return where, f"Hello. {d}. Thanks", html_body(), None
    if where == "text":
        return where, SUBJECT, None, text_body(f"Hello. {d}. Thanks")
    inner = f"Hello. {htmllib.escape(d, quote=False)}. Thanks"
    return where, SUBJECT, html_body(inner if where == "html" else hide(where, inner)), None


def _assert_found(term: str, case, code: Code):
    where, subject, html, text = case
    reasons = check_content(subject, html, text, RULES)
    r = one(reasons, code)
    want = " ".join(term.lower().split())
    assert f'"{want}"' in r.detail, (where, r.detail)
    if where in ALL_HIDE:
        assert "hidden text: " in r.detail and f'"{want}"' in r.detail.split("hidden text: ", 1)[1]


@settings(max_examples=400, **COMMON)
@given(st.sampled_from(SPAM).flatmap(lambda t: st.tuples(st.just(t), hidden_or_not(t))))
def test_property_disguised_spam_term_is_always_found(case):
    term, where = case
    _assert_found(term, where, Code.SPAM_CONTENT)


@settings(max_examples=200, **COMMON)
@given(st.sampled_from(CLAIMS).flatmap(lambda t: st.tuples(st.just(t), hidden_or_not(t))))
def test_property_disguised_forbidden_claim_is_always_found(case):
    term, where = case
    _assert_found(term, where, Code.FORBIDDEN_CLAIM)


VISIBLE_WRAPPERS = ["<div>{x}</div>", "<span>{x}</span>", "<table><tr><td>{x}</td></tr></table>", "<b>{x}</b>",
                    '<div style="color:#333333;font-size:12px">{x}</div>', "<p>{x}</p>", "<center>{x}</center>"]


@st.composite
def wrapped(draw, x: str) -> str:
    for w in draw(st.lists(st.sampled_from(VISIBLE_WRAPPERS), max_size=2)):
        x = w.replace("{x}", x)
    return x


@settings(max_examples=300, **COMMON)
@given(st.sampled_from(sorted(ALL_HIDE)), st.data())
def test_property_hidden_postal_address_never_counts(how, data):
    addr = data.draw(wrapped(hide(how, htmllib.escape(data.draw(st.sampled_from([
        ADDR, "548 Market Street, Suite 100, San Francisco, California 94104, United States"]))))))
    reasons = check_content(SUBJECT, html_body(addr=addr), None, RULES, recipient=TO, secret=SECRET)
    assert Code.MISSING_POSTAL_ADDRESS in {r.code for r in reasons}, (how, addr)


@settings(max_examples=300, **COMMON)
@given(st.sampled_from(sorted(ALL_HIDE)), st.booleans(), st.data())
def test_property_hidden_unsubscribe_link_never_counts(how, inside, data):
    unsub = data.draw(wrapped(hidden_link(how, inside)))
    reasons = check_content(SUBJECT, html_body(unsub=unsub), None, RULES, recipient=TO, secret=SECRET)
    assert Code.MISSING_UNSUBSCRIBE in {r.code for r in reasons}, (how, unsub)


LATIN_PREFIXES = ["Re", "Fw", "Fwd", "AW", "WG", "TR", "SV", "RV", "RES", "ENC", "Antw", "Doorst", "Odp", "PD",
                  "VS", "VL"]
TIGHT_PREFIXES = ["R", "I"]     # Italian: only with the colon right after
OTHER_PREFIXES = ["回复", "转发", "返信", "Ответ"]
TAGS = ["", "[External] ", "[EXT] ", "(EXT) ", "[Ticket #4411] ", "【外部】", "EXTERNAL: "]
CYRILLIC = {"e": "е", "E": "Е", "o": "о", "O": "О", "a": "а", "A": "А", "p": "р", "P": "Р", "c": "с", "T": "Т",
            "W": "Ԝ", "S": "Ѕ", "V": "Ѵ", "C": "С"}


@st.composite
def reply_prefix(draw) -> str:
    kind = draw(st.sampled_from(["latin", "tight", "other"]))
    word = draw(st.sampled_from({"latin": LATIN_PREFIXES, "tight": TIGHT_PREFIXES, "other": OTHER_PREFIXES}[kind]))
    letters = []
    for c in word:
        if c.isascii():
            c = draw(st.sampled_from([c.lower(), c.upper()]))
            if draw(st.integers(0, 3)) == 0:
                c = CYRILLIC.get(c, c)
            if draw(st.integers(0, 2)) == 0:
                c = _fullwidth(c)
        if draw(st.integers(0, 3)) == 0:
            letters.append(draw(st.sampled_from(INVISIBLE)))
        letters.append(c)
    word = "".join(letters)
    if kind == "latin":
        word += draw(st.sampled_from(["", "[2]", "(3)"])) + draw(st.sampled_from(["", " ", "  "]))
    return word + draw(st.sampled_from([":", "：", "\ufeff:"]))


@settings(max_examples=400, **COMMON)
@given(st.sampled_from(TAGS), st.lists(reply_prefix(), min_size=1, max_size=2), st.sampled_from(["", " ", "\u200b"]),
       st.sampled_from(["your team", "SDR hiring", "pricing"]))
def test_property_reply_and_forward_prefixes_are_deceptive_on_a_first_touch(tag, prefixes, lead, rest):
    subject = lead + tag + " ".join(prefixes) + " " + rest
    assert Code.DECEPTIVE_SUBJECT in {r.code for r in check_content(subject, html_body(), None, RULES)}, subject
    assert check_content(subject, html_body(), None, RULES, first_touch=False) == [], subject


LEAD = dict(email="pat@northwind.example", first_name="Pat", last_name="Lee", title="VP Sales",
            company="Northwind Cloud", industry="B2B SaaS", country="US", tier=1)
BARE = dict(email="someone@somewhere.example")


@pytest.mark.parametrize("tid", [t.id for t in PACK.templates])
@pytest.mark.parametrize("lead", [LEAD, BARE], ids=["full", "bare"])
def test_shipped_templates_still_pass_with_the_token_rule(tid, lead):
    t = PACK.get(tid)
    r = render(t, lead, SENDER, unsubscribe_url(BASE, lead["email"], SECRET))
    assert check_content(r.subject, r.html, r.text, RULES, first_touch=t.kind == "first_touch",
                         recipient=lead["email"], secret=SECRET) == []
    # and the same email for another recipient is refused: its link is not theirs
    other = check_content(r.subject, r.html, r.text, RULES, first_touch=t.kind == "first_touch",
                          recipient="not.them@elsewhere.example", secret=SECRET)
    assert codes(other) == {"MISSING_UNSUBSCRIBE"}


WORDS = [t for t in SPAM + CLAIMS if t.isalpha()]
TERMS = {t.lower() for t in SPAM + CLAIMS}


@settings(max_examples=300, **COMMON)
@given(st.sampled_from(WORDS), st.text("abcdefghijklmnopqrstuvwxyz", max_size=4),
       st.text("abcdefghijklmnopqrstuvwxyz", max_size=4), st.booleans())
def test_property_words_containing_a_term_are_not_flagged(term, before, after, upper):
    word = before + term + after
    if not (before or after) or word.lower() in TERMS:
        return
    word = word.upper() if upper else word
    for reasons in (check_content(SUBJECT, html_body(f"A {word} idea."), text_body(f"A {word} idea."), RULES,
                                  recipient=TO, secret=SECRET),
                    check_content(f"A {word} idea", None, text_body(), RULES)):
        assert reasons == [], (word, reasons)


@pytest.mark.parametrize("snippet", ["freedom to choose", "a carefree week", "freely available", "freebie",
                                     "re:Invent recap", "Hurrying along",
                                     "care\u200bfree", "ｆｒｅｅｄｏｍ"])
def test_ordinary_words_containing_spam_terms_pass(snippet):
    assert check_content(SUBJECT, html_body(snippet), text_body(snippet), RULES, recipient=TO, secret=SECRET) == []


# ------------------------------------------------------------------------------------------ the drafting path

def test_drafts_and_edited_drafts_are_checked_against_the_leads_own_token(app_factory):
    from engine.services.drafting import draft_for, save_draft
    from engine.services.shadow_emails import edit_draft
    from engine.adapters.models import Draft, Lead
    from tests.conftest import WORK_TIME

    app = app_factory()
    with app.store.write_plain() as s:
        lead = Lead(email="pat@northwind.example", first_name="Pat", company="Northwind Cloud", tier=1,
                    status="new")
        s.add(lead)
        s.flush()
        lead_id = lead.id
    result = draft_for({"email": "pat@northwind.example", "first_name": "Pat", "tier": 1}, ("cold", 1), PACK,
                       app.settings, app.secret)
    assert result.flags == []  # drafted with the lead's own link: checked with the token rule, clean
    saved = save_draft(app.store, lead_id, "cold", 1, result, WORK_TIME)
    own = unsubscribe_url(BASE, "pat@northwind.example", app.secret)
    other = unsubscribe_url(BASE, "someone.else@northwind.example", app.secret)
    assert own in result.text

    edit_draft(app, saved.draft.id, result.subject, result.text, "reviewer@alphaswarm.example", approve=False)
    with app.store.read() as s:
        assert s.get(Draft, saved.draft.id).flags == []
    from engine.services.approvals import EditRefused

    with pytest.raises(EditRefused) as refused:  # the gate would refuse it: the edit is refused, nothing saved
        edit_draft(app, saved.draft.id, result.subject, result.text.replace(own, other),
                   "reviewer@alphaswarm.example", approve=False)
    assert [f["code"] for f in refused.value.findings] == ["MISSING_UNSUBSCRIBE"]
    assert TOKEN_DETAIL in refused.value.findings[0]["detail"]
    with app.store.read() as s:
        d = s.get(Draft, saved.draft.id)
    assert d.flags == [] and own in d.text and other not in d.text


SOUP = ["<div>", "</div>", "<p>", "</p>", "<span style='display:none'>", "</span>", "<b>", "</b>", "<table><td>",
        "</table>", f"<a href='{LINK}'>", "</a>", "<style>.x{display:none} p:first-child{color:#fff}</style>",
        "<div class='x'>", "<!--", "-->", "<details>", "<summary>", "<font color=white>", "<br/>", "<div/>",
        "<template>", "</template>", "<head>", "<body bgcolor='#000' text='#fff'>", "free", ADDR, "&shy;", "\u200b",
        "<div style='color:rgb(nan,1,1);font-size:calc(1px - 9e999px);opacity:nan;transform:scale(nan)'>",
        "<![CDATA[x]]>", "<?pi x?>", "<a href='http://[::1'>", "<p style='margin:-1e999px'>", "<svg><rect/></svg>"]


@settings(max_examples=300, **COMMON)
@given(st.lists(st.one_of(st.sampled_from(SOUP), st.text(max_size=8)), max_size=40).map("".join))
def test_property_any_tag_soup_gets_an_answer(html):
    reasons = check_content(SUBJECT, html, html, RULES, recipient=TO, secret=SECRET)
    assert all(r.code in (Code.SPAM_CONTENT, Code.FORBIDDEN_CLAIM, Code.MISSING_UNSUBSCRIBE,
                          Code.MISSING_POSTAL_ADDRESS) for r in reasons)
