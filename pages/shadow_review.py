"""Shadow review (approver, admin): the emails a shadow run drafted, with the gateway's decision on each, built
for reviewing hundreds at once.

Filter by AI tier, gateway decision, reason code and review status (filtered and paginated in the engine, in
SQL); tick rows in the table (or a whole page, or everything the filters match) and approve or reject them
together behind one confirmation that lists them. The email in focus shows as it would go out (the HTML rendered
without scripts, the text as plain text, so no address becomes a live link) beside its findings, the gateway's
reasons and the lead. An edit is re-checked with the gate's rules and refused while any finding remains.
Keyboard: A approve, X reject, E edit, J / K next / previous email. Every decision button names its draft and is
keyed by it, so a shortcut pressed on a page that reruns onto another draft (a filter change, a draft that left
the list) acts on nothing. A decision carries the version of the draft the person saw: one someone else edited or
decided since is refused by the engine, and the page shows it as it stands now (as on the Approvals page). Lead
data and LLM output are untrusted: they are shown with st.text / st.code / dataframes, sanitised st.html, or
markdown with every markdown character escaped.
"""
from __future__ import annotations

import re

import streamlit as st

from console.runtime import actor, get_app, md_escape, require_role, run_action
from console.widgets import email_html, local_time, step_buttons
from engine.services.approvals import EditRefused
from engine.services.shadow_emails import (DRAFT_STATUSES, EDITABLE, batch_progress, decide_draft, decide_drafts,
                                           draft_detail, edit_draft, list_shadow_drafts, reason_codes,
                                           shadow_draft_ids, shadow_draft_rows, shadow_runs)
from engine.core.errors import AlphaError

require_role("approver", "admin")
app = get_app()

ANY = "(any)"
TABLE = "sr_table"
MARK = {"SPAM_CONTENT": "red", "FORBIDDEN_CLAIM": "red", "unsupported_claim": "orange"}
URL = re.compile(r"(?:https?://|www\.)\S+", re.I)


def plain_md(piece: str) -> str:
    """Escaped markdown of untrusted text in which no web address becomes a live link: markdown links addresses
    even when every character is escaped, so an address is shown as inline code (literal, not clickable)."""
    out, pos = [], 0
    for m in URL.finditer(piece):
        out.append(md_escape(piece[pos:m.start()]))
        url = m.group(0)
        fence = "`" * (max((len(r) for r in re.findall(r"`+", url)), default=0) + 1)
        out.append(f"{fence} {url} {fence}")
        pos = m.end()
    out.append(md_escape(piece[pos:]))
    return "".join(out)


def marked_markdown(segments) -> str:
    """Escaped markdown of a text cut into (piece, finding code) segments; findings get a coloured background.
    Line breaks are kept (hard breaks), blank lines separate paragraphs; addresses are never links."""
    out = []
    for piece, code in segments:
        if code:
            out.append(f":{MARK.get(code, 'red')}-background[**{md_escape(' '.join(piece.split()))}**]")
        else:
            out.append(plain_md(piece))
    lines = "".join(out).split("\n")
    paras, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append("  \n".join(cur))
            cur = []
    if cur:
        paras.append("  \n".join(cur))
    return "\n\n".join(paras) or "(empty)"


def _first_page() -> None:
    st.session_state["sr_page"] = 1
    st.session_state.pop("sr_pick", None)
    st.session_state.pop(TABLE, None)


def _sel() -> list[int]:
    return list(st.session_state.get("sr_sel", []))


def _set_sel(ids) -> None:
    st.session_state["sr_sel"] = list(dict.fromkeys(int(i) for i in ids))
    st.session_state.pop(TABLE, None)


def _done(message: str, level: str = "success", draft_id: int | None = None) -> None:
    """After a decision: say so, move on to the next pending email, clear the inputs (the decided draft's). The
    version on screen is forgotten too: the change just made is this person's own, not one to warn them about."""
    st.session_state["sr_flash"] = (level, message)
    for k in ("sr_pick", "sr_seen", f"sr_reason_{draft_id}", f"sr_editing_{draft_id}"):
        st.session_state.pop(k, None)
    st.rerun()


