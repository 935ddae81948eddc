"""Approvals (approver, admin): the queue of gated sends and hot-lead escalations, most urgent first.

SLA countdowns and breach markers refresh themselves; filters and pages are applied in SQL by the engine.
Open an item for its detail (where the message goes, the message as text, the lead); approve, edit then have
someone else approve, or reject with a reason. Select several to bulk-approve them behind a confirmation.
The engine enforces four-eyes and the roster's groups: a refusal is shown with its reason, never bypassed here.
"""
from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from console.runtime import actor, get_app, require_role, run_action
from engine.approvals import ACTION_TYPES
from engine.messaging import html_to_plain

require_role("approver", "admin")
app = get_app()

PAGE_SIZE = 50
REPLY_CLASS = re.compile(r"^Reply from \S+ \((interested|wrong_person)\b")
KINDS = {"Sends and hot leads": None, "Sends": "send", "Hot leads": "hot_lead"}

st.title("Approvals")
st.caption("Gated sends wait here for a person; hot leads (a reply or an ICP-fit visit) wait here to be taken. "
           "An approved send executes at the worker's next pass, after every check runs again.")



def _first_page() -> None:
    st.session_state["appr_page"] = 1


f1, f2, f3, f4 = st.columns([1.4, 1.4, 1, 1])
kind = KINDS[f1.selectbox("Show", list(KINDS), key="appr_kind", on_change=_first_page)]
atype = f2.selectbox("Action type", ["all", *ACTION_TYPES], key="appr_type", on_change=_first_page)
breached = f3.toggle("SLA breached only", key="appr_breached", on_change=_first_page)
status = f4.selectbox("Status", ["pending", "approved", "rejected", "expired", "cancelled"], key="appr_status",
                      on_change=_first_page, help="cancelled: the lead replied or opted out before the send was "
                                                  "decided (the engine cancels its queued steps)")


def sla_text(r: dict) -> str:
    left = r["sla_minutes_left"]
    if left is None:
        return ""
    if r["status"] != "pending":
        return ""
    if left < 0:
        return f"BREACHED {-left:.0f} min ago" + (f" (escalated to {r['escalated_to']})" if r["escalated_to"] else "")
    return f"{int(left // 60)} h {int(left % 60)} min left" if left >= 60 else f"{left:.0f} min left"


def reply_class(r: dict) -> str:
    """A hot lead raised by a reply names the reply's class in its title: "Reply from x (interested)"."""
    if r["kind"] != "hot_lead":
        return ""
    m = REPLY_CLASS.search((r["summary"] or "").split("\n")[0])
    return m.group(1).replace("_", " ") if m else ""


def fetch(page_no: int) -> dict:
    return app.approvals.queue(status=status, kind=kind, action_type=None if atype == "all" else atype,
                               breached_only=breached, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)


@st.dialog("Approve the selected items?", dismissible=False)
def confirm_bulk(ids: list[int]) -> None:
    st.markdown(f"Approve **{len(ids)}** item(s): {', '.join(map(str, ids))}. Each is checked on its own "
                "(four-eyes, roster); every approved send runs all the gateway checks again before it goes out.")
    c1, c2 = st.columns(2)
    if c1.button(f"Approve {len(ids)}", type="primary", key="bulk_confirm"):
        done, refused = [], []
        for i in ids:
            ok, _ = run_action(app.approvals.approve, i, actor())
            (done if ok else refused).append(i)
        st.session_state["flash"] = (f"Approved {len(done)}: {', '.join(map(str, done)) or 'none'}."
                                     + (f" Refused: {', '.join(map(str, refused))} (reasons above)." if refused else ""))
        st.session_state.pop("appr_bulk", None)
        st.session_state.pop("appr_bulk_ids", None)
        if not refused:
            st.rerun()
    if c2.button("Cancel", key="bulk_cancel"):
        st.session_state.pop("appr_bulk", None)
        st.rerun()


