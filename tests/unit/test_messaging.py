"""The messaging pack (engine/rules/messaging.py, config/templates/): strict loading, compliant shipped templates,
sandboxed
and escaped rendering, provenance of the facts used, template selection."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from engine.core.errors import ConfigError
from engine.rules.guardrails.content import ContentRules, check_content
from engine.rules.messaging import (PERSONALIZABLE, RenderError, _Record, html_to_plain, lead_facts, load_pack, render,
                              sandbox)
from engine.rules.unsubscribe import unsubscribe_url, verify_token
from tests.conftest import CONFIG

PACK = load_pack(CONFIG)
SECRET = b"test-secret"
LEAD = dict(email="pat@northwind.example", first_name="Pat", last_name="Lee", title="VP Sales",
            company="Northwind Cloud", industry="B2B SaaS", country="US", tier=1, score=91,
            linkedin_url="https://linkedin.example/in/pat", status="new")
BARE = dict(email="someone@somewhere.example")  # nothing to personalise with
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def sender(settings):
    return settings.production.sender


@pytest.fixture
def unsub(sender):
    return unsubscribe_url(sender.unsubscribe_base_url, LEAD["email"], SECRET)


@pytest.fixture
def rules(settings):
    return ContentRules.from_settings(settings)


# ------------------------------------------------------------------------------------------ shipped pack

def test_shipped_pack_shape():
    assert PACK.version == "1.0.0"
    assert set(PACK.sequences) == {"cold", "warm", "ghost"}
    assert PACK.routing.warm_window_days == 30 and PACK.routing.ghost_after_days == 45
    assert set(PACK.guidelines.llm_fields) <= set(PACK.guidelines.template_fields) <= set(PERSONALIZABLE)
    for seq in ("cold", "warm", "ghost"):
        for tier in (1, 2, 3):
            t = PACK.template_for(seq, tier, 1, approved_only=True)
            assert t is not None and t.kind == "first_touch" and t.tier == tier and t.uses_opening
        follow = [t for t in PACK.templates if t.sequence == seq and t.kind == "follow_up"]
        assert len({t.step for t in follow}) >= 2
        for t in follow:
            assert t.delay_days == PACK.sequence(seq).get(t.step).delay_days >= 1
    assert len({t.id for t in PACK.templates}) == len(PACK.templates) == 15


@pytest.mark.parametrize("tid", [t.id for t in PACK.templates])
@pytest.mark.parametrize("who", ["full", "bare"])
def test_every_shipped_template_renders_and_passes_the_content_rules(tid, who, sender, rules, settings):
    t = PACK.get(tid)
    lead = LEAD if who == "full" else BARE
    url = unsubscribe_url(sender.unsubscribe_base_url, lead["email"], SECRET)
    r = render(t, lead, sender, url)
    assert check_content(r.subject, r.html, r.text, rules, first_touch=t.kind == "first_touch") == []
    # the visible link and the postal address, in both bodies
    assert f'<a href="{url}">Unsubscribe</a>' in r.html
    assert f"Unsubscribe ({url})" in r.text
    for body in (r.html, r.text):
        assert sender.postal_address in body
    assert verify_token(url.rsplit("/", 1)[1], SECRET) == lead["email"]
    # plain text: no tags, no template syntax left, no "None"
    for part in (r.subject, r.text):
        assert "<" not in part and "{{" not in part and "None" not in part
    assert r.subject and not r.subject.lower().startswith(("re:", "fwd:"))
    assert set(r.facts_used) <= set(PACK.guidelines.template_fields)
    if who == "bare":
        assert r.facts_used == {} and "Hi there," in r.html


def test_content_rules_would_catch_a_spammy_template(sender, unsub, rules):
    # the check the shipped templates pass is not vacuous
    r = render(PACK.get("cold-first-t1"), LEAD, sender, unsub, opening="Act now for a free trial!")
    codes = {x.code.value for x in check_content(r.subject, r.html, r.text, rules)}
    assert codes == {"SPAM_CONTENT"}


# ------------------------------------------------------------------------------------------ escaping and sandbox

@pytest.mark.parametrize("field", ["company", "first_name", "title", "industry"])
def test_lead_values_cannot_inject_markup(field, sender, unsub):
    t = PACK.get("cold-first-t1")
    r = render(t, {**LEAD, field: XSS}, sender, unsub)
    assert "<img" not in r.html and "onerror=alert(1)>" not in r.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.html
    assert r.facts_used[field] == XSS


def test_llm_opening_is_escaped_too(sender, unsub):
    r = render(PACK.get("warm-first-t2"), LEAD, sender, unsub, opening='<script>alert("x")</script> Hello')
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html


def test_lead_values_are_data_not_templates(sender, unsub):
    r = render(PACK.get("cold-first-t1"), {**LEAD, "company": "{{ 7*7 }}{% if true %}x{% endif %}"}, sender, unsub)
    assert "{{ 7*7 }}" in r.html and "49" not in r.html


def test_subject_is_one_line_of_plain_text(sender, unsub):
    r = render(PACK.get("cold-first-t1"), {**LEAD, "company": "Acme & Co\r\nBcc: victim@example.com"}, sender, unsub)
    assert "\r" not in r.subject and "\n" not in r.subject
    assert r.subject == "Acme & Co Bcc: victim@example.com and governed outbound"  # no HTML escaping in a subject


@pytest.mark.parametrize("src", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lead.__class__ }}",
    "{{ lead._values }}",
    "{{ lead.__getitem__ }}",
])
def test_sandbox_blocks_python_internals(src):
    with pytest.raises(SecurityError):
        sandbox().from_string(src).render(lead=_Record({"first_name": "Pat"}, {}))


def test_sandbox_cannot_reach_files():
    with pytest.raises(Exception) as e:
        sandbox().from_string("{% include '/etc/passwd' %}").render()
    assert "passwd" in str(e.value) or "loader" in str(e.value).lower()


def test_context_holds_only_allowed_fields():
    facts = lead_facts(LEAD, PACK.guidelines.template_fields)
    assert set(facts) <= set(PACK.guidelines.template_fields)
    assert "email" not in facts and "score" not in facts and "linkedin_url" not in facts
    # a template that reaches for more gets nothing (the static check refuses it at load first)
    rec = _Record(facts, {})
    with pytest.raises(UndefinedError):
        sandbox().from_string("{{ lead.email }}").render(lead=rec)


def test_lead_facts_cleans_values():
    f = lead_facts({"first_name": "  Pat \n\t Lee ", "company": "", "title": None, "industry": "x" * 500,
                    "employee_count": 120}, PERSONALIZABLE)
    assert f["first_name"] == "Pat Lee" and "company" not in f and "title" not in f
    assert len(f["industry"]) == 200 and f["employee_count"] == 120


# ------------------------------------------------------------------------------------------ provenance

def test_facts_used_records_exactly_what_the_rendering_read(sender, unsub):
    t = PACK.get("cold-first-t1")  # opening reads company and industry; body first_name, title, company
    assert render(t, LEAD, sender, unsub).facts_used == {
        "company": "Northwind Cloud", "first_name": "Pat", "industry": "B2B SaaS", "title": "VP Sales"}
    # an LLM opening replaces the template's: industry is no longer read
    r = render(t, LEAD, sender, unsub, opening="A sentence.")
    assert r.facts_used == {"company": "Northwind Cloud", "first_name": "Pat", "title": "VP Sales"}
    assert r.opening == "A sentence." and "<p>A sentence.</p>" in r.html
    # a missing value is not a fact used
    no_title = {k: v for k, v in LEAD.items() if k != "title"}
    assert "title" not in render(t, no_title, sender, unsub).facts_used
    # fields the guidelines allow but no template reads are never recorded
    assert "country" not in render(t, LEAD, sender, unsub).facts_used


def test_lead_may_be_an_object(sender, unsub):
    from engine.adapters.models import Lead

    r = render(PACK.get("cold-first-t3"), Lead(**{k: v for k, v in LEAD.items()}), sender, unsub)
    assert r.facts_used == {"company": "Northwind Cloud", "first_name": "Pat"}


def test_render_requires_an_unsubscribe_url(sender):
    with pytest.raises(RenderError, match="unsubscribe"):
        render(PACK.get("cold-first-t1"), LEAD, sender, "")


def test_html_to_plain():
    html = '<p>Hi <b>Pat</b>,</p>\n<p>Line one<br>\nline two &amp; more</p><p><a href="https://x.example/u">Unsubscribe</a></p>'
    assert html_to_plain(html) == "Hi Pat,\n\nLine one\nline two & more\n\nUnsubscribe (https://x.example/u)\n"


# ------------------------------------------------------------------------------------------ template selection

def test_template_for_prefers_the_exact_tier_then_any_tier():
    assert PACK.template_for("warm", 2, 1).id == "warm-first-t2"
    assert PACK.template_for("warm", 2, 2).id == "warm-follow-2"  # tier null serves every tier
    assert PACK.template_for("cold", None, 1) is None              # an unscored lead gets no first touch
    assert PACK.template_for("cold", None, 2).id == "cold-follow-2"
    assert PACK.template_for("cold", 1, 4) is None                 # past the end of the sequence
    assert PACK.template_for("nope", 1, 1) is None


def test_approved_only_filtering(tmp_path):
    def edit(data):
        t = next(x for x in data["templates"] if x["id"] == "cold-first-t1")
        data["templates"].append({**t, "id": "cold-first-t1-v11", "version": "1.1.0", "status": "draft",
                                  "subject": "A new subject for {{ lead.company | default('you') }}"})
        # a slot held by a draft only
        t2 = next(x for x in data["templates"] if x["id"] == "ghost-follow-3")
        t2["status"] = "draft"
    pack = load_pack(pack_dir(tmp_path, edit))
    assert pack.template_for("cold", 1, 1, approved_only=True).id == "cold-first-t1"
    assert pack.template_for("cold", 1, 1, approved_only=False).id == "cold-first-t1-v11"
    assert pack.template_for("ghost", 2, 3, approved_only=True) is None
    assert pack.template_for("ghost", 2, 3, approved_only=False).id == "ghost-follow-3"


# ------------------------------------------------------------------------------------------ load errors

def pack_dir(tmp_path: Path, edit=None, files: dict[str, str | None] | None = None) -> Path:
    """A config dir whose templates/ is a copy of the shipped one, with pack.json edited and files replaced."""
    cdir = tmp_path / "cfg"
    if cdir.exists():
        shutil.rmtree(cdir)
    shutil.copytree(CONFIG / "templates", cdir / "templates")
    path = cdir / "templates" / "pack.json"
    if edit:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data, indent=2))
    for name, text in (files or {}).items():
        f = cdir / "templates" / name
        if text is None:
            f.unlink()
        else:
            f.write_text(text)
    return cdir


def problems(cdir: Path) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_pack(cdir)
    assert ei.value.exit_code == 2
    for p in ei.value.problems:
        assert p in str(ei.value)
    return ei.value.problems


def only(probs: list[str], *needles: str) -> str:
    hits = [p for p in probs if all(n in p for n in needles)]
    assert len(hits) == 1, probs
    return hits[0]


def tpl(data, tid):
    return next(t for t in data["templates"] if t["id"] == tid)


def test_bad_status_names_file_key_value_and_allowed(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: d["templates"][0].update(status="final"))
    p = only(problems(cdir), "templates[0].status")
    assert str(cdir / "templates" / "pack.json") in p
    assert '"final"' in p and "'draft'" in p and "'approved'" in p


def test_unknown_field_in_guidelines(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: d["personalization"]["template_fields"].append("email"))
    p = only(problems(cdir), "personalization.template_fields[6]")
    assert "pack.json" in p and '"email"' in p and "'first_name'" in p and "'company'" in p


def test_template_using_a_field_the_guidelines_do_not_allow(tmp_path):
    body = (CONFIG / "templates" / "cold_first_t2.html.j2").read_text()
    cdir = pack_dir(tmp_path, files={"cold_first_t2.html.j2": body.replace("</p>", " {{ lead.email }}</p>", 1)})
    p = only(problems(cdir), "template 'cold-first-t2'")
    assert "cold_first_t2.html.j2" in p and "templates[1].body" in p
    assert "lead field 'email'" in p and "do not allow" in p


def test_removing_a_field_from_the_guidelines_refuses_the_templates_that_use_it(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: (d["personalization"]["template_fields"].remove("title"),
                                         d["personalization"]["llm_fields"].remove("title")))
    probs = problems(cdir)
    refused = {p.split("template '")[1].split("'")[0] for p in probs}
    assert refused == {"cold-first-t1", "warm-first-t1", "ghost-first-t1"}
    assert all("lead field 'title'" in p for p in probs)


def test_llm_fields_must_be_template_fields(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: d["personalization"]["template_fields"].remove("industry"))
    p = only(problems(cdir), "personalization")
    assert "industry" in p and "template_fields" in p


def test_missing_template_file(tmp_path):
    cdir = pack_dir(tmp_path, files={"warm_follow_3.html.j2": None})
    p = only(problems(cdir), "templates[9].body")
    assert '"warm_follow_3.html.j2"' in p and "is missing" in p and str(cdir / "templates") in p


def test_missing_or_broken_pack_json(tmp_path):
    cdir = pack_dir(tmp_path)
    (cdir / "templates" / "pack.json").write_text("{ not json")
    assert "not valid JSON at line 1" in only(problems(cdir), "pack.json")
    (cdir / "templates" / "pack.json").unlink()
    assert "file is missing" in only(problems(cdir), "pack.json")


def test_unknown_key_gets_a_suggestion(tmp_path):
    def edit(d):
        d["templates"][0]["subjet"] = d["templates"][0].pop("subject")
    probs = problems(pack_dir(tmp_path, edit))
    assert "did you mean 'subject'?" in only(probs, "templates[0].subjet")


@pytest.mark.parametrize("change, needle", [
    ({"version": "1.0"}, "templates[0].version"),
    ({"tier": 4}, "templates[0].tier"),
    ({"sequence": "lukewarm"}, "templates[0].sequence"),
    ({"kind": "follow_up"}, "step 1 of sequence 'cold' is a first_touch"),
    ({"step": 9}, "sequence 'cold' has steps 1..3"),
    ({"body": "../production.json"}, "must be a file name inside"),
    ({"subject_file": "s.txt"}, "exactly one of 'subject'"),
    ({"subject": None}, "exactly one of 'subject'"),
    ({"id": "Bad Id"}, "templates[0].id"),
])
def test_template_entry_errors(tmp_path, change, needle):
    cdir = pack_dir(tmp_path, lambda d: d["templates"][0].update(change))
    only(problems(cdir), needle)


def test_follow_up_delay_must_match_its_sequence(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: tpl(d, "cold-follow-2").update(delay_days=4))
    p = only(problems(cdir), "templates[3].delay_days")
    assert "= 4" in p and "waits 3 days before step 2" in p


def test_duplicate_id_and_slot(tmp_path):
    def edit(d):
        d["templates"].append(dict(tpl(d, "cold-follow-2")))
        d["templates"].append({**tpl(d, "cold-follow-3"), "id": "cold-follow-3b"})
    probs = problems(pack_dir(tmp_path, edit))
    assert "already used by templates[3]" in only(probs, "templates[15].id")
    assert "already is the approved template for sequence 'cold', tier None, step 3" in only(probs, "templates[16].id")


def test_every_slot_needs_a_template(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: d["templates"].remove(tpl(d, "warm-first-t2")))
    p = only(problems(cdir), "no template")
    assert "sequence 'warm' step 1 and tier 2" in p


@pytest.mark.parametrize("seq_change, needle", [
    ({"steps": [{"step": 1, "kind": "follow_up", "delay_days": 0}]}, "step 1 must be the first_touch"),
    ({"steps": [{"step": 1, "kind": "first_touch", "delay_days": 0},
                {"step": 3, "kind": "follow_up", "delay_days": 2}]},
     "numbered 1..2"),
    ({"steps": [{"step": 1, "kind": "first_touch", "delay_days": 0},
                {"step": 2, "kind": "follow_up", "delay_days": 0}]},
     "delay_days of at least 1"),
])
def test_sequence_errors(tmp_path, seq_change, needle):
    cdir = pack_dir(tmp_path, lambda d: d["sequences"]["ghost"].update(seq_change))
    assert "sequences.ghost" in only(problems(cdir), needle)


def test_routing_errors(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: d["routing"].update(ghost_after_days=10))
    assert "must be at least warm_window_days" in only(problems(cdir), "routing")
    cdir = pack_dir(tmp_path, lambda d: d["routing"].update(warm_window_days="30"))
    assert '"30"' in only(problems(cdir), "routing.warm_window_days")  # strict: no coercion


BODY = (CONFIG / "templates" / "ghost_follow_2.html.j2").read_text()


@pytest.mark.parametrize("replace, add, needle", [
    ('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "", "never shows the unsubscribe link"),
    ("{{ sender.postal_address }}", "", "never shows the sender's postal address"),
    (None, "{{ ''.__class__.__mro__ }}", "attribute '__class__'"),
    (None, "{{ lead.first_name.upper() }}", "function and method calls"),
    (None, "{% include 'x.html' %}", "'include'"),
    (None, "{% for k in lead %}{{ k }}{% endfor %}", "other than as lead.<field>"),
    (None, "{{ lead | attr('email') }}", "other than as lead.<field>"),
    (None, "{{ lead['score'] }}", "lead field 'score'"),
    (None, "{{ sender.from_addresses }}", "sender field 'from_addresses'"),
    (None, "{{ config }}", "variable 'config'"),
    (None, "{{ lead.first_name ", "syntax error"),
    (None, "{{ opening }}", "needs an 'opening'"),
])
def test_body_checks(tmp_path, replace, add, needle):
    body = BODY.replace(replace, "") if replace else BODY.replace("</p>", f"{add}</p>", 1)
    cdir = pack_dir(tmp_path, files={"ghost_follow_2.html.j2": body})
    p = only(problems(cdir), needle)
    assert "template 'ghost-follow-2'" in p and "pack.json" in p


def test_subject_and_opening_are_checked_too(tmp_path):
    cdir = pack_dir(tmp_path, lambda d: (d["templates"][0].update(subject="Hi {{ lead.email }}"),
                                         d["templates"][1].update(opening="{{ lead.score }} points")))
    probs = problems(cdir)
    assert "templates[0].subject" in only(probs, "lead field 'email'")
    assert "templates[1].opening" in only(probs, "lead field 'score'")


def test_subject_file(tmp_path):
    def edit(d):
        t = tpl(d, "cold-follow-3")
        del t["subject"]
        t["subject_file"] = "cold_follow_3.subject.txt"
    cdir = pack_dir(tmp_path, edit,
                    files={"cold_follow_3.subject.txt": "Closing the loop, {{ lead.first_name | default('there') }}\n"})
    pack = load_pack(cdir)
    t = pack.get("cold-follow-3")
    r = render(t, {"first_name": "Pat"}, {"company_name": "A", "postal_address": "1 Main St"}, "https://u.example/x")
    assert r.subject == "Closing the loop, Pat"


def test_all_problems_are_listed_at_once(tmp_path):
    def edit(d):
        d["templates"][0]["status"] = "final"
        d["templates"][2]["tier"] = 7
        d["routing"]["ghost_after_days"] = 1
    probs = problems(pack_dir(tmp_path, edit))
    assert len(probs) == 3


def test_a_template_must_render_for_a_lead_without_optional_fields(tmp_path):
    body = BODY.replace("{{ lead.company | default(\"your company\") }} owns", "{{ lead.company }} owns")
    assert body != BODY
    p = only(problems(pack_dir(tmp_path, files={"ghost_follow_2.html.j2": body})), "template 'ghost-follow-2'")
    assert "templates[13]" in p and "cannot render for a lead without optional fields" in p and "'company'" in p
    assert 'default(\"...\")' in p


# ------------------------------------------------------------------------------------------ "Inc.."

@pytest.mark.parametrize("tid", [t.id for t in PACK.templates])
def test_a_company_ending_in_a_full_stop_gets_one_full_stop(tid, sender):
    """Seen: "Inc.." in drafts: "Acme Inc." inserted before a template's own "."."""
    lead = {**LEAD, "company": "Acme & Sons Inc."}
    url = unsubscribe_url(sender.unsubscribe_base_url, lead["email"], SECRET)
    r = render(PACK.get(tid), lead, sender, url)
    for part in (r.subject, r.html, r.text, r.opening or ""):
        assert "Inc.." not in part and "Inc.&amp;" not in part, part
    if "company" in r.facts_used:
        assert "Acme &amp; Sons Inc." in r.html and "Acme & Sons Inc." in r.text


def test_one_stop_keeps_ellipses_and_other_text():
    from engine.rules.messaging import one_stop

    assert one_stop("at Acme Inc.. Then", ["Acme Inc."]) == "at Acme Inc. Then"
    assert one_stop("Acme Inc... and so on", ["Acme Inc."]) == "Acme Inc... and so on"  # an ellipsis stays
    assert one_stop("Globex.. ok", ["Globex"]) == "Globex.. ok"  # not a value ending in a stop: untouched
    assert one_stop("<p>at O&#39;Neil Co..</p>", ["O'Neil Co."], escaped=True) == "<p>at O&#39;Neil Co.</p>"