def outcome_summary(word: str, out: list[dict]) -> str:
    ok = [o["id"] for o in out if o["ok"]]
    bad = [o for o in out if not o["ok"]]
    text = f"{word} {len(ok)}" + (f" (#{', #'.join(map(str, ok))})" if ok else "")
    if bad:
        text += f", refused {len(bad)}: " + "; ".join(f"#{o['id']}: {o['error']}" for o in bad)
    return text + "."


st.title("Shadow review")
if flash := st.session_state.pop("sr_flash", None):
    level, message = flash if isinstance(flash, tuple) else ("success", flash)
    (st.success if level == "success" else st.warning)(md_escape(message))

runs = shadow_runs(app)
if not runs:
    st.info("No shadow run yet. Import leads and run the pipeline in shadow (nothing is sent), then reload:")
    st.code("alpha leads import leads.csv\nalpha shadow run --contacts 100", language="bash")
    st.stop()

by_id = {r["id"]: r for r in runs}
run_id = st.selectbox("Shadow run", list(by_id), key="sr_run", on_change=_first_page,
                      format_func=lambda i: f"Run {i} · {local_time(by_id[i]['started_at']) or '?'} · "
                                            f"{by_id[i]['contacts']} leads")
prog = batch_progress(app, run_id)
if prog["total"] == 0:
    summary = by_id[run_id]["summary"]
    st.info(f"Run {run_id} has no email to review: every lead was disqualified or stopped before drafting, or the "
            "gateway refused before deciding on each email (kill switch or maintenance on during the run). "
            "`alpha shadow run --contacts N` over more leads, with the kill switch off, gives something to review.")
    if summary.get("by_status") or summary.get("by_reason"):
        st.caption("What the run recorded:")
        st.dataframe([{"outcome": k, "leads": v} for part in ("by_status", "by_reason")
                      for k, v in (summary.get(part) or {}).items()], hide_index=True)
    st.stop()

st.progress(prog["reviewed"] / prog["total"], text=f"{prog['reviewed']} / {prog['total']} reviewed")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Pending", prog["pending"], border=True)
c2.metric("Approved", prog["by_status"].get("approved", 0), border=True)
c3.metric("Rejected", prog["by_status"].get("rejected", 0), border=True)
c4.metric("Gateway denied", prog["by_decision"].get("denied", 0), border=True,
          help="Emails the gateway itself would have refused (a permanent rule).")

# ------------------------------------------------------------------------------------------ filters + list

decision_options = sorted(prog["by_decision"])
reason_options = [ANY] + reason_codes(app, run_id)
# another run may not have the decisions or codes picked before: keep only what this run offers
if "sr_f_decision" in st.session_state:
    st.session_state["sr_f_decision"] = [v for v in st.session_state["sr_f_decision"] if v in decision_options]
if st.session_state.get("sr_f_reason", ANY) not in reason_options:
    st.session_state["sr_f_reason"] = ANY
f1, f2, f3, f4 = st.columns(4)
tiers = f1.multiselect("AI tier", [1, 2, 3], key="sr_f_tier", on_change=_first_page)
decisions = f2.multiselect("Gateway decision", decision_options, key="sr_f_decision", on_change=_first_page)
reason = f3.selectbox("Reason code", reason_options, key="sr_f_reason", on_change=_first_page,
                      help="A gateway reason or a guardrail finding on the draft.")
statuses = f4.multiselect("Review status", list(DRAFT_STATUSES), key="sr_f_status", on_change=_first_page)
FILTERS = dict(tiers=tiers, decisions=decisions, reason=None if reason == ANY else reason, statuses=statuses)

per_page = int(st.session_state.get("sr_per_page", 25))
ok, listing = run_action(list_shadow_drafts, app, run_id, **FILTERS,
                         page=int(st.session_state.get("sr_page", 1)), per_page=per_page)
if not ok:
    st.stop()
if st.session_state.get("sr_page", 1) != listing["page"]:
    st.session_state["sr_page"] = listing["page"]  # clamped to the pages there are
rows = listing["rows"]
if not rows:
    st.info("No email matches these filters.")
    st.stop()
row_of = {r["draft_id"]: r for r in rows}
shown = list(row_of)

# the selection is a list of draft ids; the table's ticks are positions in the rows it showed last
state = st.session_state.get(TABLE)
ticks = state.get("selection", {}).get("rows") if state else None
before = st.session_state.get("sr_shown", [])
sel = _sel()
if ticks is not None and st.session_state.get("sr_ticks_seen") != list(ticks):
    ticked = [before[i] for i in ticks if 0 <= i < len(before)]
    sel = [i for i in sel if i not in before] + ticked
    if len(ticked) == 1 and ticked[0] in row_of:
        st.session_state["sr_pick"] = ticked[0]  # one ticked row: that is the email in focus
