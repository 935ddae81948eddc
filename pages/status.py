"""Status (every role): what the engine is doing, as `alpha status` reports it."""
from __future__ import annotations

import streamlit as st

from datetime import timedelta

from console.runtime import get_app, md_escape, mode_word, require_role
from console.widgets import component_state, local_rows, mark, stamp, when
from engine.queries.report import weekly
from engine.adapters.users import ROLES

require_role(*ROLES)
app = get_app()
s = app.status()

st.title("Status")
comps = s.get("components") or {}
stamp(s["checked_at"], "Status")
st.caption(f"Database {md_escape((comps.get('database') or {}).get('url') or '?')} · "
           f"config {md_escape((comps.get('config') or {}).get('dir') or app.settings.config_dir)}")

kill = s["kill_switch"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rollout phase", s["phase"], help=f"changed {when(s['phase_changed_at'])} by {s['phase_changed_by']}",
          border=True)
c2.metric("Kill switch", "ON" if kill["on"] else "off", border=True,
          help=md_escape(kill["reason"] or "") + (" (forced by EMERGENCY_STOP)" if kill["source"] == "env" else ""))
sending = s.get("sending") or {}
c3.metric("Mode", s["mode"] if sending.get("state") == "ok" else mode_word(str(sending.get("label") or s["mode"]))[0],
          help=md_escape(sending.get("detail") or f"executor: {s['executor']}"), border=True)
c4.metric("Live sending", "yes" if s["live_sending"] else "no", border=True,
          help="assisted/autonomous phase, email flags allow sending, LIVE executor and kill switch off")

if sending.get("state") == "differs":
    st.warning(f"Where sends go: {md_escape(sending.get('detail'))}")
elif sending.get("state") in ("not_running", "unknown"):
    st.info(f"Where sends go: {md_escape(sending.get('detail'))}")
if not s["config_phase_matches"]:
    st.warning(f"config/production.json says rollout_phase.current = {s['config_phase']!r} but the control plane "
               f"is at {s['phase']!r} (the control plane wins; update the file to match).")
if s["maintenance"]["on"]:
    st.warning(f"Maintenance mode is on: {md_escape(s['maintenance']['reason'])}")
if s["awaiting_reconciliation"]:
    st.error(f"{s['awaiting_reconciliation']} send(s) await reconciliation: check the provider, then "
             "`alpha outbox resolve ID sent|failed --reason ...`.")
if s["permission_violations"]:
    st.warning(f"{s['permission_violations']} permission violation(s) recorded in the audit trail.")

st.subheader("Components")
if comps:
    st.table([{"component": md_escape(name.replace("_", " ")), "state": mark(component_state(c)),
               "detail": md_escape(c.get("detail") or ""),
               "last seen": when(c["seen_at"]) if c.get("seen_at") else ""} for name, c in comps.items()])
else:
    st.info("No component health reported.")

st.subheader("Usage vs limits")
u = s["usage"]
cols = st.columns(3)
for col, (label, key) in zip(cols, (("This month", "monthly"), ("Today", "daily"), ("Last 60 minutes", "hourly"))):
    used, limit = u[key]["used"], u[key]["limit"]
    with col.container(border=True):
        st.markdown(f"**{label}**: {used} / {limit}")
        st.progress(min(used / limit, 1.0) if limit else 1.0)
        if key == "daily" and u["daily"].get("binding"):
            st.caption(f"binding cap: {u['daily']['binding']} (warm-up phase {u['daily']['warmup_phase']})")
pd_ = u["per_domain_hourly"]
st.caption(f"Per-domain hourly limit {pd_['limit']}; minimum delay between sends from one mailbox "
           f"{u['min_delay_seconds']['limit']} s.")
if pd_["busiest"]:
    st.dataframe(pd_["busiest"], hide_index=True, width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Circuit breakers")
    st.dataframe(local_rows(({"breaker": b["name"], "state": b["state"].replace("_", " "),
                              "failures": b["consecutive_failures"], "retry at": b["retry_at"] or "",
                              "forced": b["forced"], "last error": b["last_error"] or ""} for b in s["breakers"]),
                            "retry at"), hide_index=True, width="stretch")
with right:
    st.subheader("Outbox")
    if s["outbox"]:
        st.dataframe([{"status": k, "count": v} for k, v in sorted(s["outbox"].items())], hide_index=True,
                     width="stretch")
    else:
        st.info("The outbox is empty.")
    st.markdown(f"Awaiting reconciliation: **{s['awaiting_reconciliation']}**")

st.subheader("Replies, last 7 days")
week = weekly(app, app.clock() - timedelta(days=7), app.clock() + timedelta(seconds=1))
rp, ob = week["replies"], week["outbound"]
r1, r2, r3, r4 = st.columns(4)
r1.metric("Replies (people)", rp["human"], border=True,
          help="interested, not now, not interested, unsubscribe, wrong person")
r2.metric("Positive", ob["positive_replies"], border=True, help="interested + referrals")
r3.metric("Out of office", rp["out_of_office"], border=True, help="paused until the return date; not a reply")
r4.metric("Auto-replies", rp["auto_replies"], border=True,
          help=f"not replies; {rp['bounce_notifications']} bounce notification(s) suppressed their address")
st.dataframe([{"class": k.replace("_", " "), "replies": n} for k, n in rp["by_class"].items()], hide_index=True,
             width="stretch", key="status_replies")

st.subheader("Audit trail")
st.markdown(f"{s['audit']['rows']} rows · head `{(s['audit']['head_hash'] or '')[:16]}`")
