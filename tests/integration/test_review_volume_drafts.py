"""Shadow drafts: "Save edit and approve" never approves while a finding the page shows remains (issue 13)."""
from __future__ import annotations

import pytest

from engine.adapters.models import Draft
from engine.services.approvals import EditRefused
from engine.services.shadow_emails import draft_detail, edit_draft
from tests.integration.test_draft_review import draft, events, make_drafts

SENTENCE = "Northwind grew pipeline 300% with Acme last year."


@pytest.mark.parametrize("approve", [True, False])
def test_an_edit_that_keeps_a_flagged_llm_claim_is_refused(app_factory, approve):
    """The LLM's sentence states a figure the lead's facts do not support (flagged unsupported_claim, shown as a
    finding and marked in the text). An edit that leaves it in is refused naming it, nothing saved or approved;
    once the sentence is changed or removed, the edit goes through."""
    app = app_factory()
    [i] = make_drafts(app, 1)
    with app.store.write_plain() as s:
        d = s.get(Draft, i)
        d.text = d.text.replace("Best regards,", f"{SENTENCE}\n\nBest regards,")
        d.flags = [{"code": "unsupported_claim", "sentence": SENTENCE, "terms": ["grew", "300%", "Acme"],
                    "detail": "the LLM sentence states 'grew', '300%', 'Acme' which the lead facts do not support"}]
        s.add(d)
    before = draft(app, i)
    assert [f["code"] for f in draft_detail(app, i)["findings"]] == ["unsupported_claim"]
    with pytest.raises(EditRefused) as e:
        edit_draft(app, i, "A new subject", before.text, "console:alice", approve=approve)
    assert [f["code"] for f in e.value.findings] == ["unsupported_claim"] and "300%" in str(e.value)
    after = draft(app, i)
    assert (after.status, after.subject, after.text) == ("draft", before.subject, before.text)
    assert events(app, i) == []
    edit_draft(app, i, "A new subject", before.text.replace(SENTENCE, "Northwind is hiring SDRs."),
               "console:alice", approve=approve)
    after = draft(app, i)
    assert after.status == ("approved" if approve else "draft") and after.flags == []