if sel:
    matching = set(shadow_draft_ids(app, run_id, **FILTERS))
    sel = [i for i in sel if i in matching]
positions = [n for n, i in enumerate(shown) if i in set(sel)]
st.session_state[TABLE] = {"selection": {"rows": positions, "columns": [], "cells": []}}
st.session_state["sr_ticks_seen"] = positions
st.session_state["sr_shown"] = shown
st.session_state["sr_sel"] = sel

first = (listing["page"] - 1) * listing["per_page"] + 1
st.caption(f"{first}-{first + len(rows) - 1} of {listing['total']} matching emails · {len(sel)} selected")
st.dataframe([{"id": r["draft_id"], "to": r["to"], "company": r["company"], "tier": r["tier"],
               "decision": r["decision"], "reasons": ", ".join(r["reasons"]), "findings": ", ".join(r["findings"]),
               "status": r["status"], "subject": r["subject"], "by": r["decided_by"] or "", "note": r["note"] or ""}
              for r in rows], hide_index=True, width="stretch", key=TABLE, on_select="rerun",
             selection_mode="multi-row", column_config={"id": st.column_config.NumberColumn(format="%d")})
p1, p2, s1, s2, s3 = st.columns([1, 1, 1.3, 1.3, 0.8])
p1.number_input(f"Page (of {listing['pages']})", min_value=1, max_value=listing["pages"], step=1, key="sr_page",
                on_change=lambda: st.session_state.pop(TABLE, None))
p2.selectbox("Per page", [10, 25, 50, 100], index=1, key="sr_per_page", on_change=_first_page)
open_page = [i for i in shown if row_of[i]["status"] in ("draft",)]
s1.button(f"Select all on this page ({len(open_page)})", key="sr_sel_page", disabled=not open_page,
          on_click=lambda: _set_sel([*_sel(), *open_page]), width="stretch",
          help="The emails on this page still waiting for a decision")
s2.button(f"Select all {listing['total']} matching", key="sr_sel_all",
          on_click=lambda: _set_sel(shadow_draft_ids(app, run_id, **FILTERS)), width="stretch",
          help="Every email the filters match, on every page")
s3.button("Clear", key="sr_sel_clear", disabled=not sel, on_click=lambda: _set_sel([]), width="stretch")


def bulk_snapshot(action: str, ids: list[int]) -> tuple:
    """What the confirmation lists, read once when it opens: its lines and each draft's version. The decision acts
    on exactly these drafts as listed (one edited or decided by someone else since is refused, naming why)."""
    info = {r["draft_id"]: r for r in shadow_draft_rows(app, run_id, ids)}

    def line(i: int) -> str:
        r = info.get(i)
        if r is None:
            return f"#{i:<6} (no longer in this run)"
        state = r["status"] + (f" by {r['decided_by']}" if r["decided_by"] and r["status"] != "draft" else "")
        return f"#{i:<6} {state[:32]:32} {(r['to'] or '')[:48]:48} {(r['subject'] or '')[:90]}"

    return action, list(ids), [line(i) for i in ids], {i: r["version"] for i, r in info.items()}


@st.dialog("Confirm the bulk decision", width="large", dismissible=False)
def confirm_bulk(action: str, ids: list[int], lines: list[str], seen: dict) -> None:
    word = "Approve" if action == "approve" else "Reject"
    st.markdown(f"**{word} these {len(ids)} email(s)?** Each is decided on its own and recorded in the audit "
                "trail; an email queued or sent already is left alone. Each line shows the email's review status "
                "when this list was made: a decision here replaces an earlier one, and an email someone else "
                "edited or decided since is refused.")
    with st.container(height=min(360, 60 + 22 * len(ids)), border=True, key="sr_bulk_items"):
        st.text("\n".join(lines))
    why = st.text_area("Reason (required, recorded for each email)", key="sr_bulk_reason") \
        if action == "reject" else ""
    b1, b2 = st.columns(2)
    if b1.button(f"{word} {len(ids)} email(s)", type="primary", key="sr_bulk_confirm"):
        if action == "reject" and not (why or "").strip():
            st.error("A reason is required to reject: say what is wrong, so the template can be fixed.")
            return
        ok, out = run_action(decide_drafts, app, ids, "approved" if action == "approve" else "rejected", actor(),
                             (why or "").strip(), seen=seen)
        if not ok:
            return
        st.session_state.pop("sr_bulk", None)
        _set_sel([])
        _done(outcome_summary("Approved" if action == "approve" else "Rejected", out),
              "success" if all(o["ok"] for o in out) else "warning")
    if b2.button("Cancel", key="sr_bulk_cancel"):
        st.session_state.pop("sr_bulk", None)
        st.rerun()


