"""Blind review (ae, admin): one lead's facts at a time, the reviewer's tier and note, progress and undo.

The page only ever gets ``BlindItem`` facts from the engine: the AI's tier, score and reasons never reach it.
The session keeps item ids only (and the reviewer's own note while typing). Keyboard: 1, 2, 3 and D label the
lead, U undoes the last label (shortcuts are ignored while typing in the note).
"""
from __future__ import annotations

import streamlit as st

from console.runtime import actor, get_app, require_role, run_action
from console.widgets import stamp
from engine.services.blind_review import latest_set, next_item
from engine.services.blind_review import label as label_item
from engine.services.blind_review import undo as undo_label

require_role("ae", "admin")
app = get_app()

CHOICES = (("1", "Tier 1", "1"), ("2", "Tier 2", "2"), ("3", "Tier 3", "3"),
           ("disqualified", "Disqualified", "D"))
FIELDS = (("title", "Title"), ("company", "Company"), ("company_domain", "Company domain"),
          ("employee_count", "Employees"), ("industry", "Industry"), ("country", "Country"), ("region", "Region"),
          ("linkedin_url", "LinkedIn"), ("website_visits", "Website visits"))


def _label(item_id: int, value: str) -> None:
    """Button callback: labels the item that was on screen when the button was pressed (its id is bound at
    render time), whatever another reviewer did meanwhile."""
    note = (st.session_state.get("blind_note") or "").strip() or None
    ok, _ = run_action(label_item, app, item_id, value, actor(), note)
    if ok:
        st.session_state["blind_note"] = ""
        st.session_state["blind_saved"] = item_id


def _undo(set_id: int) -> None:
    ok, item_id = run_action(undo_label, app, set_id, actor())
    if ok:
        st.session_state["blind_undone"] = item_id or 0


st.title("Blind review")
st.caption("Tier each lead from its facts alone. The AI's tier stays hidden until the comparison.")

if "blind_undone" in st.session_state:
    if st.session_state.pop("blind_undone"):
        st.info("Your last label was undone: that lead is back in the queue.")
    else:
        st.info("Nothing to undo: you have not labelled a lead in this set yet.")
if st.session_state.pop("blind_saved", None):
    st.toast("Saved. Press U to undo.")

set_id = latest_set(app)
if set_id is None:
    st.info("There is no review set yet. An approver or ops person creates one with the command below "
            "(N leads, stratified by the AI's tier); then reload this page.")
    st.code("alpha compare generate 50", language="bash")
    st.stop()

item = next_item(app, set_id)
if item is None:
    st.success(f"Review set {set_id} is complete: every lead has a label. Thank you!")
    st.markdown("How the labels agree with the AI is on the **Comparison** page (approvers, ops and admins). "
                "A new set is made with `alpha compare generate N`.")
    st.button("Undo my last label", key="blind_undo", on_click=_undo, args=(set_id,), shortcut="U")
    st.stop()

done, total = item.labeled, item.total
st.progress(done / total if total else 0.0, text=f"Set {set_id}: {done} / {total} labelled")  # theme blue: neutral
stamp(what="Progress")

facts = item.facts
with st.container(border=True):
    name = " ".join(str(facts.get(k)) for k in ("first_name", "last_name") if facts.get(k)) or "(no name)"
    st.caption(f"Lead {done + 1} of {total}")
    st.text(name)
    cols = st.columns(3)
    for n, (field, title) in enumerate(FIELDS):
        with cols[n % 3]:
            st.caption(title)
            value = facts.get(field)
            st.text("-" if value in (None, "") else str(value))

st.text_input("Note (optional, saved with your label)", key="blind_note", max_chars=500,
              placeholder="why this tier, in a few words")
cols = st.columns(len(CHOICES) + 1)
for col, (value, title, key) in zip(cols, CHOICES):
    col.button(f"{title}", key=f"blind_{value}", on_click=_label, args=(item.item_id, value), shortcut=key,
               width="stretch",
               help=f"Label this lead {title.lower()} (key {key})")
cols[-1].button("Undo", key="blind_undo", on_click=_undo, args=(set_id,), shortcut="U", width="stretch",
                disabled=done == 0, help="Clear your last label in this set (key U)")
st.caption("Keys: 1, 2, 3 = tier, D = disqualified, U = undo.")
