"""Edited templates: ``load_pack`` refuses a bad edit naming the template, its file and the problem; rendering never
runs a sandbox escape.

Each example edits a copy of config/templates (a body file, or the inline subject or opening in pack.json):
unbalanced Jinja, Python internals (``{{ ''.__class__ }}``), calls, includes, loops, arithmetic that would hang or
exhaust the process at compile or render time, unsafe filters (``safe``, ``attr``, ``center(10**9)``), lead fields
the guidelines do not allow, the unsubscribe link or postal address removed or hidden (in a comment, in a branch
that never runs).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from engine.core.errors import ConfigError
from engine.rules.messaging import HTML_ENV, TEXT_ENV, RenderError, Template, load_pack, render
from tests.badinput.strategies import COMMON, NASTY, storable
from tests.conftest import CONFIG

PACK = json.loads((CONFIG / "templates" / "pack.json").read_text())
IDS = [t["id"] for t in PACK["templates"]]
BODIES = {t["id"]: (CONFIG / "templates" / t["body"]).read_text() for t in PACK["templates"]}
LINK = '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
ADDRESS = "{{ sender.postal_address }}"

# fragment -> what the refusal must say
STATIC = {
    "{{ ''.__class__ }}": "attribute '__class__'",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}": "attribute '__class__'",
    "{{ lead.__class__ }}": "attribute '__class__'",
    "{{ lead._values }}": "attribute '_values'",
    "{{ sender.__init__.__globals__ }}": "attribute '__init__'",
    "{{ lead.email | default('') }}": "lead field 'email'",
    "{{ lead['score'] | default('') }}": "lead field 'score'",
    "{{ lead.favourite_colour | default('blue') }}": "lead field 'favourite_colour'",
    "{{ sender.secret_key }}": "sender field 'secret_key'",
    "{{ config }}": "variable 'config'",
    "{{ request }}": "variable 'request'",
    "{{ range(10) }}": "function and method calls",
    "{{ lipsum() }}": "function and method calls",
    "{{ lead.first_name.upper() }}": "function and method calls",
    "{{ lead | attr('email') }}": "other than as lead.<field>",
    "{{ (lead.company | default('x')) | attr('__class__') }}": "filter 'attr'",
    "{{ lead.company | default('x') | safe }}": "filter 'safe'",
    "{{ lead.company | default('x') | center(999999999) }}": "filter 'center'",
    "{{ 'a' | indent(999999999, true) }}": "filter 'indent'",
    "{% autoescape false %}{{ lead.company | default('') }}{% endautoescape %}": "'autoescape' blocks",
    "{{ 9 ** 999999999 }}": "operator '**'",
    "{{ 'a' * 10000000000 }}": "operator '*'",
    "{{ '%999999999s' % 'a' }}": "operator '%'",
    "{% for a in 'abcdefghij' %}{% for b in 'abcdefghij' %}x{% endfor %}{% endfor %}": "'for' loops",
    "{% include 'pack.json' %}": "'include'",
    "{% import 'x.j2' as y %}": "'import'",
    "{% from 'x.j2' import y %}": "'from ... import'",
    "{% macro m() %}x{% endmacro %}": "macros",
    "{% call m() %}x{% endcall %}": "'call' blocks",
}
SYNTAX = ["{{ lead.first_name ", "{% if %}", "{% endfor %}", "{% if lead.company is defined %}", "{{ }}",
          "{{ lead.company | default('x' }}", "{# unclosed comment", "{{ lead..company }}", "}}{{",
          "{{ lead.company is nosuchtest }}"]
PROBE = {"{{ lead.first_name }}": "cannot render for a lead without optional fields",
         "{{ lead.company | default('x') | truncate('many') }}": "cannot render for a lead"}
# how the compliance footer can be lost, and what the refusal must say
HIDE = {
    "remove link": (lambda b: b.replace(LINK, ""), "never shows the unsubscribe link"),
    "remove address": (lambda b: b.replace(ADDRESS, ""), "never shows the sender's postal address"),
    "link in an HTML comment": (lambda b: b.replace(LINK, f"<!-- {LINK} -->"),
                                "does not visibly show the unsubscribe link"),
    "link in a dead branch": (lambda b: b.replace(LINK, "{% if false %}" + LINK + "{% endif %}"),
                              "does not visibly show the unsubscribe link"),
    "link only for some leads": (lambda b: b.replace(LINK,
                                                     "{% if lead.first_name is defined %}" + LINK + "{% endif %}"),
                                 ("does not visibly show the unsubscribe link", "when rendered for a lead without")),
    "address in a Jinja comment": (lambda b: b.replace(ADDRESS, "{# " + ADDRESS + " #}"),
                                   "never shows the sender's postal address"),
    "address in a script": (lambda b: b.replace(ADDRESS, "<script>" + ADDRESS + "</script>"),
                            "does not visibly show the sender's postal address"),
    "empty link text": (lambda b: b.replace(LINK, '<a href="{{ unsubscribe_url }}"></a>'),
                        "does not visibly show the unsubscribe link"),
    "address made literal text by a raw block": (lambda b: b.replace(ADDRESS, "{% raw %}" + ADDRESS + "{% endraw %}"),
                                                 "never shows the sender's postal address"),
}


@pytest.fixture(scope="module")
def cdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("badtemplates") / "config"
    shutil.copytree(CONFIG / "templates", d / "templates")
    return d


def _restore(cdir: Path, name: str = "pack.json") -> None:
    shutil.copyfile(CONFIG / "templates" / name, cdir / "templates" / name)


def _file(tid: str) -> str:
    return next(t["body"] for t in PACK["templates"] if t["id"] == tid)


def _problems_for(cdir: Path, tid: str) -> list[str]:
    """The problems load_pack reports, those of template ``tid``; [] when it loads."""
    try:
        load_pack(cdir)
    except ConfigError as e:
        assert e.problems
        for p in e.problems:
            assert str(cdir / "templates" / "pack.json") in p, p
        mine = [p for p in e.problems if f"template '{tid}'" in p]
        assert mine, f"no problem names template '{tid}': {e.problems}"
        return mine
    return []


def _slots(body: str) -> list[int]:
    """Places to insert a fragment without landing inside an existing tag: before each paragraph, and the end."""
    return [m.start() for m in re.finditer(r"<p>", body)] + [len(body)]


def _edit_body(cdir: Path, tid: str, body: str) -> None:
    t = next(t for t in PACK["templates"] if t["id"] == tid)
    (cdir / "templates" / t["body"]).write_text(body)


# ------------------------------------------------------------------------------------------ one edit, each kind

@pytest.mark.parametrize("fragment", sorted(STATIC) + sorted(PROBE))
def test_each_forbidden_fragment_is_refused_by_name(cdir, fragment):
    tid = "cold-first-t2"
    body = BODIES[tid]
    at = _slots(body)[1]
    _edit_body(cdir, tid, body[:at] + fragment + body[at:])
    try:
        probs = _problems_for(cdir, tid)
    finally:
        _restore(cdir, _file(tid))
    needle = STATIC.get(fragment) or PROBE[fragment]
    key = "templates[1].body'" if fragment in STATIC else "templates[1]'"  # the probe rendering: the template
    assert any(needle in p and "cold_first_t2.html.j2" in p and key in p for p in probs), probs


@pytest.mark.parametrize("fragment", SYNTAX)
def test_unbalanced_jinja_is_a_syntax_error_with_its_line(cdir, fragment):
    tid = "warm-follow-3"
    body = BODIES[tid]
    _edit_body(cdir, tid, body + "\n" + fragment)
    try:
        probs = _problems_for(cdir, tid)
    finally:
        _restore(cdir, _file(tid))
    assert any(re.search(r"template syntax error at line \d+", p) and "warm_follow_3.html.j2" in p
               for p in probs), probs


@pytest.mark.parametrize("how", sorted(HIDE))
def test_losing_the_unsubscribe_link_or_address_is_refused(cdir, how):
    tid = "ghost-first-t1"
    edit, needle = HIDE[how]
    body = edit(BODIES[tid])
    assert body != BODIES[tid]
    _edit_body(cdir, tid, body)
    try:
        probs = _problems_for(cdir, tid)
    finally:
        _restore(cdir, _file(tid))
    needles = (needle,) if isinstance(needle, str) else needle
    assert any(all(n in p for n in needles) for p in probs), probs


# ------------------------------------------------------------------------------------------ random combinations

PLAIN = [s for s in NASTY if storable(s) and not any(c in s for c in "{}%#")]  # text that is not Jinja


@st.composite
def template_edit(draw):
    tid = draw(st.sampled_from(IDS))
    body = BODIES[tid]
    inserted: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        frag = draw(st.one_of(st.sampled_from(sorted(STATIC)), st.sampled_from(SYNTAX), st.sampled_from(sorted(PROBE)),
                              st.sampled_from(PLAIN)))
        at = draw(st.sampled_from(_slots(body)))
        body = body[:at] + frag + body[at:]
        inserted.append(frag)
    hidden = draw(st.one_of(st.none(), st.sampled_from(sorted(HIDE))))
    if hidden:
        body = HIDE[hidden][0](body)
    return tid, body, inserted, hidden


@settings(max_examples=120, **COMMON)
@given(template_edit())
@example(("cold-first-t1", BODIES["cold-first-t1"] + "{{ 9 ** 999999999 }}", ["{{ 9 ** 999999999 }}"], None))
@example(("cold-first-t1", BODIES["cold-first-t1"] + "{{ 'x' | center(999999999) }}",
          ["{{ lead.company | default('x') | center(999999999) }}"], None))
def test_random_edits_are_refused_naming_template_and_problem(cdir, case):
    tid, body, inserted, hidden = case
    _edit_body(cdir, tid, body)
    try:
        probs = _problems_for(cdir, tid)
    finally:
        _restore(cdir, _file(tid))
    static = [f for f in inserted if f in STATIC]
    syntax = [f for f in inserted if f in SYNTAX]
    probe = [f for f in inserted if f in PROBE]
    text = "\n".join(probs)
    needle = HIDE[hidden][1] if hidden else ""
    needles = (needle,) if isinstance(needle, str) else needle
    # the checks run in order: syntax; the static checks (all reported at once); then the probe renderings
    if syntax:
        assert "template syntax error" in text or static, probs
    elif static or (hidden and needles[0].startswith("never shows")):
        for f in static:
            assert STATIC[f] in text, (f, probs)
        if hidden and needles[0].startswith("never shows"):
            assert all(n in text for n in needles), probs
    elif probe:
        assert "cannot render for a lead" in text, probs
    elif hidden:
        assert all(n in text for n in needles), probs
    else:  # plain text inserted between paragraphs: still a valid template
        assert probs == [], probs


@settings(max_examples=80, **COMMON)
@given(st.sampled_from(range(len(IDS))), st.sampled_from(["subject", "opening"]),
       st.sampled_from(sorted(STATIC) + SYNTAX))
def test_inline_subject_and_opening_edits_are_refused(cdir, i, part, fragment):
    data = json.loads(json.dumps(PACK))
    t = data["templates"][i]
    if part not in t or "subject_file" in t:
        part = "subject"
    t[part] = (t.get(part) or "x") + " " + fragment
    (cdir / "templates" / "pack.json").write_text(json.dumps(data))
    try:
        probs = _problems_for(cdir, t["id"])
    finally:
        _restore(cdir)
    needle = STATIC.get(fragment, "template syntax error")
    assert any(needle in p and f"templates[{i}].{part}" in p for p in probs), probs


# ------------------------------------------------------------------------------------------ the sandbox at render

ESCAPES = ["{{ ''.__class__.__mro__ }}", "{{ lead.__class__ }}", "{{ lead._values }}", "{{ lead.__getitem__ }}",
           "{{ sender._values }}", "{{ (lead.company | default('')).__class__.__base__ }}", "{{ 9 ** 999999999 }}",
           "{{ 'a' * 10000000000 }}", "{{ '%999999999s' % 'x' }}", "{{ unsubscribe_url.__len__ }}",
           "{{ lead.company | default('x') | truncate('many') }}"]


def _raw_template(src: str) -> Template:
    """A template that skipped load_pack's checks, as if the checks had a gap: only the sandbox stands."""
    return Template(id="raw", kind="first_touch", sequence="cold", tier=None, step=1, delay_days=0, version="1.0.0",
                    status="draft", body_file="raw.html.j2", subject_file=None,
                    allowed_fields=("first_name", "company"),
                    fields=frozenset(), uses_opening=False, _subject=TEXT_ENV.from_string("s"),
                    _html=HTML_ENV.from_string(src), _opening=None)


