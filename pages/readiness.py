"""Readiness (approver, ops, admin): the 0-100 score from live checks, its categories, the go/no-go table with
each piece of evidence and its age, and what to do next to fix each failing check."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from console.runtime import get_app, md_escape, require_role, run_action
from console.widgets import age, local_time, mark, stamp
from engine.services.readiness import readiness, verify_audit_chain

require_role("approver", "ops", "admin")
app = get_app()

# What fixes each failing check: (what to do, the command to run or None when it is done in the console/config).
NEXT_STEPS: dict[str, tuple[str, str | None]] = {
    "audit chain verifies": (
        "Find the first edited, deleted or reordered row, then investigate who changed the database; the trail "
        "cannot be repaired in place (restore the audit table from a backup).", "alpha audit verify"),
    "no permission violations (24 h)": (
        "Open the Audit log page, filter on the event permission.violation, and fix the agent or "
        "config/permissions.json so it only asks for what its role grants.", None),
    "config matches phase": (
        "Make config/production.json agree with the control plane: rollout_phase.current = the current phase, "
        "and email_behavior actually_send=false / shadow_mode=true in shadow and parallel "
        "(true / false in assisted and autonomous); then restart the engine. Check the files with:",
        "alpha config-check"),
    "integrations verified": (
        "Configure real GHL credentials and a Slack webhook, then run the integration checks (or press Run "
        "verify now on the Integrations & settings page); only a run ready for live phases counts, for 24 h "
        "(a local sandbox or an unconfigured integration never does).", "alpha verify"),
    "canary passing": ("Run the canary: a synthetic internal lead through the whole pipeline.", "alpha canary"),
    "no failed canary": (
        "The latest canary failed: read which probe failed in its evidence, fix it, then run the canary again "
        "(a passing run clears this).", "alpha canary"),
    "unsubscribe tested": ("Run the unsubscribe test (RFC 8058 headers, suppression, one-click).",
                           "alpha unsubscribe-test"),
    "kill switch tested": (
        "Drill the kill switch: flip it on and back off, with a reason, on the Kill switch & rollout page "
        "(ops), or from the command line:", 'alpha kill on --reason "weekly drill" && '
                                            'alpha kill off --reason "drill over"'),
    "approver identified": (
        "Fix config/approvers.json: a primary and a different backup, an SLA and coverage hours for every action "
        "type (ops and admins see the exact problems on the Integrations & settings page).", None),
    "templates approved": (
        "Review the draft templates in config/templates/pack.json and set their status to approved once "
        "signed off (ops and admins see them on the Integrations & settings page).", None),
    "AI vs human agreement": (
        "Draw a blind review set, have an AE label it on the Blind review page, then read the result on the "
        "Comparison page.", "alpha compare generate 60"),
    "domain health above 70": (
        "Record each sending domain's current reputation score from the provider at least weekly (a score older "
        "than 7 days is not evidence); a domain at 70 or below must recover first (pause its sends). The "
        "Deliverability page shows each domain's health and why it dropped.",
        'alpha domains list\nalpha domains set DOMAIN SCORE --reason "provider dashboard"'),
    "breakers closed": (
        "Check the failing API, then close the breaker with a reason on the Circuit breakers page (ops), or:",
        'alpha breakers close NAME --reason "API healthy again"'),
    "no sends awaiting reconciliation": (
        "List the sends in doubt, ask the provider what happened to each, and record it:",
        "alpha outbox reconcile\nalpha outbox resolve ID --outcome sent|failed --reason \"...\""),
    "shadow validation complete": ("Run the pipeline in shadow over at least 20 leads (nothing is sent).",
                                   "alpha shadow run --contacts 50"),
}


st.title("Readiness")
with st.spinner("Gathering the evidence..."):
    ok, r = run_action(readiness, app)
if not ok:
    st.stop()
now = app.clock()
stamp(now, "Evidence gathered")

# ------------------------------------------------------------------------------------------ score and gate

left, right = st.columns([1, 1.3])
with left:
    gauge = go.Figure(go.Indicator(
        mode="gauge+number", value=r["score"], number={"suffix": " / 100"},
        title={"text": "Readiness score"},
        gauge={"axis": {"range": [0, 100]}, "bar": {"color": "#1f4e79"},
               "steps": [{"range": [0, 50], "color": "#f4c7c3"}, {"range": [50, 80], "color": "#fce8b2"},
                         {"range": [80, 100], "color": "#b7e1cd"}]}))
    gauge.update_layout(height=260, margin={"t": 60, "b": 10, "l": 30, "r": 30})
    st.plotly_chart(gauge, key="gauge")
with right:
    st.metric("Rollout phase", r["phase"], border=True)
    nxt = r["next_phase"]
    if nxt is None:
        st.success(f"{r['phase']} is the last phase.")
    elif r["next_phase_allowed"]:
        st.success(f"The go/no-go gate for **{nxt}** passes: it can be entered from the Kill switch & rollout "
                   "page.")
    else:
        st.warning(f"The go/no-go gate for **{nxt}** is closed. Blocking:")
        st.markdown("\n".join(f"- {mark('fail')} {md_escape(b)}" for b in r["blocking"]))

# ------------------------------------------------------------------------------------------ categories

st.subheader("Categories")
cats = r["categories"]
names = [c["name"] for c in cats][::-1]  # plotly draws the first bar at the bottom
bars = go.Figure()
bars.add_bar(y=names, x=[c["max"] for c in cats][::-1], orientation="h", name="max", marker_color="#e0e0e0",
             hoverinfo="skip")
bars.add_bar(y=names, x=[c["score"] for c in cats][::-1], orientation="h", name="score", marker_color="#1f4e79",
             text=[f"{c['score']} / {c['max']}" for c in cats][::-1], textposition="outside")
bars.update_layout(barmode="overlay", height=300, margin={"t": 10, "b": 10, "l": 10, "r": 40},
                   xaxis={"title": "points", "range": [0, max(c["max"] for c in cats) + 4]}, showlegend=False)
st.plotly_chart(bars, key="categories")
for c in cats:
    passed = sum(ch["passed"] for ch in c["checks"])
    with st.expander(f"{c['name']}: {c['score']} / {c['max']} ({passed} of {len(c['checks'])} checks pass)"):
        st.table([{"check": md_escape(ch["name"]), "result": mark("pass" if ch["passed"] else "fail"),
                   "points": f"{ch['points']} / {ch['max']}", "age": age(ch["at"], now),
                   "evidence": md_escape(ch["evidence"]),
                   "recorded": local_time(ch["at"], with_seconds=True) if ch["at"] else ""}
                  for ch in sorted(c["checks"], key=lambda ch: ch["passed"])])

# ------------------------------------------------------------------------------------------ go / no-go

st.subheader(f"Go / no-go{f' for {nxt}' if nxt else ''}")
# failures first (the ones required for the next phase first), each piece of evidence in full (a table that wraps)
rows = sorted(r["go_no_go"], key=lambda g: (g["status"] == "pass", not g["required"]))
st.table([{"criterion": md_escape(g["criterion"]), f"required for {nxt or '-'}": "yes" if g["required"] else "",
           "status": mark(g["status"]), "age": age(g["at"], now), "evidence": md_escape(g["evidence"]),
           "recorded": local_time(g["at"], with_seconds=True) if g["at"] else ""} for g in rows])
st.caption("Recorded is when the evidence was produced; the audit chain's is its last full walk (readiness then "
           "checks only the rows added since, and walks it all again after 24 h).")
if st.button("Walk the whole audit chain now", key="walk_chain",
             help="Verifies every audit row (seconds at 100,000 rows) and records the result as evidence."):
    with st.spinner("Walking the audit chain..."):
        done, res = run_action(verify_audit_chain, app)
    if done:
        st.session_state["readiness_flash"] = (
            ("The audit chain verifies: " if res[0] else "The audit chain is BROKEN: ") + res[1])
        st.rerun()
if st.session_state.get("readiness_flash"):
    st.info(st.session_state.pop("readiness_flash"))

# ------------------------------------------------------------------------------------------ next steps

st.subheader("What to do next")
required = {g["criterion"] for g in r["go_no_go"] if g["required"]}
failing = [ch for c in cats for ch in c["checks"] if not ch["passed"]]
failing.sort(key=lambda ch: ch["name"] not in required)
if not failing:
    st.success("Every check passes. Nothing to fix.")
for ch in failing:
    with st.container(border=True):
        tag = f" (required for {nxt})" if ch["name"] in required else ""
        st.markdown(f"**{ch['name']}**{tag}")
        st.text(f"Now: {ch['evidence']}")
        what, command = NEXT_STEPS.get(ch["name"], ("No fix is documented for this check: see its evidence.",
                                                    None))
        st.markdown(what)
        if command:
            st.code(command, language="bash")
