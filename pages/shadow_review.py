"""Shadow review (approver, admin): the emails a shadow run drafted, with the gateway's decision on each.

Filter by AI tier, gateway decision, reason code and review status (filtered and paginated in the engine, in
SQL); read one email as text with its guardrail findings marked; approve, reject with a reason, or edit then
approve. Lead data and LLM output are untrusted: they are shown with st.text / st.code / dataframes, or as
markdown with every markdown character escaped (never as HTML).
"""
from __future__ import annotations


import streamlit as st

from console.runtime import actor, get_app, md_escape, require_role, run_action
from engine.drafts import (DRAFT_STATUSES, EDITABLE, batch_progress, draft_detail, edit_draft, list_shadow_drafts,
                           reason_codes, shadow_runs)
from engine.pipeline import set_draft_status

require_role("approver", "admin")
app = get_app()

ANY = "(any)"
MARK = {"SPAM_CONTENT": "red", "FORBIDDEN_CLAIM": "red", "unsupported_claim": "orange"}
def marked_markdown(segments) -> str:
    """Escaped markdown of a text cut into (piece, finding code) segments; findings get a coloured background.
    Line breaks are kept (hard breaks), blank lines separate paragraphs."""
    out = []
    for piece, code in segments:
        if code:
            out.append(f":{MARK.get(code, 'red')}-background[**{md_escape(' '.join(piece.split()))}**]")
        else:
            out.append(md_escape(piece))
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


def _done(message: str) -> None:
    """After a decision: say so, move on to the next pending email, clear the inputs."""
    st.session_state["sr_flash"] = message
    for k in ("sr_pick", "sr_reason"):
        st.session_state.pop(k, None)
    st.rerun()


st.title("Shadow review")
if flash := st.session_state.pop("sr_flash", None):
    st.success(flash)

runs = shadow_runs(app)
if not runs:
    st.info("No shadow run yet. Import leads and run the pipeline in shadow (nothing is sent), then reload:")
    st.code("alpha leads import leads.csv\nalpha shadow run --contacts 100", language="bash")
    st.stop()

