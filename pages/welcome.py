"""Welcome (every role): "Try this as each role", the first page in demo mode (`make run`).

What each demo user (ae, approver, ops, admin) can do here, step by step, with a link to each page the signed-in
user may open (the others say which user to log in as). The live counts come from engine services: the sends
waiting for approval, the blind-review set's progress and the rollout phase.
"""
from __future__ import annotations

import os

import streamlit as st

from console.nav import NAV
from console.runtime import ROLE_LABELS, get_app, md_escape, require_role
from engine.services.blind_review import latest_set, next_item
from engine.services.control import live_sending_allowed
from engine.adapters.users import ROLES, demo_mode

user = require_role(*ROLES)
app = get_app()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = {s.module: s for s in NAV}
mine = set(user["roles"])

st.title("Welcome")
st.subheader("Try this as each role")
if demo_mode():
    st.markdown("This console runs in **demo mode** on your machine (`make run`). Log out and back in as each "
                "demo user to see what that role does: `ae`, `approver`, `ops` and `admin`, all with the demo "
                "password printed in the terminal where `make run` started. Every send goes to the local GHL "
                "sandbox: nothing reaches a real inbox.")
else:
    st.markdown("What each role does in this console, step by step. Your role decides which pages you see.")
st.caption(f"Signed in as {md_escape(user['username'])} "
           f"({', '.join(ROLE_LABELS.get(r, r) for r in user['roles'])}).")

# live state, through engine services only
phase = app.control.state().phase
pending = app.approvals.queue(status="pending", kind="send", limit=0)["total"]
sends = live_sending_allowed(phase, app.settings)  # this configuration and phase let an approved send leave
set_id = latest_set(app)
item = next_item(app, set_id) if set_id else None
c1, c2, c3 = st.columns(3)
c1.metric("Rollout phase", phase, border=True)
c2.metric("Sends waiting for approval", pending, border=True)
c3.metric("Blind review", "no set yet" if set_id is None else
          ("done" if item is None else f"{item.labeled} of {item.total} labelled"), border=True)
if pending == 0 and phase == "shadow" and demo_mode():
    st.info("The approval queue is empty because the rollout is in shadow (nothing is sent). To give the approver "
            "work, restart with `make run DEMO=assisted`: the demo steps into assisted (a recorded demo "
            "override) and queues the day's sends for approval.")
elif pending and not sends:
    st.warning(f"{pending} sends wait for approval, but this console's configuration does not send "
               "(email_behavior in production.json), so an approved send is held by the gate, not sent"
               + (". Restart with `make run DEMO=assisted`: it runs with the demo configuration, which sends "
                  "to the local GHL sandbox." if demo_mode() else "."))


def link(module: str, label: str | None = None) -> None:
    """A link to a page the signed-in user may open, else which demo user may."""
    spec = SPECS[module]
    if mine & set(spec.roles):
        try:
            st.page_link(os.path.join(ROOT, "pages", f"{module}.py"), label=label or spec.title, icon=spec.icon)
            return
        except Exception:  # noqa: BLE001 - outside the navigation (a page loaded on its own): plain text instead
            pass
    who = " or ".join(f"`{r}`" for r in spec.roles)
    st.caption(f"{spec.title}: log in as {who}")


ROLE_STEPS = {
    "ae": ("Account executive (user `ae`)", [
        ("blind_review", "Open Blind review: one lead's facts at a time. The AI's tier, score and reasoning are "
                         "never shown to you, so your judgement stays your own."),
        ("blind_review", "Label the lead: Tier 1, 2, 3 or Disqualified (keys 1, 2, 3, D; U undoes). Add a note "
                         "when the reason is not obvious."),
        ("status", "Label a few more, then look at Status: your labels feed the AI-vs-human comparison that the "
                   "assisted phase's go/no-go gate reads."),
    ]),
    "approver": ("Approver (user `approver`)", [
        ("approvals", "Open Approvals: the sends waiting for a human, most urgent first, with the SLA left."),
        ("approvals", "Select one: read the rendered email beside the gate's findings and the lead's facts."),
        ("approvals", "Approve it (or reject with a reason, or edit: an edit is re-checked and someone else then "
                      "approves). " + ("The worker sends an approved email within seconds, into the local GHL "
                                       "sandbox." if sends else "In this phase and configuration nothing is "
                                       "sent: the gate holds an approved email.")),
        ("shadow_review", "Open Shadow review: the emails the shadow run drafted, and why each was allowed or "
                          "refused. Comparison and Readiness show how close the rollout is to the next phase."),
    ]),
    "ops": ("Operations (user `ops`)", [
        ("kill_switch", "Open Kill switch & rollout: turn the kill switch ON with a reason. Every send stops at "
                        "once, the worker's included; turn it off again."),
        ("kill_switch", "On the same page: the rollout phase and its go/no-go gate, failures first. A step up "
                        "goes through the gate; an override needs a reason and is recorded."),
        ("breakers", "Open Circuit breakers and Deliverability: the external APIs and the sending domains."),
        ("audit_log", "Open Audit log: every change you just made, in a hash-chained trail."),
    ]),
    "admin": ("Admin (user `admin`)", [
        ("status", "Every page is open to you: Status and the header show the health of each part (database, "
                   "worker, webhook receiver, scheduler)."),
        ("integrations", "Open Integrations & settings: GHL (here the local sandbox), Slack, the LLM chain."),
        ("leads", "Open Leads: the demo leads, their scores and where each is in its sequence. Console users "
                  "are managed on the server with `alpha users add`."),
    ]),
}

for role in ROLES:
    title, steps = ROLE_STEPS[role]
    with st.container(border=True):
        here = " (you)" if role in mine else ""
        st.markdown(f"**{title}**{here}")
        for n, (_module, text) in enumerate(steps, 1):
            st.markdown(f"{n}. {text}")
        shown = []
        for module, _ in steps:
            if module not in shown:
                shown.append(module)
                link(module)
