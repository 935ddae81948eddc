"""Shadow drafts reviewed at volume on SQLite and PostgreSQL: an edit is re-checked with the gate's rules and
refused while findings remain (nothing saved, nothing approved); drafts approved or rejected many at once."""
from __future__ import annotations

import pytest
from sqlmodel import select

from engine.services.approvals import EditRefused
from engine.services.drafting import draft_for, save_draft
from engine.services.shadow_emails import decide_drafts, edit_draft
from engine.core.errors import InvalidRequest
from engine.rules.messaging import load_pack
from engine.adapters.models import AuditEntry, Draft, Lead
from tests.conftest import WORK_TIME


def make_drafts(app, n: int) -> list[int]:
    pack = load_pack(app.settings.config_dir)
    ids = []
    for i in range(n):
        with app.store.write_plain() as s:
            lead = Lead(email=f"pat{i}@northwind{i}.example", first_name="Pat", company="Northwind Cloud", tier=2,
                        status="new")
            s.add(lead)
            s.flush()
            lead_id = lead.id
        result = draft_for({"email": f"pat{i}@northwind{i}.example", "first_name": "Pat", "tier": 2,
                            "company": "Northwind Cloud"}, ("cold", 1), pack, app.settings, app.secret)
        ids.append(save_draft(app.store, lead_id, "cold", 1, result, WORK_TIME).draft.id)
    return ids


def draft(app, i) -> Draft:
    with app.store.read() as s:
        return s.get(Draft, i)


def events(app, i) -> list[str]:
    with app.store.read() as s:
        return [e.event for e in s.exec(select(AuditEntry).where(AuditEntry.ref == str(i),
                                                                 AuditEntry.event.like("draft.%"))).all()]


@pytest.mark.parametrize("approve", [True, False])
def test_edit_with_a_spam_term_or_forbidden_claim_is_refused_and_nothing_saved(app_factory, approve):
    """Seen: "Save edit and approve" approved a draft that now broke the content rules, with a green banner."""
    app = app_factory()
    [i] = make_drafts(app, 1)
    before = draft(app, i)
    body = before.text.replace("Best regards,", "This is 100% free with guaranteed results.\n\nBest regards,")
    assert body != before.text
    with pytest.raises(EditRefused) as e:
        edit_draft(app, i, "Act now: a quick question", body, "console:alice", "punchier", approve=approve)
    msg = str(e.value)
    for code, term in (("SPAM_CONTENT", "100% free"), ("SPAM_CONTENT", "Act now"),
                       ("FORBIDDEN_CLAIM", "guaranteed results")):
        assert code in msg and term.lower() in msg.lower()
    assert {f["code"] for f in e.value.findings} == {"SPAM_CONTENT", "FORBIDDEN_CLAIM"}
    after = draft(app, i)
    assert (after.status, after.subject, after.text, after.html) == ("draft", before.subject, before.text,
                                                                     before.html)
    assert events(app, i) == []
    # the same edit without the findings is saved (and approved when asked)
    clean = before.text.replace("Best regards,", "Happy to send a short overview.\n\nBest regards,")
    edit_draft(app, i, "A quick question", clean, "console:alice", approve=approve)
    assert draft(app, i).status == ("approved" if approve else "draft")
    assert events(app, i) == (["draft.edited", "draft.approved"] if approve else ["draft.edited"])


def test_decide_drafts_many_at_once(app_factory):
    app = app_factory()
    ids = make_drafts(app, 4)
    edit_draft(app, ids[3], draft(app, ids[3]).subject, draft(app, ids[3]).text, "bob")  # approved already
    with pytest.raises(InvalidRequest, match="reason"):
        decide_drafts(app, ids, "rejected", "console:alice", "  ")
    out = decide_drafts(app, [*ids, ids[0], 424242], "approved", "console:alice")
    assert [o["id"] for o in out] == [*ids, 424242]
    assert [o["ok"] for o in out] == [True, True, True, False, False]
    assert "already approved" in out[3]["error"] and "does not exist" in out[4]["error"]
    out = decide_drafts(app, ids[:2], "rejected", "console:alice", "wrong tone")
    assert all(o["ok"] and o["status"] == "rejected" for o in out)
    assert [draft(app, i).status for i in ids] == ["rejected", "rejected", "approved", "approved"]
    assert events(app, ids[0]) == ["draft.approved", "draft.rejected"]