b1, b2, b3 = st.columns([1, 1, 2])
if b1.button(f"Approve {len(sel)} selected", key="sr_bulk_approve", type="primary", disabled=not sel,
             width="stretch"):
    st.session_state["sr_bulk"] = bulk_snapshot("approve", list(sel))
if b2.button(f"Reject {len(sel)} selected", key="sr_bulk_reject", disabled=not sel, width="stretch"):
    st.session_state["sr_bulk"] = bulk_snapshot("reject", list(sel))
b3.caption("Tick rows in the table, or use the select buttons. Keyboard: **A** approve, **X** reject (with the "
           "reason typed), **E** edit, **J** / **K** next / previous email; shortcuts do nothing while you type.")
if len(st.session_state.get("sr_bulk") or ()) == 4:
    confirm_bulk(*st.session_state["sr_bulk"])

# ------------------------------------------------------------------------------------------ one email

if st.session_state.get("sr_goto") in row_of:
    st.session_state["sr_pick"] = st.session_state.pop("sr_goto")
if st.session_state.get("sr_pick") not in row_of:
    st.session_state.pop("sr_pick", None)
pending = [i for i, r in row_of.items() if r["status"] == "draft"]


st.divider()
n1, n2, n3 = st.columns([4, 1, 1])
pick = n1.selectbox("Email in focus", shown, key="sr_pick",
                    index=shown.index(pending[0]) if pending else 0,
                    format_func=lambda i: f"#{i} · {row_of[i]['status']} · {row_of[i]['company'] or '-'} · "
                                          f"{(row_of[i]['subject'] or '')[:60]}")
step_buttons(n2, n3, "sr_pick", shown, "sr")
ok, d = run_action(draft_detail, app, pick, run_id)
if not ok:
    st.stop()
# the version on screen before this run: what a click in this run was made on
seen_version = (st.session_state.get("sr_seen") or {}).get(d["draft_id"], d["version"])
st.session_state["sr_seen"] = {d["draft_id"]: d["version"]}
if seen_version != d["version"]:  # changed since it was on screen: the edit form starts from what is stored
    for k in ("subject", "body"):
        st.session_state.pop(f"sr_edit_{k}_{d['draft_id']}", None)
    last = d["history"][-1] if d["history"] else None
    st.warning(md_escape(f"Draft #{d['draft_id']} changed since it was shown (now {d['status']}"
                         + (f"; {last['event']} by {last['actor']}" if last else "")
                         + "): below is the email as it stands now."))

left, right = st.columns([3, 2])
with left:
    st.subheader(f"Draft #{d['draft_id']}")
    st.text(f"To: {d['lead']['name']} <{d['to']}>")
    st.text(f"Company: {d['lead']['company'] or '-'} · {d['lead']['title'] or '-'}")
    st.text(f"Subject: {d['subject']}")
    if d["findings"]:
        st.markdown(f"**Guardrail findings ({len(d['findings'])})**, marked in the text below:")
        st.dataframe(d["findings"], hide_index=True, width="stretch")
        st.caption("Subject")
        st.markdown(marked_markdown(d["subject_segments"]))
        st.caption("Body (:red-background[spam terms and forbidden claims], :orange-background[unsupported "
                   "claims]; addresses shown as code, never as links)")
        with st.container(border=True):
            st.markdown(marked_markdown(d["body_segments"]))
    else:
        st.success("No guardrail findings.")
    st.caption("Plain text, exactly as a reader gets it (links as addresses, never clickable here)")
    with st.container(border=True):
        st.text(d["text"])
    if d["html"]:
        with st.expander("Rendered HTML (its text and layout only: no script, style sheet, positioning or remote "
                         "image; links shown with their address, never clickable)"):
            st.html(email_html(d["html"]))
        with st.expander("HTML source"):
            st.code(d["html"] or "", language="html", wrap_lines=True)


