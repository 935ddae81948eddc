"""Leads (ops, admin): CSV import with a progress bar and the per-row error report; a searchable, paginated
lead list; the ICP breakdown of one lead. Lead data is untrusted: it is shown only in tables and plain text."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from console.runtime import get_app, md_escape, require_role, run_action
from console.widgets import local_rows, local_time, stamp
from engine.core.errors import AlphaError
from engine.services.events import lead_replies
from engine.queries.leads import TIER_FILTERS, errors_csv, get_lead, search_leads

require_role("ops", "admin")
app = get_app()

PER_PAGE = 50
RESULT = "leads_import_result"

st.title("Leads")

# ------------------------------------------------------------------------------------------ import

st.header("Import a CSV")
st.caption("Exports from CRMs and prospecting tools are read as they are (column aliases, UTF-8/UTF-16/cp1252, "
           "comma, semicolon or tab). Leads are matched by email: an empty cell never erases a stored value, so "
           "importing the same file twice changes nothing. Rows with a bad value are kept without that value; "
           "rows without a valid, unique email are rejected.")


def _safe_name(name: str) -> str:
    """The uploaded file's name, fit to be a file name here (it becomes the leads' source, import:<name>)."""
    base = re.sub(r"[^\w.\- ]", "_", Path(name or "").name).strip(" .")[:100]
    return base or "upload.csv"


def _import(upload) -> None:
    bar = st.progress(0.0, text="Reading the file...")

    def reading(done: int, total: int) -> None:
        bar.progress(done / total * 0.5 if total else 0.5, text=f"Reading the file: {done:,} / {total:,} rows")

    def saving(done: int, total: int) -> None:
        bar.progress(0.5 + (done / total * 0.5 if total else 0.5), text=f"Saving leads: {done:,} / {total:,}")

    with tempfile.TemporaryDirectory(prefix="alpha-import-") as d:
        path = Path(d) / _safe_name(upload.name)
        path.write_bytes(upload.getvalue())
        try:
            res = app.import_leads(path, progress=saving, parse_progress=reading)
        except AlphaError as e:  # it quotes the file's name and cells: shown as written, never as markdown
            st.error(md_escape(str(e).replace(str(path), repr(upload.name))))
            res = None
    bar.empty()
    if res is not None:
        st.session_state[RESULT] = {**res, "file": upload.name}
        st.session_state["leads_page"] = 1  # show the newest leads
    else:
        st.session_state.pop(RESULT, None)


upload = st.file_uploader("Lead CSV", key="leads_upload",
                          help="A .csv (or tab-separated .tsv/.txt) file with a header row and an email column.")
if st.button("Import leads", key="leads_import", type="primary", disabled=upload is None):
    _import(upload)

res = st.session_state.get(RESULT)
if res:
    kept = res["imported"] + res["updated"] + res["unchanged"]
    st.text(f"Last import: {res['file']}")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("New leads", f"{res['imported']:,}", border=True)
    c2.metric("Updated", f"{res['updated']:,}", border=True)
    c3.metric("Unchanged", f"{res['unchanged']:,}", border=True)
    c4.metric("Rejected rows", f"{res['rejected']:,}", border=True)
    if res["rejected"]:
        st.warning(f"{kept:,} valid row(s) of {res['rows']:,} were kept; {res['rejected']:,} row(s) were rejected "
                   "and not imported (see the report below). Fix them in the file and import it again: rows "
                   "already imported are not duplicated.")
    else:
        st.success(f"All {kept:,} row(s) were kept.")
    dropped = len(res["errors"]) - res["rejected"]
    if dropped > 0:
        st.info(f"{dropped:,} value(s) were dropped from rows that were kept (the rest of each row was imported).")
    st.caption(f"Read as {res['encoding']}, delimiter {res['delimiter']!r}.")
    if res["errors"]:
        st.subheader("Error report")
        st.dataframe([{"row": e["row"], "field": e["field"] or "(row)", "problem": e["error"]} for e in res["errors"]],
                     hide_index=True, width="stretch", key="leads_errors")
        st.download_button("Download the error report (CSV)", errors_csv(res["errors"]),
                           file_name="lead-import-errors.csv", mime="text/csv", key="leads_errors_csv",
                           on_click="ignore")

st.divider()

# ------------------------------------------------------------------------------------------ list

st.header("Browse leads")


def _reset_page() -> None:
    st.session_state["leads_page"] = 1


def _tier(r: dict) -> str:
    if r["tier"] is not None:
        return str(r["tier"])
    return "disqualified" if r["score"] == 0 else "not scored"  # a disqualified lead is stored with score 0


TIER_LABELS = {"all": "All tiers", "1": "Tier 1", "2": "Tier 2", "3": "Tier 3", "disqualified": "Disqualified",
               "unscored": "Not scored yet"}
c1, c2 = st.columns([3, 1])
query = c1.text_input("Search email or company", key="leads_query", on_change=_reset_page,
                      placeholder="e.g. acme or @example.com")
tier = c2.selectbox("Tier", TIER_FILTERS, format_func=TIER_LABELS.get, key="leads_tier", on_change=_reset_page)
page_no = int(st.session_state.get("leads_page", 1))
ok, found = run_action(search_leads, app, query, tier, page_no, PER_PAGE)
if not ok:
    st.stop()
st.session_state["leads_page"] = found.page

if found.total == 0:
    if query.strip() or tier != "all":
        st.info("No lead matches this search. Clear the search or choose All tiers.")
    else:
        st.info("There are no leads yet. Import a CSV above, or from the repository root run "
                "`alpha leads import FILE` (or `alpha demo` for the demo leads in an empty database).")
    st.stop()

st.caption(f"{found.total:,} lead(s) · page {found.page} of {found.pages} · newest first. Tiers are set when the "
           "pipeline scores a lead (`alpha shadow run N`); the breakdown below is computed now from config/icp.json.")
if found.pages > 1:
    st.number_input("Page", min_value=1, max_value=found.pages, step=1, key="leads_page")

st.dataframe(
    local_rows(({**r, "tier": _tier(r)} for r in found.rows), "created_at"),
    hide_index=True, width="stretch", key="leads_table", column_config={"created_at": "created"})
stamp(what="List")

# ------------------------------------------------------------------------------------------ ICP breakdown

st.header("ICP breakdown")
rows_by_id = {r["id"]: r for r in found.rows}
lead_id = st.selectbox("Lead", list(rows_by_id), key="leads_selected",
                       format_func=lambda i: f"#{i} {rows_by_id[i]['email']} · {rows_by_id[i]['company'] or '-'}",
                       help="The leads on this page of the list.")
lead = get_lead(app, lead_id) if lead_id is not None else None
if lead is None:
    st.info("That lead no longer exists; pick another.")
    st.stop()
ok, fit = run_action(app.score, lead)
if not ok:
    st.stop()

st.text(f"{lead.email} · {lead.company or '(no company)'} · {lead.title or '(no title)'}")
m1, m2, m3 = st.columns(3)
m1.metric("ICP score", f"{fit.score} / 100", border=True)
m2.metric("Tier", "disqualified" if fit.disqualified else str(fit.tier), border=True)
m3.metric("Stored by the pipeline", "not scored yet" if lead.score is None and lead.disqualified_reason is None
          else ("disqualified" if lead.tier is None else f"tier {lead.tier}, score {lead.score}"), border=True)
if fit.disqualified:
    st.warning("Disqualified: the lead is never contacted, whatever its points (the breakdown is kept for the "
               "record).")

left, right = st.columns([2, 3])
with left:
    names = [c.criterion for c in fit.breakdown]
    fig = go.Figure([
        go.Bar(x=names, y=[c.max for c in fit.breakdown], name="maximum", marker_color="#d0d7e2",
               hovertemplate="%{x}: maximum %{y}<extra></extra>"),
        go.Bar(x=names, y=[c.points for c in fit.breakdown], name="points", marker_color="#1f6feb",
               text=[f"{c.points}/{c.max}" for c in fit.breakdown], textposition="outside",
               hovertemplate="%{x}: %{y} points<extra></extra>"),
    ])
    fig.update_layout(barmode="overlay", height=280, margin=dict(l=10, r=10, t=10, b=10), showlegend=False,
                      yaxis_title="points")
    st.plotly_chart(fig, key="leads_icp_chart", config={"displayModeBar": False})
with right:
    st.dataframe([{"criterion": c.criterion, "points": c.points, "max": c.max, "why": c.why}
                  for c in fit.breakdown], hide_index=True, width="stretch", key="leads_icp_table")
st.caption("Explanation")
st.text(fit.explain())

st.subheader("Replies")
if lead.paused_until is not None:
    st.info(f"Out of office: no step goes out before {local_time(lead.paused_until)}.")
ok, found_replies = run_action(lead_replies, app, lead.id, 20)
if ok and found_replies:
    st.caption(f"Last reply class: {(lead.reply_class or '-').replace('_', ' ')} · sequence "
               + (f"stopped ({lead.stop_reason})" if lead.sequence_stopped_at else "running"))
    st.dataframe(local_rows(({"received": r["received_at"], "class": r["class"].replace("_", " "),
                   "confidence": r["confidence"], "return date": r["return_date"] or "",
                   "referral": r["referral"] or "", "queued steps changed": r["queue_changed"],
                   "LLM second opinion": r["second_opinion"] or "", "excerpt": r["excerpt"]} for r in found_replies),
                            "received", "return date"), hide_index=True, width="stretch", key="leads_replies")
elif ok:
    st.caption("No reply from this lead yet.")

with st.expander("Lead record"):
    st.dataframe([{"field": k, "value": "" if v is None else local_time(v, with_seconds=True)
                   if hasattr(v, "tzinfo") and hasattr(v, "hour") else str(v)}
                  for k, v in lead.model_dump().items() if k not in ("icp",)],
                 hide_index=True, width="stretch", key="leads_record")