@pytest.mark.parametrize("src", ESCAPES)
def test_the_sandbox_refuses_escapes_at_render_with_the_template_id(src):
    try:
        t = _raw_template(src)
    except (TemplateSyntaxError, SecurityError) as e:  # refused even before rendering
        assert "9 **" not in str(e)
        return
    with pytest.raises(RenderError) as ei:
        render(t, {"first_name": "Pat", "company": "Acme"}, {"company_name": "S", "postal_address": "1 Main St"},
               "https://u.example/x")
    assert "template 'raw'" in str(ei.value)


@settings(max_examples=150, **COMMON)
@given(st.sampled_from(IDS), st.fixed_dictionaries(
    {f: st.one_of(st.sampled_from([s for s in NASTY if storable(s)]), st.text(max_size=30))
     for f in ("first_name", "last_name", "company", "title", "industry", "country")}))
def test_hostile_lead_values_render_as_escaped_text(tid, lead):
    """Lead values are data: markup is escaped, template syntax is shown, never evaluated."""
    out = render(_pack().get(tid), lead, {"company_name": "S", "postal_address": "1 Main St"}, "https://u.example/x")
    assert "<script" not in out.html and "<img" not in out.html
    assert "<class " not in out.html and "<built-in" not in out.html and "mro" not in out.html.replace(
        "__mro__ }}", "")  # "{{ ''.__class__.__mro__ }}" from a lead shows as that text
    assert "\x00" not in out.html and "\n" not in out.subject
    assert 'href="https://u.example/x"' in out.html


_PACK: list = []


def _pack():
    if not _PACK:
        _PACK.append(load_pack(CONFIG))
    return _PACK[0]
