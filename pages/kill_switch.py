"""Kill switch & rollout (ops, admin): the kill switch, the rollout phase ladder and the last changes.

The kill switch block is a fragment that re-reads the database every 2 seconds: what it shows is always the
database's state (and EMERGENCY_STOP), even when someone flips it from the CLI while this page is open. It keeps
no widget state of its own: one button whose label and action follow the state read on that run.
"""
from __future__ import annotations

import streamlit as st

from console.auth import still_signed_in
from console.runtime import (actor, follow_control, get_app, md_escape, reason_and_confirm, require_role,
                             run_action)
from console.widgets import age, clock_time, local_time, mark, stamp
from engine.core.clock import iso
from engine.core.config import PHASES
from engine.queries.control_history import recent_changes

KILL_REFRESH_SECONDS = 2
# Red only for danger: the panel when the kill switch is on and the button that turns it on.
_DANGER_CSS = """<style>
.st-key-kill_panel_on { background: #fef2f2; border: 3px solid #b91c1c; border-radius: 0.6rem; padding: 1rem; }
.st-key-kill_panel_off { background: #f0fdf4; border: 2px solid #15803d; border-radius: 0.6rem; padding: 1rem; }
.st-key-kill_button_on button { background: #b91c1c; border-color: #b91c1c; color: #fff; min-height: 3.5rem; }
.st-key-kill_button_on button:hover { background: #991b1b; border-color: #991b1b; color: #fff; }
.st-key-kill_button_off button { min-height: 3.5rem; }
.st-key-kill_button_on button p, .st-key-kill_button_off button p { font-size: 1.2rem; font-weight: 700; }
</style>"""

require_role("ops", "admin")
app = get_app()
ctl = app.control.state()

st.title("Kill switch & rollout")
st.html(_DANGER_CSS)

# ------------------------------------------------------------------------------------------ kill switch


def _request_kill(target: bool) -> None:
    """The button's callback: the target is bound when the button was drawn (from the database's state then)."""
    st.session_state["kill_pending"] = target
    st.session_state.pop("kill_reason", None)


def _clear_kill() -> None:
    st.session_state.pop("kill_pending", None)
    st.session_state.pop("kill_reason", None)


@st.fragment(run_every=KILL_REFRESH_SECONDS)
def kill_switch() -> None:
    """The kill switch as the database (and EMERGENCY_STOP) says now, re-read every run of this fragment; a tab whose
    session has ended shows the login page instead (console.auth.still_signed_in)."""
    if not still_signed_in():
        return
    kill = app.control.kill()
    now_ctl = app.control.state()
    # changed since the page was drawn (the CLI, another console)? then the whole page runs again: the header, the
    # gate's "kill switch off" row and the history must not contradict this panel
    follow_control(kill.on, kill.source, iso(now_ctl.kill_changed_at), now_ctl.phase, iso(now_ctl.phase_changed_at))
    locked = kill.source == "env"  # EMERGENCY_STOP: nothing here can turn it off
    who = md_escape(now_ctl.kill_actor or "-")
    changed = (f"{local_time(now_ctl.kill_changed_at, with_seconds=True)} ({age(now_ctl.kill_changed_at)})"
               if now_ctl.kill_changed_at else "never")
    with st.container(key="kill_panel_on" if kill.on else "kill_panel_off"):
        if kill.on:
            st.markdown("## :red[:material/block: KILL SWITCH ON - nothing is sent]")
            if locked:
                st.markdown(f"**Forced on by EMERGENCY_STOP** ({md_escape(kill.reason)}).")
            else:
                st.markdown(f"**Why:** {md_escape(kill.reason or 'no reason recorded')}  \n"
                            f"**By:** {who} · **when:** {changed}")
        else:
            st.markdown("## :green[:material/check_circle:] Kill switch off")
            st.markdown("Sending is governed by the rollout phase and the guardrails.  \n"
                        f"Last changed {changed} by {who}"
                        + (f": {md_escape(now_ctl.kill_reason)}" if now_ctl.kill_reason else ""))
        if kill.on:
            label, target, key = "Turn kill switch OFF (resume sending)", False, "kill_button_off"
        else:
            label, target, key = "TURN KILL SWITCH ON (stop all sending)", True, "kill_button_on"
        if st.button(label, key=key, width="stretch", on_click=_request_kill, args=(target,),
                     disabled=locked, icon=":material/power_settings_new:",
                     help="Locked on by EMERGENCY_STOP." if locked else "Opens a confirmation that asks for a reason."):
            st.rerun()  # the whole page: the confirmation dialog lives outside this fragment
        st.caption(f"Read from the database at {clock_time()} (refreshes every {KILL_REFRESH_SECONDS} s).")
    if locked:
        st.warning("It cannot be turned off from the console or the CLI while EMERGENCY_STOP is set: remove "
                   "`EMERGENCY_STOP=true` from the environment of the running processes and from `.env`, then turn "
                   "the kill switch off here with a reason.")