by_id = {r["id"]: r for r in runs}
run_id = st.selectbox("Shadow run", list(by_id), key="sr_run", on_change=_first_page,
                      format_func=lambda i: f"Run {i} · {by_id[i]['started_at'] or '?'} · "
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

per_page = int(st.session_state.get("sr_per_page", 25))
ok, listing = run_action(list_shadow_drafts, app, run_id, tiers=tiers, decisions=decisions,
                         reason=None if reason == ANY else reason, statuses=statuses,
                         page=int(st.session_state.get("sr_page", 1)), per_page=per_page)
if not ok:
    st.stop()
if st.session_state.get("sr_page", 1) != listing["page"]:
    st.session_state["sr_page"] = listing["page"]  # clamped to the pages there are
rows = listing["rows"]
if not rows:
    st.info("No email matches these filters.")
    st.stop()

first = (listing["page"] - 1) * listing["per_page"] + 1
st.caption(f"{first}-{first + len(rows) - 1} of {listing['total']} matching emails")
st.dataframe([{"id": r["draft_id"], "to": r["to"], "company": r["company"], "tier": r["tier"],
               "decision": r["decision"], "reasons": ", ".join(r["reasons"]), "findings": ", ".join(r["findings"]),
               "status": r["status"], "subject": r["subject"], "by": r["decided_by"] or "", "note": r["note"] or ""}
              for r in rows], hide_index=True, width="stretch",
             column_config={"id": st.column_config.NumberColumn(format="%d")})
p1, p2, _ = st.columns([1, 1, 3])
p1.number_input(f"Page (of {listing['pages']})", min_value=1, max_value=listing["pages"], step=1, key="sr_page")
p2.selectbox("Per page", [10, 25, 50, 100], index=1, key="sr_per_page", on_change=_first_page)

# ------------------------------------------------------------------------------------------ one email

row_of = {r["draft_id"]: r for r in rows}
if st.session_state.get("sr_pick") not in row_of:
    st.session_state.pop("sr_pick", None)
pending = [i for i, r in row_of.items() if r["status"] == "draft"]
pick = st.selectbox("Email to review", list(row_of), key="sr_pick",
                    index=list(row_of).index(pending[0]) if pending else 0,
                    format_func=lambda i: f"#{i} · {row_of[i]['status']} · {row_of[i]['company'] or '-'} · "
                                          f"{(row_of[i]['subject'] or '')[:60]}")
ok, d = run_action(draft_detail, app, pick, run_id)
if not ok:
    st.stop()

left, right = st.columns([3, 2])
with left:
    st.subheader(f"Draft #{d['draft_id']}")
    st.text(f"To: {d['lead']['name']} <{d['to']}>")
    st.text(f"Company: {d['lead']['company'] or '-'} · {d['lead']['title'] or '-'}")
    if d["findings"]:
        st.markdown(f"**Guardrail findings ({len(d['findings'])})**, marked in the text below:")
        st.dataframe(d["findings"], hide_index=True, width="stretch")
    else:
        st.success("No guardrail findings.")
    st.caption("Subject")
    st.markdown(marked_markdown(d["subject_segments"]))
    st.caption("Body (as text; :red-background[spam terms and forbidden claims], "
               ":orange-background[unsupported claims])")
    with st.container(border=True):
        st.markdown(marked_markdown(d["body_segments"]))
    with st.expander("Exact text"):
        st.code(f"Subject: {d['subject']}\n\n{d['text']}", language=None, wrap_lines=True)
    with st.expander("HTML source (not rendered)"):
        st.code(d["html"] or "", language="html", wrap_lines=True)

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
    if d["status"] not in EDITABLE:
        st.info(f"This email is {d['status']}: there is nothing left to decide.")
    else:
        a1, a2 = st.columns(2)
        if a1.button("Approve", key="sr_approve", type="primary", width="stretch",
                     disabled=d["status"] == "approved"):
            ok, _ = run_action(set_draft_status, app, d["draft_id"], "approved", actor())
            if ok:
                _done(f"Draft #{d['draft_id']} approved.")
        reject_reason = st.text_area("Reason (required to reject)", key="sr_reason", max_chars=500,
                                     placeholder="e.g. wrong facts about the company, tone, spam risk")
        if a2.button("Reject", key="sr_reject", width="stretch", disabled=d["status"] == "rejected"):
            if not (reject_reason or "").strip():
                st.error("A reason is required to reject: say what is wrong, so the template can be fixed.")
            else:
                ok, _ = run_action(set_draft_status, app, d["draft_id"], "rejected", actor(),
                                   reject_reason.strip())
                if ok:
                    _done(f"Draft #{d['draft_id']} rejected.")
        with st.expander("Edit, then approve"):
            with st.form(key=f"sr_edit_{d['draft_id']}"):
                subject = st.text_input("Subject", value=d["subject"], key=f"sr_edit_subject_{d['draft_id']}")
                body = st.text_area("Body (plain text; links stay links)", value=d["text"], height=300,
                                    key=f"sr_edit_body_{d['draft_id']}")
                why = st.text_input("What you changed and why (optional)", key=f"sr_edit_why_{d['draft_id']}")
                if st.form_submit_button("Save edit and approve", type="primary"):
                    ok, saved = run_action(edit_draft, app, d["draft_id"], subject, body, actor(), why.strip())
                    if ok:
                        found = [f.get("code") for f in (saved.flags or [])]
                        _done(f"Draft #{d['draft_id']} edited and approved."
                              + (f" The edited text still has findings: {', '.join(found)}." if found else ""))

    if d["history"]:
        st.markdown("**History**")
        st.dataframe(d["history"], hide_index=True, width="stretch")
