"""Approvals (approver, admin): the queue of gated sends and hot-lead escalations, built for a day's volume.

Filter (status, kind, action type, text in the recipient/company/subject, tier, age or SLA), tick rows in the
table (or select a whole page, or everything the filter shows), then approve or reject them together behind one
confirmation that lists exactly what it acts on. The focused item (the one selected row, or the first) shows the
email as it will go out (the HTML rendered without scripts, the text as plain text) beside the gate's findings and
the lead's facts. Keyboard: A approve, X reject, J / K next / previous item, E edit.
The engine enforces four-eyes and the roster's groups item by item: a refusal is shown with its reason, never
bypassed here. An edit is re-checked with the gate's own rules and refused while any finding remains.
"""
from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from console.runtime import actor, get_app, md_escape, require_role, run_action
from console.widgets import age, email_html, local_time, step_buttons
from engine.services.approvals import ACTION_TYPES, EditRefused
from engine.core.errors import AlphaError
from engine.rules.messaging import html_to_plain

require_role("approver", "admin")
app = get_app()

PAGE_SIZE = 50
TABLE = "appr_table"
REPLY_CLASS = re.compile(r"^Reply from \S+ \((interested|wrong_person)\b")
KINDS = {"Sends and hot leads": None, "Sends": "send", "Hot leads": "hot_lead"}
TIERS = {"any tier": None, "tier 1": 1, "tier 2": 2, "tier 3": 3}
AGES = {  # label -> queue() arguments
    "any age": {}, "SLA breached": {"breached_only": True}, "SLA due within 1 h": {"due_within_minutes": 60},
    "waiting over 1 h": {"older_than_minutes": 60}, "waiting over 1 day": {"older_than_minutes": 1440},
}
SHORTCUTS = "Keyboard: **A** approve, **X** reject (with the reason typed), **J** / **K** next / previous item, " \
            "**E** edit. Shortcuts do nothing while you type in a field."

st.title("Approvals")
st.caption("Gated sends wait here for a person; hot leads (a reply or an ICP-fit visit) wait here to be taken. "
           "An approved send executes at the worker's next pass, after every check runs again.")


# ------------------------------------------------------------------------------------------ state

def _sel() -> list[int]:
    return list(st.session_state.get("appr_sel", []))


def _set_sel(ids) -> None:
    st.session_state["appr_sel"] = list(dict.fromkeys(int(i) for i in ids))
    st.session_state.pop(TABLE, None)  # the table's ticks are rebuilt from the selection


def _filters_changed() -> None:
    st.session_state["appr_page"] = 1
    st.session_state.pop("appr_open", None)


def _page_changed() -> None:
    st.session_state.pop(TABLE, None)
    st.session_state.pop("appr_open", None)


f1, f2, f3, f4, f5, f6 = st.columns([1, 1.2, 1.2, 1.6, 0.9, 1.2])
status = f1.selectbox("Status", ["pending", "approved", "rejected", "expired", "cancelled"], key="appr_status",
                      on_change=_filters_changed, help="cancelled: the lead replied or opted out before the send "
                                                       "was decided (the engine cancels its queued steps)")
kind = KINDS[f2.selectbox("Show", list(KINDS), key="appr_kind", on_change=_filters_changed)]
atype = f3.selectbox("Action type", ["all", *ACTION_TYPES], key="appr_type", on_change=_filters_changed)
search = f4.text_input("Recipient, company or subject", key="appr_search", on_change=_filters_changed,
                       placeholder="e.g. acme.io or Acme")
tier = TIERS[f5.selectbox("Tier", list(TIERS), key="appr_tier", on_change=_filters_changed)]
age_filter = AGES[f6.selectbox("Age / SLA", list(AGES), key="appr_age", on_change=_filters_changed)]
FILTERS = dict(status=status, kind=kind, action_type=None if atype == "all" else atype, search=search or None,
               tier=tier, **age_filter)


def sla_text(r: dict) -> str:
    left = r["sla_minutes_left"]
    if left is None or r["status"] != "pending":
        return ""
    if left < 0:
        return f"BREACHED {-left:.0f} min ago" + (f" (escalated to {r['escalated_to']})" if r["escalated_to"] else "")
    return f"{int(left // 60)} h {int(left % 60)} min left" if left >= 60 else f"{left:.0f} min left"


def reply_class(r: dict) -> str:
    """A hot lead raised by a reply names the reply's class in its title: "Reply from x (interested)"."""
    if r["kind"] != "hot_lead":
        return r.get("reply_class") or ""
    m = REPLY_CLASS.search((r["summary"] or "").split("\n")[0])
    return m.group(1).replace("_", " ") if m else (r.get("reply_class") or "")