@st.dialog("Confirm kill switch change", dismissible=False)
def _confirm_kill(target: bool) -> None:
    kill = app.control.kill()
    if kill.on == target:  # changed elsewhere (the CLI, another console) since the button was drawn
        st.info(f"The kill switch is already {'ON' if target else 'off'} "
                f"(changed by {md_escape(app.control.state().kill_actor or '-')}). Nothing to do.")
        if st.button("Close", key="kill_close"):
            _clear_kill()
            st.rerun()
        return
    if target:
        st.markdown("Turn the kill switch **ON**? Every worker stops sending at its next gateway decision.")
    else:
        st.markdown("Turn the kill switch **OFF**? Sending resumes as far as the phase and guardrails allow.")
    outcome = reason_and_confirm("Turn kill switch ON" if target else "Turn kill switch OFF", "kill",
                                 app.control.set_kill, target)
    if outcome:
        _clear_kill()
        if outcome == "done":
            st.session_state["flash"] = f"Kill switch turned {'ON' if target else 'off'}."
        st.rerun()


kill_switch()
if "kill_pending" in st.session_state:
    _confirm_kill(st.session_state["kill_pending"])
if st.session_state.get("flash"):
    st.success(st.session_state.pop("flash"))

st.divider()

# ------------------------------------------------------------------------------------------ rollout phase

st.header("Rollout phase")
current = ctl.phase
i = PHASES.index(current)
for col, (n, p) in zip(st.columns(len(PHASES)), enumerate(PHASES)):
    with col.container(border=True):
        if n == i:
            st.markdown(f"### :blue[:material/arrow_right: {p}]\ncurrent since "
                        f"{local_time(ctl.phase_changed_at)} ({age(ctl.phase_changed_at)})")
        elif n < i:
            st.markdown(f"### :gray[{p}]\nbelow")
        else:
            st.markdown(f"### {p}\n{'next' if n == i + 1 else 'later'}")
if ctl.phase_reason:
    st.caption(f"Set by {md_escape(ctl.phase_actor)}: {md_escape(ctl.phase_reason)}")

def phase_change(target: str, way: str, label: str, primary: bool = False, disabled: bool = False) -> None:
    """A required reason and the button that moves the phase to ``target`` (keys phase_<way>_reason, phase_<way>)."""
    reason = st.text_input(f"Reason for moving {way} (required)", key=f"phase_{way}_reason", disabled=disabled)
    if st.button(label, key=f"phase_{way}", type="primary" if primary else "secondary", disabled=disabled):
        if not reason.strip():
            st.error("A reason is required to change the phase.")
            return
        ok, r = run_action(app.control.set_phase, target, reason.strip(), actor())
        if ok:
            st.session_state["flash"] = f"Phase {r['before']} -> {r['after']}."
            st.session_state.pop(f"phase_{way}_reason", None)
            st.rerun()


up_col, down_col = st.columns(2)
with up_col:
    st.subheader("Move up")
    if i + 1 >= len(PHASES):
        st.info(f"{current} is the last phase.")
    else:
        nxt = PHASES[i + 1]
        checks = app.control.gate_for(nxt)
        passed = all(c.passed for c in checks)
        st.markdown(f"Go/no-go gate for **{nxt}** ({sum(not c.passed for c in checks)} of {len(checks)} failing):")
        with st.container(border=True, key="phase_gate"):
            for c in sorted(checks, key=lambda c: c.passed):  # failures first, each reason in full
                st.markdown(f"{mark('pass' if c.passed else 'fail')} **{md_escape(c.name)}**: {md_escape(c.detail)}")
        stamp(what="Gate checked")
        if not passed:
            st.warning(f"The gate for {nxt} fails: fix the failing checks first. A break-glass override is only "
                       f"possible from the CLI: `alpha phase set {nxt} --force --reason ...`.")
        phase_change(nxt, "up", f"Move up to {nxt}", primary=True, disabled=not passed)
with down_col:
    st.subheader("Move down")
    if i == 0:
        st.info(f"{current} is the first phase.")
    else:
        target = st.selectbox("Down to", list(reversed(PHASES[:i])), key="phase_down_target",
                              help="Down takes effect at once, no gate.")
        phase_change(target, "down", f"Move down to {target} now")

st.divider()
st.subheader("Last changes")
changes = recent_changes(app, ("control.kill_switch", "control.phase"), 15)
if changes:
    st.dataframe([{"at": local_time(c["at"], with_seconds=True), "change": c["event"].removeprefix("control."),
                   "to": c["status"], "by": c["actor"], "reason": c["reason"] or "", "forced": c["forced"]}
                  for c in changes],
                 hide_index=True, width="stretch")
else:
    st.info("No kill switch or phase changes recorded yet.")
stamp(what="Rollout phase and last changes")
