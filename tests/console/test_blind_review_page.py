"""Blind review page: the AE labels leads one at a time, undoes, and never sees what the AI thought.

The leak checks read every element the page rendered (its protobuf, dataframes as CSV) and the whole session
state. They are shown to be able to fail: a page fed an AI score, or a session holding one, trips them.
"""
from __future__ import annotations

import re

import pytest
from sqlmodel import select

from engine.adapters.models import Lead, ReviewItem
from engine.services.blind_review import generate
from tests.console.conftest import no_exception, text

PAGE = "pages/blind_review.py"
XSS = "<img src=x onerror=alert(1)>"
# AI-only values, each distinctive enough that finding it anywhere means it leaked.
SECRETS = {"score": (9731, 8642, 7553, 6464), "explain": "AI-EXPLAIN-7f3c", "dq": "AI-DQ-REASON-91b2"}


def leads(app) -> list[int]:
    """Four leads whose AI tier, score, ICP explanation and disqualification are known (and distinctive)."""
    rows = [
        dict(email="ana@xss.example", first_name="Ana", last_name="Ruiz", title="VP Sales", company=XSS,
             company_domain="xss.example", employee_count=120, industry="B2B SaaS", country="US", tier=1),
        dict(email="bo@two.example", first_name="Bo", last_name="Kim", title="Head of RevOps", company="Two Corp",
             employee_count=60, industry="Fintech", country="DE", tier=2),
        dict(email="cy@three.example", first_name="Cy", last_name="Ode", title="Sales Manager",
             company="Three GmbH", employee_count=25, industry="Retail", country="FR", tier=3),
        dict(email="di@dq.example", first_name="Di", last_name="Quinn", title="Intern", company="Agency Four",
             employee_count=5, industry="Marketing agency", country="UK", tier=None, disqualified_reason=SECRETS["dq"]),
    ]
    ids = []
    with app.store.write_plain() as s:
        for row, score in zip(rows, SECRETS["score"]):
            lead = Lead(status="new", score=score, route="warm",
                        icp={"score": score, "explain": f"{SECRETS['explain']} tier {row['tier']}"}, **row)
            s.add(lead)
            s.flush()
            ids.append(lead.id)
    return ids


def labels(app, set_id: int) -> list[ReviewItem]:
    with app.store.read() as s:
        return list(s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id,
                                                    ReviewItem.human_label.is_not(None))).all())


def rendered(at) -> str:
    """Everything the page sent to the browser, as text: every element's and block's protobuf (widget labels,
    values, help, options) plus dataframes as CSV (their protobuf holds Arrow bytes)."""
    out = []
    for root in (at.main, at.sidebar):
        for node in root:
            value = getattr(node, "value", None) if type(node).__name__ == "Dataframe" else None
            if value is not None:
                out.append(value.to_csv())
            if getattr(node, "proto", None) is not None:
                out.append(str(node.proto))
    return "\n".join(out)


def session_text(at) -> str:
    return "\n".join(f"{k}={v!r}" for k, v in at.session_state.items())


def assert_blind(at) -> None:
    """Nothing the AI derived is in the page or the session: scores, explanations, disqualification reasons,
    or the field names that would carry them."""
    for where, blob in (("page", rendered(at)), ("session", session_text(at))):
        for score in SECRETS["score"]:
            assert str(score) not in blob, f"AI score {score} leaked into the {where}"
        for secret in (SECRETS["explain"], SECRETS["dq"]):
            assert secret not in blob, f"AI reasoning leaked into the {where}"
        for field in ("icp_score", "ai_label", "disqualified_reason", "'score'", "'tier'", "'icp'"):
            assert field not in blob, f"{field} leaked into the {where}"


COMPANIES = (XSS, "Two Corp", "Three GmbH", "Agency Four")


def shown_company(at) -> str | None:
    return next((t.value for t in at.text if t.value in COMPANIES), None)


# ------------------------------------------------------------------------------------------ roles, empty state