def what(r: dict) -> str:
    return r["subject"] or (r["summary"] or "").split("\n")[0][:120]


def verb(r: dict, yes: bool = True) -> str:
    if r["kind"] == "hot_lead":
        return "Take" if yes else "Dismiss"
    return "Approve" if yes else "Reject"


def outcome_summary(done_word: str, out: list[dict]) -> str:
    ok = [o["id"] for o in out if o["ok"]]
    bad = [o for o in out if not o["ok"]]
    text = f"{done_word} {len(ok)}" + (f" (#{', #'.join(map(str, ok))})" if ok else "")
    if bad:
        text += f", refused {len(bad)}: " + "; ".join(f"#{o['id']}: {o['error']}" for o in bad)
    return text + "."


# ------------------------------------------------------------------------------------------ bulk dialog

def bulk_snapshot(action: str, ids: list[int]) -> tuple:
    """What the confirmation lists, read once when it opens: its lines and each item's version. The decision acts
    on exactly these items as listed (an item changed since is refused by the engine, naming why)."""
    items = {r["id"]: r for r in app.approvals.queue(status=status, only_ids=ids, limit=len(ids))["rows"]}
    lines, seen = [], {}
    for i in ids:
        r = items.get(i)
        lead = (r["to"] or r["lead_email"] or "") if r else ""
        lines.append(f"#{i:<6} {'hot lead' if r and r['kind'] == 'hot_lead' else 'send':8} {lead[:48]:48} "
                     + (what(r)[:90] if r else "(no longer in this view)"))
        if r:
            seen[i] = r["version"]
    return action, list(ids), lines, seen


@st.dialog("Confirm the bulk decision", width="large", dismissible=False)
def confirm_bulk(action: str, ids: list[int], lines: list[str], seen: dict) -> None:
    word = "Approve" if action == "approve" else "Reject"
    st.markdown(f"**{word} these {len(ids)} item(s)?** Each is decided on its own (four-eyes and the roster are "
                "checked per item, and an item changed since this list was made is refused); every approved send "
                "runs all the gateway checks again before it goes out.")
    with st.container(height=min(360, 60 + 22 * len(ids)), border=True, key="bulk_items"):
        st.text("\n".join(lines))
    reason = ""
    if action == "reject":
        reason = st.text_area("Reason (required, recorded for each item)", key="bulk_reason")
    c1, c2 = st.columns(2)
    if c1.button(f"{word} {len(ids)} item(s)", type="primary", key="bulk_confirm"):
        if action == "reject" and not (reason or "").strip():
            st.error("A reason is required to reject: it is recorded and tells the team why.")
            return
        if action == "approve":
            out = app.approvals.approve_many(ids, actor(), seen=seen)
        else:
            ok, out = run_action(app.approvals.reject_many, ids, actor(), reason.strip())
            if not ok:
                return
        st.session_state["appr_flash"] = ("success" if all(o["ok"] for o in out) else "warning",
                                          outcome_summary("Approved" if action == "approve" else "Rejected", out))
        st.session_state.pop("appr_bulk", None)
        _set_sel([])
        st.rerun()
    if c2.button("Cancel", key="bulk_cancel"):
        st.session_state.pop("appr_bulk", None)
        st.rerun()


# ------------------------------------------------------------------------------------------ the queue