def detail(item: dict) -> None:
    st.subheader(f"{'Hot lead' if item['kind'] == 'hot_lead' else 'Send'} #{item['id']} · {item['action_type']}")
    d1, d2 = st.columns(2)
    with d1:
        if item["kind"] == "send":
            st.markdown("**Where it goes**")
            st.text(f"To:        {item['to']}\nFrom:      {item['from']}\n"
                    f"Scheduled: {item['scheduled_for'] or 'as soon as approved'}\n"
                    f"Recipient timezone: {item['timezone'] or 'unknown (the lead has none)'}")
        st.markdown("**Lead**")
        st.text(f"{item['lead_email'] or '-'}\n{item['lead_title'] or ''}"
                f"{(' at ' + item['company']) if item['company'] else ''}")
    with d2:
        st.markdown("**Request**")
        st.text(f"Requested by {item['requested_by']} at {item['requested_at']}\nSLA due {item['sla_due_at']} "
                f"({sla_text(item) or item['status']})\nExpires {item['expires_at']}\nRisk: {item['risk']}"
                + (f"\nEdited by {item['edited_by']}" if item["edited_by"] else "")
                + (f"\nDecided by {item['decided_by']}" if item["decided_by"] else "")
                + (f"\nReason: {item['reason']}" if item["reason"] else ""))
    if item["kind"] == "send":
        st.markdown("**Subject**")
        st.text(item["subject"] or "")
        st.markdown("**Message** (as text; links shown as addresses)")
        st.text(item["text"] or html_to_plain(item["html"] or ""))
    else:
        st.markdown("**What happened**")
        st.text(item["summary"] or "")
    if item["status"] != "pending":
        st.info(f"This item is {item['status']}: nothing more to decide.")
        return
    me = actor()
    a1, a2 = st.columns(2)
    with a1:
        if st.button("Take this lead" if item["kind"] == "hot_lead" else "Approve", type="primary",
                     key=f"approve_{item['id']}"):
            ok, _ = run_action(app.approvals.approve, item["id"], me)
            if ok:
                st.session_state["flash"] = f"{'Taken' if item['kind'] == 'hot_lead' else 'Approved'}: #{item['id']}."
                st.rerun()
    with a2:
        reason = st.text_input("Reason (required to reject)", key=f"reason_{item['id']}")
        if st.button("Dismiss" if item["kind"] == "hot_lead" else "Reject", key=f"reject_{item['id']}"):
            if not reason.strip():
                st.error("A reason is required to reject: it is recorded and tells the team why.")
            else:
                ok, _ = run_action(app.approvals.reject, item["id"], me, reason.strip())
                if ok:
                    st.session_state["flash"] = f"Rejected #{item['id']}."
                    st.rerun()
    if item["kind"] == "send":
        with st.expander("Edit before approval (someone else must then approve)"):
            subject = st.text_input("Subject", value=item["subject"] or "", key=f"edit_subject_{item['id']}")
            html = st.text_area("HTML source (keep the unsubscribe link and postal address: the content rules run "
                                "again at send time)", value=item["html"] or "", height=220,
                                key=f"edit_html_{item['id']}")
            if st.button("Save edit", key=f"edit_{item['id']}"):
                ok, _ = run_action(app.approvals.edit, item["id"], me, subject=subject, html=html)
                if ok:
                    st.session_state["flash"] = f"Edited #{item['id']}: another approver must approve it now."
                    st.rerun()


@st.fragment(run_every=10)
def queue() -> None:
    """The whole queue view refreshes itself every 10 s, so two approvers see the same truth."""
    page_no = int(st.session_state.get("appr_page", 1))
    q = fetch(page_no)
    total, rows = q["total"], q["rows"]
    if st.session_state.get("flash"):
        st.success(st.session_state.pop("flash"))
    if not rows:
        if status == "pending" and not breached and kind is None and atype == "all":
            st.success("Nothing is waiting for approval. New requests appear here as the gateway or the webhooks "
                       "raise them (`alpha approvals list` shows the same queue).")
        else:
            st.info("No items match these filters.")
        return
    by_id = {r["id"]: r for r in rows}
    m1, m2, m3 = st.columns(3)
    m1.metric("Items", total)
    m2.metric("SLA breached (this page)", sum(1 for r in rows if r["breached"] and r["status"] == "pending"))
    m3.metric("Checked at", f"{q['now']:%H:%M:%S} UTC")
    st.dataframe(pd.DataFrame([{
        "id": r["id"], "kind": "HOT LEAD" if r["kind"] == "hot_lead" else "send",
        "reply class": reply_class(r),
        "SLA": ("🔴 " if r["breached"] and r["status"] == "pending" else "") + sla_text(r),
        "type": r["action_type"], "to / lead": r["to"] or r["lead_email"] or "",
        "subject / what": r["subject"] or (r["summary"] or "").split("\n")[0][:120],
        "company": r["company"] or "", "requested by": r["requested_by"], "risk": r["risk"],
    } for r in rows]), hide_index=True, width="stretch")
    pages = max(1, -(-total // PAGE_SIZE))
    p1, p2, p3 = st.columns([1, 1, 4])
    if p1.button("Previous page", disabled=page_no <= 1, key="appr_prev"):
        st.session_state["appr_page"] = page_no - 1
        st.rerun(scope="fragment")
    if p2.button("Next page", disabled=page_no >= pages, key="appr_next"):
        st.session_state["appr_page"] = page_no + 1
        st.rerun(scope="fragment")
    p3.caption(f"Page {page_no} of {pages} · {PAGE_SIZE} per page · refreshed every 10 s")

    pending_ids = [r["id"] for r in rows if r["status"] == "pending"]
    if len(pending_ids) > 1:
        b1, b2 = st.columns([4, 1])
        chosen = b1.multiselect("Select items to approve together", pending_ids, key="appr_bulk_ids")
        if b2.button(f"Bulk approve ({len(chosen)})", disabled=len(chosen) < 2, key="appr_bulk_open"):
            st.session_state["appr_bulk"] = list(chosen)
        if st.session_state.get("appr_bulk"):
            confirm_bulk(st.session_state["appr_bulk"])

    st.divider()
    open_id = st.selectbox("Open item", list(by_id), key="appr_open",
                           format_func=lambda i: f"#{i} · {by_id[i]['action_type']} · "
                                                 f"{by_id[i]['to'] or by_id[i]['lead_email'] or ''} · {sla_text(by_id[i])}")
    if open_id in by_id:
        detail(by_id[open_id])


queue()