def test_roles_and_the_empty_state(ctx):
    at = no_exception(ctx.page(PAGE, None))
    assert "not signed in" in text(at.error) and not at.button
    for username in ("ae", "admin"):  # no set yet: what to run to get one
        at = no_exception(ctx.page(PAGE, username))
        assert "There is no review set yet" in text(at.info)
        assert "alpha compare generate" in text(at.code)
        assert not at.button and not at.error
    leads(ctx.app)
    generate(ctx.app, 4, seed=1)
    for username in ("approver", "ops"):
        at = no_exception(ctx.page(PAGE, username))
        assert "Access refused: this page needs the role ae or admin" in text(at.error)
        assert not at.button and not at.text
        assert_blind(at)
    for username in ("ae", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert not at.error and at.button(key="blind_1") and shown_company(at) in COMPANIES


# ------------------------------------------------------------------------------------------ labelling

def test_ae_labels_three_leads_then_undoes_the_last(ctx):
    leads(ctx.app)
    set_id = generate(ctx.app, 4, seed=1)["set_id"]
    at = no_exception(ctx.page(PAGE, "ae"))
    assert at.get("progress")[0].proto.text == f"Set {set_id}: 0 / 4 labelled"
    assert at.button(key="blind_undo").disabled is True
    seen = []
    for value, note in (("1", "strong fit"), ("3", ""), ("disqualified", "agency")):
        seen.append(shown_company(at))
        if note:
            at.text_input(key="blind_note").input(note)
        at.button(key=f"blind_{value}").click()
        at = no_exception(at.run())
        assert at.text_input(key="blind_note").value == ""  # the note is cleared for the next lead
        assert_blind(at)
    assert len(set(seen)) == 3  # a new lead each time
    done = sorted(labels(ctx.app, set_id), key=lambda i: i.labeled_at)
    assert [(i.human_label, i.note, i.labeled_by) for i in done] == [
        ("1", "strong fit", "console:ae"), ("3", None, "console:ae"), ("disqualified", "agency", "console:ae")]
    assert at.get("progress")[0].proto.text == f"Set {set_id}: 3 / 4 labelled"

    at.button(key="blind_undo").click()
    at = no_exception(at.run())
    assert "Your last label was undone" in text(at.info)
    left = labels(ctx.app, set_id)
    assert sorted(i.human_label for i in left) == ["1", "3"]
    assert shown_company(at) == seen[-1]  # the undone lead is back on screen
    assert at.get("progress")[0].proto.text == f"Set {set_id}: 2 / 4 labelled"


def test_the_set_completes_and_points_to_the_comparison(ctx):
    leads(ctx.app)
    set_id = generate(ctx.app, 4, seed=2)["set_id"]
    at = ctx.page(PAGE, "admin")
    for value in ("2", "2", "1", "3"):
        at.button(key=f"blind_{value}").click()
        at = no_exception(at.run())
    assert f"Review set {set_id} is complete" in text(at.success)
    assert "Comparison" in text(at.markdown)
    assert len(labels(ctx.app, set_id)) == 4
    assert_blind(at)
    at.button(key="blind_undo").click()  # undo still works from the completed state
    at = no_exception(at.run())
    assert len(labels(ctx.app, set_id)) == 3 and at.button(key="blind_1")


def test_nothing_to_undo_and_a_refused_label_are_messages(ctx):
    from engine.services.blind_review import label

    leads(ctx.app)
    set_id = generate(ctx.app, 4, seed=1)["set_id"]
    with ctx.app.store.read() as s:
        first = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).first()
    label(ctx.app, first.id, "2", "console:someone-else")  # another reviewer's label is not ours to undo
    at = no_exception(ctx.page(PAGE, "ae"))
    at.button(key="blind_undo").click()
    at = no_exception(at.run())
    assert "Nothing to undo" in text(at.info)
    assert len(labels(ctx.app, set_id)) == 1

    with ctx.app.store.write_plain() as s:  # the items vanish between render and click
        for it in s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).all():
            s.delete(it)
    at.button(key="blind_2").click()
    at = no_exception(at.run())
    assert "does not exist" in text(at.error)