def show_refusal(e: EditRefused) -> None:
    st.error("Not saved, not approved: the gate would refuse this email. Fix each finding, then save again.\n\n"
             + "\n".join(f"- **{md_escape(f['code'])}**: {md_escape(f.get('detail') or '')}" for f in e.findings))


with right:
    st.markdown(f"**Status:** `{d['status']}` · **AI tier:** `{d['tier'] if d['tier'] is not None else '-'}` · "
                f"**Gateway:** `{d['decision'] or 'no decision'}`")
    st.caption(f"{d['sequence']} step {d['step']} · template {md_escape(d['template'])} · "
               f"written by {md_escape(d['provider'] or '-')}")
    if d["edited"]:
        st.caption(f"Edited by {md_escape(str(d['edited'].get('by')))} at {d['edited'].get('at')}")
    st.markdown("**Gateway reasons**")
    if d["reasons"]:
        st.dataframe(d["reasons"], hide_index=True, width="stretch")
    else:
        st.caption("none")

    st.divider()
    i = d["draft_id"]
    nxt = next((x for x in shown[shown.index(i) + 1:] + shown[:shown.index(i)] if row_of[x]["status"] == "draft"),
               None) if i in shown else None
    if d["status"] not in EDITABLE:
        st.info(f"This email is {d['status']}: there is nothing left to decide.")
    else:
        # keyed by the draft: a click (or a shortcut) made on another draft's page never lands on this one
        a1, a2 = st.columns(2)
        if a1.button(f"Approve #{i}", key=f"sr_approve_{i}", type="primary", width="stretch", shortcut="A",
                     disabled=d["status"] == "approved"):
            ok, _ = run_action(decide_draft, app, i, "approved", actor(), seen=seen_version)
            if ok:
                st.session_state["sr_goto"] = nxt
                _done(f"Draft #{i} approved.", draft_id=i)
        reject_reason = st.text_area(f"Reason to reject #{i} (required)", key=f"sr_reason_{i}", max_chars=500,
                                     placeholder="e.g. wrong facts about the company, tone, spam risk")
        if a2.button(f"Reject #{i}", key=f"sr_reject_{i}", width="stretch", shortcut="X",
                     disabled=d["status"] == "rejected"):
            if not (reject_reason or "").strip():
                st.error("A reason is required to reject: say what is wrong, so the template can be fixed.")
            else:
                ok, _ = run_action(decide_draft, app, i, "rejected", actor(), reject_reason.strip(),
                                   seen=seen_version)
                if ok:
                    st.session_state["sr_goto"] = nxt
                    _done(f"Draft #{i} rejected.", draft_id=i)
        st.button(f"Edit #{i}", key=f"sr_edit_open_{i}", shortcut="E", icon=":material/edit:",
                  on_click=lambda: st.session_state.update({f"sr_editing_{i}": True}))
        with st.expander("Edit, then approve (re-checked by the gate's rules)",
                         expanded=bool(st.session_state.get(f"sr_editing_{i}"))):
            with st.form(key=f"sr_edit_{i}"):
                subject = st.text_input("Subject", value=d["subject"], key=f"sr_edit_subject_{i}")
                body = st.text_area("Body (plain text; links stay links)", value=d["text"], height=300,
                                    key=f"sr_edit_body_{i}")
                why = st.text_input("What you changed and why (optional)", key=f"sr_edit_why_{i}")
                save_approve = st.form_submit_button(f"Save edit and approve #{i}", type="primary")
                save = st.form_submit_button(f"Save edit #{i}")
            if save or save_approve:
                try:
                    edit_draft(app, i, subject, body, actor(), why.strip(), approve=bool(save_approve),
                               seen=seen_version)
                except EditRefused as e:
                    show_refusal(e)
                except AlphaError as e:
                    st.error(md_escape(e))
                else:
                    if save_approve:
                        st.session_state["sr_goto"] = nxt
                    _done(f"Draft #{i} edited" + (" and approved." if save_approve else
                                                  ": the gate's rules find nothing; approve it when ready."),
                          draft_id=i)

    if d["history"]:
        st.markdown("**History**")
        st.dataframe(d["history"], hide_index=True, width="stretch")