page_no = int(st.session_state.get("appr_page", 1))
q = app.approvals.queue(**FILTERS, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
pages = max(1, -(-q["total"] // PAGE_SIZE))
if page_no > pages:
    st.session_state["appr_page"] = page_no = pages
    q = app.approvals.queue(**FILTERS, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
rows = q["rows"]
by_id = {r["id"]: r for r in rows}
shown = [r["id"] for r in rows]

# the selection is a list of ids (the source of truth); the table's ticks are positions in what it showed last
ticks = (st.session_state.get(TABLE) or {}).get("selection", {}).get("rows") if st.session_state.get(TABLE) else None
before = st.session_state.get("appr_shown", [])
sel = _sel()
if ticks is not None and st.session_state.get("appr_ticks_seen") != list(ticks):
    ticked = [before[i] for i in ticks if 0 <= i < len(before)]
    sel = [i for i in sel if i not in before] + ticked
    if len(ticked) == 1:
        st.session_state["appr_open"] = ticked[0]  # one ticked row: that is the item in focus
matching = set(q["ids"])
sel = [i for i in q["ids"] if i in set(sel)] if sel else []  # only what the filter shows, in queue order
positions = [n for n, i in enumerate(shown) if i in set(sel)]
st.session_state[TABLE] = {"selection": {"rows": positions, "columns": [], "cells": []}}
st.session_state["appr_ticks_seen"] = positions
st.session_state["appr_shown"] = shown
st.session_state["appr_sel"] = sel

if flash := st.session_state.pop("appr_flash", None):
    (st.success if flash[0] == "success" else st.warning)(md_escape(flash[1]))

if not rows:
    if status == "pending" and not any(v for k, v in FILTERS.items() if k != "status"):
        st.success("Nothing is waiting for approval. New requests appear here as the gateway or the webhooks "
                   "raise them (`alpha approvals list` shows the same queue).")
    else:
        st.info("No items match these filters.")
    st.stop()

m1, m2, m3 = st.columns(3)
m1.metric("Items matching", q["total"])
m2.metric("SLA breached (this page)", sum(1 for r in rows if r["breached"] and r["status"] == "pending"))
m3.metric("Selected", len(sel))
st.caption(f"Shown as of {local_time(q['now'], with_seconds=True)} ({age(q['now'])}); Refresh reads the queue again.")

st.dataframe(pd.DataFrame([{
    "id": r["id"], "kind": "HOT LEAD" if r["kind"] == "hot_lead" else "send",
    "lead": r["to"] or r["lead_email"] or "", "company": r["company"] or "",
    "subject / what": what(r), "tier": r["tier"], "findings": len(r.get("findings") or []),
    "reply class": reply_class(r), "type": r["action_type"], "requested by": r["requested_by"],
    "waiting": age(r["requested_at"], q["now"]).removesuffix(" ago"),
    "SLA due": local_time(r["sla_due_at"]), "SLA": sla_text(r),
} for r in rows]), hide_index=True, width="stretch", key=TABLE, on_select="rerun", selection_mode="multi-row",
    column_config={"id": st.column_config.NumberColumn(format="%d", width="small"),
                   "kind": st.column_config.TextColumn(width="small"),
                   "lead": st.column_config.TextColumn(width="medium"),
                   "company": st.column_config.TextColumn(width="medium"),
                   "tier": st.column_config.NumberColumn(format="%d", width="small"),
                   "findings": st.column_config.NumberColumn(
                       help="What the gate's content rules find in the message as it stands (0: nothing)")})

pending_page = [i for i in shown if by_id[i]["status"] == "pending"]
pending_all = q["ids"] if status == "pending" else []
s1, s2, s3, s4, s5 = st.columns([1.3, 1.3, 0.9, 1.4, 1.2])
s1.button(f"Select all on this page ({len(pending_page)})", key="appr_sel_page", disabled=not pending_page,
          on_click=lambda: _set_sel([*(_sel()), *pending_page]), width="stretch")
s2.button(f"Select all {len(pending_all)} shown", key="appr_sel_all", disabled=not pending_all,
          on_click=lambda: _set_sel(pending_all), width="stretch",
          help="Every item the filters match, on every page")
s3.button("Clear", key="appr_sel_clear", disabled=not sel, on_click=lambda: _set_sel([]), width="stretch")
s4.selectbox(f"Page (of {pages}, {PAGE_SIZE} per page)", list(range(1, pages + 1)), key="appr_page",
             on_change=_page_changed, label_visibility="collapsed",
             format_func=lambda p: f"Page {p} of {pages} ({PAGE_SIZE} per page)")
s5.button("Refresh", key="appr_refresh", icon=":material/refresh:", width="stretch")

if status == "pending":
    b1, b2, b3 = st.columns([1, 1, 2])
    if b1.button(f"Approve {len(sel)} selected", key="appr_bulk_approve", type="primary", disabled=not sel,
                 width="stretch"):
        st.session_state["appr_bulk"] = bulk_snapshot("approve", list(sel))
    if b2.button(f"Reject {len(sel)} selected", key="appr_bulk_reject", disabled=not sel, width="stretch"):
        st.session_state["appr_bulk"] = bulk_snapshot("reject", list(sel))
    b3.caption(f"{len(sel)} selected" + (f" ({len([i for i in sel if i not in by_id])} on other pages)"
                                         if any(i not in by_id for i in sel) else "")
               + ". Tick rows in the table, or use the select buttons.")
    if len(st.session_state.get("appr_bulk") or ()) == 4:
        confirm_bulk(*st.session_state["appr_bulk"])


# ------------------------------------------------------------------------------------------ the item in focus

focus_choices = shown
if st.session_state.get("appr_goto") in focus_choices:
    st.session_state["appr_open"] = st.session_state.pop("appr_goto")
if st.session_state.get("appr_open") not in focus_choices:
    first_sel = next((i for i in sel if i in by_id), None)
    st.session_state["appr_open"] = first_sel if first_sel is not None else shown[0]


st.divider()
n1, n2, n3 = st.columns([4, 1, 1])
open_id = n1.selectbox("Item in focus", focus_choices, key="appr_open",
                       format_func=lambda i: f"#{i} · {by_id[i]['action_type']} · "
                                             f"{by_id[i]['to'] or by_id[i]['lead_email'] or ''} · {sla_text(by_id[i])}")
step_buttons(n2, n3, "appr_open", shown, "appr")
st.caption(SHORTCUTS)


def email_panel(d: dict) -> None:
    st.markdown("**The email as it will go out**")
    st.text(f"Subject:   {d['subject'] or ''}\nTo:        {d['to']}\nFrom:      {d['from']}\n"
            f"Scheduled: {local_time(d['scheduled_for']) or 'as soon as approved'}")
    if d["html"]:
        st.caption("Rendered: its text and layout only (no script, style sheet, positioning or remote image; "
                   "links shown with their address, never clickable)")
        with st.container(border=True, height=320):
            st.html(email_html(d["html"]))
    st.caption("Plain text, exactly as a reader gets it (links as addresses, never clickable here)")
    st.text(d["text"] or html_to_plain(d["html"] or ""))


def facts_panel(d: dict) -> None:
    lead = d.get("lead") or {}
    st.markdown("**Lead**")
    st.text(f"{lead.get('email') or d['lead_email'] or '-'}\n{lead.get('name') or ''}\n"
            f"{lead.get('title') or ''}{(' at ' + lead['company']) if lead.get('company') else ''}")
    facts = [("Tier", lead.get("tier")), ("Score", lead.get("score")), ("Country", lead.get("country")),
             ("Time zone", lead.get("timezone")), ("Status", lead.get("status")),
             ("Reply class", lead.get("reply_class")), ("Sequence", f"{lead.get('sequence') or '-'} step "
                                                                    f"{lead.get('sequence_step') or 0}"),
             ("Industry", lead.get("industry")), ("Employees", lead.get("employees")),
             ("Last reply", local_time(lead.get("last_reply_at")) or None), ("ICP", lead.get("icp"))]
    st.dataframe(pd.DataFrame([{"fact": k, "value": "" if v is None else str(v)} for k, v in facts]),
                 hide_index=True, width="stretch", key=f"appr_facts_{d['id']}")
    if d.get("touches"):
        st.markdown("**Previous touches**")
        st.dataframe(pd.DataFrame([{"outbox": t["id"], "when": local_time(t["at"]), "status": t["status"],
                                    "subject": t["subject"] or ""} for t in d["touches"]]),
                     hide_index=True, width="stretch", key=f"appr_touches_{d['id']}")


def gate_panel(d: dict) -> None:
    st.markdown("**What the gate finds**")
    if d["kind"] == "send":
        if d["findings"]:
            st.error(f"The content rules find {len(d['findings'])} problem(s) in this message: the gate will "
                     "refuse it when it executes. Edit it, or reject it.")
            st.dataframe(pd.DataFrame(d["findings"])[["code", "detail"]], hide_index=True, width="stretch",
                         key=f"appr_findings_{d['id']}")
        else:
            st.caption("Content rules: nothing found in the message as it stands.")
        reasons = [r for r in d["gate_reasons"]]
        if reasons:
            st.dataframe(pd.DataFrame([{"code": r.get("code"), "detail": r.get("detail", "")} for r in reasons]),
                         hide_index=True, width="stretch", key=f"appr_reasons_{d['id']}")
        st.caption(f"Decided by the gate {local_time(d.get('gate_evaluated_at')) or '-'}"
                   + (" · high risk" if d.get("high_risk") else "") + f" · risk {d['risk']}")
    st.text(f"Requested by {d['requested_by']} {local_time(d['requested_at'])} ({age(d['requested_at'])})\n"
            f"SLA due {local_time(d['sla_due_at'])} ({sla_text(d) or d['status']})\n"
            f"Expires {local_time(d['expires_at'])}"
            + (f"\nEdited by {d['edited_by']}" if d["edited_by"] else "")
            + (f"\nDecided by {d['decided_by']} {local_time(d.get('decided_at'))}" if d["decided_by"] else "")
            + (f"\nReason: {d['reason']}" if d["reason"] else ""))


def show_refusal(e: EditRefused) -> None:
    st.error("Not saved: the gate would refuse this message. Fix each finding, then save again.\n\n"
             + "\n".join(f"- **{md_escape(f['code'])}**: {md_escape(f.get('detail') or '')}" for f in e.findings))


def actions(d: dict, seen: str | None) -> None:
    """The decisions on the item in focus. ``seen``: the version of it the person had on screen when they clicked
    (this run re-read it): a decision on an item someone else changed meanwhile is refused by the engine."""
    i = d["id"]
    if d["status"] != "pending":
        st.info(f"This item is {d['status']}: nothing more to decide.")
        return
    me = actor()
    a1, a2 = st.columns(2)
    if a1.button(f"{verb(d)} #{i}", type="primary", key=f"approve_{i}", shortcut="A", width="stretch"):
        ok, _ = run_action(app.approvals.approve, i, me, seen=seen)
        if ok:
            st.session_state["appr_flash"] = ("success", f"{'Taken' if d['kind'] == 'hot_lead' else 'Approved'}: "
                                                         f"#{i}.")
            nxt = shown.index(i) + 1 if i in shown else 0
            if nxt < len(shown):
                st.session_state["appr_goto"] = shown[nxt]  # on to the next item
            st.rerun()
    reason = st.text_input(f"Reason to {verb(d, False).lower()} #{i} (required)", key=f"reason_{i}")
    if a2.button(f"{verb(d, False)} #{i}", key=f"reject_{i}", shortcut="X", width="stretch"):
        if not reason.strip():
            st.error("A reason is required to reject: it is recorded and tells the team why.")
        else:
            ok, _ = run_action(app.approvals.reject, i, me, reason.strip())
            if ok:
                st.session_state["appr_flash"] = ("success", f"Rejected #{i}.")
                st.rerun()
    if d["kind"] != "send":
        return
    st.button(f"Edit #{i}", key=f"edit_open_{i}", shortcut="E", icon=":material/edit:",
              on_click=lambda: st.session_state.update({f"appr_editing_{i}": True}))
    with st.expander("Edit before approval (re-checked by the gate's rules; someone else must then approve)",
                     expanded=bool(st.session_state.get(f"appr_editing_{i}"))):
        subject = st.text_input("Subject", value=d["subject"] or "", key=f"edit_subject_{i}")
        text = st.text_area("Plain-text version", value=d["text"] or "", height=180, key=f"edit_text_{i}",
                            help="Leave empty when the email has only an HTML version.") if d["text"] else None
        html = st.text_area("HTML source (keep the unsubscribe link and the postal address)",
                            value=d["html"] or "", height=220, key=f"edit_html_{i}") if d["html"] or not d["text"] \
            else None
        if st.button(f"Save edit #{i}", key=f"edit_{i}"):
            changes = {"subject": subject}
            if html is not None:
                changes["html"] = html
            if text is not None:
                changes["text"] = text
            try:
                app.approvals.edit(i, me, seen=seen, **changes)
            except EditRefused as e:
                show_refusal(e)
            except AlphaError as e:
                st.error(md_escape(e))
            else:
                st.session_state["appr_flash"] = ("success", f"Edited #{i}: the gate's rules find nothing; another "
                                                             "approver must approve it now.")
                st.session_state.pop(f"appr_editing_{i}", None)
                st.session_state.pop("appr_seen", None)  # the new version is this person's own edit
                st.rerun()


if open_id in by_id:
    ok, d = run_action(app.approvals.detail, open_id)
    if ok:
        # the version on screen before this run: what a click in this run was made on
        shown_before = st.session_state.get("appr_seen") or {}
        seen_version = shown_before.get(d["id"], d["version"])
        st.session_state["appr_seen"] = {d["id"]: d["version"]}
        if seen_version != d["version"]:  # changed since it was on screen: the edit form starts from what is stored
            for k in ("subject", "text", "html"):
                st.session_state.pop(f"edit_{k}_{d['id']}", None)
            st.warning(md_escape(f"#{d['id']} changed since it was shown"
                                 + (f" (edited by {d['edited_by']})" if d["edited_by"] else "")
                                 + ": below is the item as it stands now."))
        st.subheader(f"{'Hot lead' if d['kind'] == 'hot_lead' else 'Send'} #{d['id']} · {d['action_type']}")
        left, right = st.columns([3, 2])
        with left:
            if d["kind"] == "send":
                email_panel(d)
            else:
                st.markdown("**What happened**")
                st.text(d["summary"] or "")
        with right:
            gate_panel(d)
            actions(d, seen_version)
            facts_panel(d)