# ------------------------------------------------------------------------------------------ blindness

def test_untrusted_company_renders_as_text(ctx):
    leads(ctx.app)
    generate(ctx.app, 4, seed=1)
    at = no_exception(ctx.page(PAGE, "ae"))
    for _ in range(4):
        if shown_company(at) == XSS:
            break
        at.button(key="blind_2").click()
        at = no_exception(at.run())
    assert XSS in [t.value for t in at.text]  # shown, as plain text
    for node in at.main:
        proto = getattr(node, "proto", None)
        if proto is not None and "onerror" in str(proto):
            assert type(node).__name__ == "Text", f"untrusted text in a {type(node).__name__}"
    assert not any(m.proto.allow_html for m in at.markdown if "onerror" in m.value)
    assert not at.get("html")


def test_no_ai_tier_score_or_reason_in_the_page_or_the_session(ctx):
    leads(ctx.app)
    set_id = generate(ctx.app, 4, seed=3)["set_id"]
    at = no_exception(ctx.page(PAGE, "ae"))
    for value in ("3", "1", "2", "disqualified"):
        assert_blind(at)
        at.button(key=f"blind_{value}").click()
        at = no_exception(at.run())
    assert_blind(at)
    assert len(labels(ctx.app, set_id)) == 4
    # only ids and the reviewer's own input live in the session
    assert set(at.session_state.keys()) <= {"authentication_status", "username", "name", "blind_note",
                                            "blind_1", "blind_2", "blind_3", "blind_disqualified", "blind_undo",
                                            "blind_saved", "blind_undone",
                                            "alpha_session_token", "_page_roles",  # the login's token, the page's roles
                                            "alpha_session_checked_at"}  # when the session was last re-checked


def test_the_page_is_the_same_whatever_the_ai_thought(ctx):
    """Change only what the AI derived (tier, score, ICP, route, the item's AI label): the page is identical."""
    ids = leads(ctx.app)
    set_id = generate(ctx.app, 1, seed=1)["set_id"]  # round-robin from tier 1: the first lead
    before = rendered(no_exception(ctx.page(PAGE, "ae")))
    with ctx.app.store.write_plain() as s:
        lead = s.get(Lead, ids[0])
        lead.tier, lead.score, lead.route = 3, 12, "cold"
        lead.icp = {"score": 12, "explain": "weak fit"}
        lead.disqualified_reason = "too small"
        s.add(lead)
        item = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).one()
        item.ai_label = "disqualified"
        s.add(item)
    after = rendered(no_exception(ctx.page(PAGE, "ae")))
    # the "Progress as of <time> (<age>)" stamp is the one thing allowed to differ: the clock moved between renders
    before, after = (re.sub(r"as of [^)]*\)", "as of <time>)", x) for x in (before, after))
    assert XSS in before and before == after


def test_the_leak_checks_can_fail(ctx, monkeypatch):
    """Feed the page an AI score (as if the engine leaked it) and put one in the session: both are caught."""
    import engine.services.blind_review as review

    leads(ctx.app)
    generate(ctx.app, 4, seed=1)
    real = review.next_item

    def leaky(app, set_id=None):
        item = real(app, set_id)
        with app.store.read() as s:
            lead = s.get(Lead, s.get(ReviewItem, item.item_id).lead_id)
        return type(item)(item.item_id, item.set_id, item.position, item.total, item.labeled,
                          {**item.facts, "title": f"{item.facts['title']} (score {lead.score})"})

    monkeypatch.setattr(review, "next_item", leaky)
    at = no_exception(ctx.page(PAGE, "ae"))
    with pytest.raises(AssertionError, match="AI score .* leaked into the page"):
        assert_blind(at)
    monkeypatch.setattr(review, "next_item", real)
    at = no_exception(ctx.page(PAGE, "ae"))
    assert_blind(at)
    at.session_state["cached_item"] = {"ai_label": "1"}
    with pytest.raises(AssertionError, match="leaked into the session"):
        assert_blind(at)
