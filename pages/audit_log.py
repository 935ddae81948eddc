"""Audit log (ops, admin): the tamper-evident trail filtered by actor, agent, event, action, status and time,
newest first, paged in SQL; the hash-chain verification on request, naming the first bad row."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import streamlit as st

from console.runtime import get_app, require_role
from console.widgets import local_time, stamp
from engine.queries import audit_log
from engine.queries.audit_log import AuditFilter

require_role("ops", "admin")
app = get_app()

ANY = "(any)"
PAGE_SIZES = (50, 100, 200)
DATA_PREVIEW = 300

st.title("Audit log")
st.caption("Every decision and change, append-only and hash-chained. Values under secret-looking keys were "
           "redacted before the rows were written.")

# ------------------------------------------------------------------------------------------ filters

facets = audit_log.facets(app)


def _pick(col, label: str, facet: str, key: str) -> str | None:
    options = [ANY, *facets[facet]]
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    v = col.selectbox(label, options, key=key)
    return None if v == ANY else v


with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    f_actor = _pick(c1, "Actor", "actor", "audit_actor")
    f_agent = _pick(c2, "Agent", "agent", "audit_agent")
    f_action = _pick(c3, "Action", "action", "audit_action")
    f_ref = c4.text_input("Reference (exact)", key="audit_ref", help="idempotency key, e-mail, breaker, domain...")
    c5, c6, c7, c8, c9 = st.columns([3, 2, 1.2, 1.2, 0.8])
    f_events = c5.multiselect("Event", facets["event"], key="audit_events")
    f_status = c6.multiselect("Status", facets["status"], key="audit_status")
    d_from = c7.date_input("From (UTC)", value=None, key="audit_from")
    d_to = c8.date_input("To (UTC, inclusive)", value=None, key="audit_to")
    size = c9.selectbox("Rows", PAGE_SIZES, key="audit_size")


def _preview(data) -> str:
    """The row's data as one line of JSON; nothing at all when there is none (never a bare ``{}``)."""
    if data in (None, {}, [], ""):
        return ""
    return json.dumps(data, ensure_ascii=False, sort_keys=True)[:DATA_PREVIEW]


def _utc(d) -> datetime | None:
    return datetime.combine(d, time(0), tzinfo=timezone.utc) if d else None


flt = AuditFilter.of(actor=f_actor, agent=f_agent, events=f_events, action=f_action, statuses=f_status, ref=f_ref,
                     since=_utc(d_from), until=_utc(d_to + timedelta(days=1)) if d_to else None)
if d_from and d_to and d_to < d_from:
    st.warning("'To' is before 'From': no row can match.")

# ------------------------------------------------------------------------------------------ one page

filter_key = repr((flt, size))
if st.session_state.get("audit_filter_key") != filter_key:  # new filters: back to the newest rows
    st.session_state["audit_filter_key"] = filter_key
    st.session_state["audit_cursors"] = [None]
cursors: list = st.session_state["audit_cursors"]


def _older(seq: int) -> None:
    st.session_state["audit_cursors"].append(seq)


def _newer() -> None:
    if len(st.session_state["audit_cursors"]) > 1:
        st.session_state["audit_cursors"].pop()


def _newest() -> None:
    st.session_state["audit_cursors"] = [None]


total = audit_log.count(app, flt)
page = audit_log.search(app, flt, before_seq=cursors[-1], limit=size)
rows = page["rows"]
first = (len(cursors) - 1) * size

if rows:
    st.markdown(f"Rows **{first + 1:,}-{first + len(rows):,}** of **{total:,}** matching, newest first.")
    stamp(what="Rows")
    event = st.dataframe(
        [{"seq": r["seq"], "at": local_time(r["at"], with_seconds=True), "actor": r["actor"], "agent": r["agent"] or "",
          "event": r["event"], "action": r["action"] or "", "status": r["status"] or "", "ref": r["ref"] or "",
          "reasons": ", ".join(map(str, r["reasons"])),
          "data": _preview(r["data"])} for r in rows],
        hide_index=True, width="stretch", key="audit_table", on_select="rerun", selection_mode="single-row")
    picked = event.selection.rows
    if picked and picked[0] < len(rows):
        r = rows[picked[0]]
        with st.container(border=True):
            st.markdown(f"**Row {r['seq']}** · `{r['event']}` · {local_time(r['at'], with_seconds=True)} "
                        f"(stored as `{r['at']}`)")
            st.json({k: v for k, v in r.items() if v not in (None, {}, [], "")}, expanded=2)
    else:
        st.caption("Select a row to see all of it.")
elif total == 0 and flt == AuditFilter():
    st.info("The audit trail is empty: `alpha init` creates the database and records the first row.")
else:
    st.info("No audit rows match these filters." if total == 0 else "No more rows: go back to newer ones.")

b1, b2, b3, _ = st.columns([1, 1, 1, 4])
b1.button("Newest", key="audit_newest", on_click=_newest, disabled=len(cursors) == 1, width="stretch")
b2.button("Newer", key="audit_newer", on_click=_newer, disabled=len(cursors) == 1, width="stretch")
b3.button("Older", key="audit_older", on_click=_older, args=(page["next_before_seq"],),
          disabled=page["next_before_seq"] is None, width="stretch")

# ------------------------------------------------------------------------------------------ verification

st.divider()
st.subheader("Chain verification")
st.caption("Walks every row in order and recomputes its hash: names the first row that was edited, deleted or "
           "reordered. Takes a few seconds on a large trail, so it runs only when asked (`alpha audit verify` "
           "does the same from the command line).")
if st.button("Verify the hash chain", key="audit_verify", type="primary"):
    with st.spinner(f"Verifying {audit_log.count(app):,} audit rows..."):
        st.session_state["audit_verify_result"] = audit_log.verify_chain(app)
res = st.session_state.get("audit_verify_result")
if res:
    checked = (f"{res['rows']:,} row(s) checked in {res['seconds']:.2f} s at "
               f"{local_time(res['checked_at'], with_seconds=True)}")
    if res["ok"]:
        st.success(f"Chain intact: {checked}. Head row {res['head_seq']}, hash `{res['head_hash'][:16]}...`. "
                   "Rows written since then are not covered: verify again to include them.")
    else:
        st.error(f"Chain BROKEN at row {res['first_bad_seq']}: {res['problem']}. {checked}; the rows before it "
                 "verify. Find out who could write to the database, and keep a copy of it as evidence.")
        if res["bad_row"]:
            st.markdown(f"The row as it is stored now (row {res['bad_row']['seq']}):")
            st.json(res["bad_row"], expanded=2)
        else:
            st.markdown(f"Row {res['first_bad_seq']} is not in the table any more (deleted).")
else:
    st.info("Not verified in this session yet.")
