"""Kill switch & rollout (ops, admin): the kill switch, the rollout phase ladder and the last changes."""
from __future__ import annotations

import streamlit as st

from console.runtime import actor, get_app, md_escape, reason_and_confirm, require_role, run_action
from engine.config import PHASES
from engine.history import recent_changes

require_role("ops", "admin")
app = get_app()
kill = app.control.kill()
ctl = app.control.state()
locked = kill.source == "env"  # EMERGENCY_STOP: nothing here can turn it off

st.title("Kill switch & rollout")

# ------------------------------------------------------------------------------------------ kill switch

if kill.on:
    st.error(f"## :material/block: KILL SWITCH ON: nothing is sent\n\n{md_escape(kill.reason or '')}")
else:
    st.success("## Kill switch off\n\nSending is governed by the rollout phase and the guardrails.")

if locked:
    st.warning(f"**Forced on by EMERGENCY_STOP** ({md_escape(kill.reason)}). It cannot be turned off from the console or "
               "the CLI while that is set: remove `EMERGENCY_STOP=true` from the environment of the running "
               "processes and from `.env`, then turn the kill switch off here with a reason.")


def _request_kill() -> None:
    st.session_state["kill_pending"] = bool(st.session_state["kill_toggle"])


def _clear_kill() -> None:
    st.session_state.pop("kill_pending", None)
    st.session_state.pop("kill_reason", None)


@st.dialog("Confirm kill switch change", dismissible=False)
def _confirm_kill(target: bool) -> None:
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


if "kill_pending" not in st.session_state:
    st.session_state["kill_toggle"] = kill.on  # the toggle always shows the real state
st.toggle("**KILL SWITCH** (on = stop all sending)", key="kill_toggle", on_change=_request_kill,
          disabled=locked and kill.on,
          help="Opens a confirmation that asks for a reason." if not locked
          else "Locked on by EMERGENCY_STOP.")
st.caption(f"Last changed {ctl.kill_changed_at or 'never'} by {ctl.kill_actor or '-'}")
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
            st.markdown(f"### :blue[● {p}]\ncurrent since {ctl.phase_changed_at}")
        elif n < i:
            st.markdown(f"### :gray[{p}]\nbelow")
        else:
            st.markdown(f"### {p}\n{'next' if n == i + 1 else 'later'}")
if ctl.phase_reason:
    st.caption(f"Set by {ctl.phase_actor}: {ctl.phase_reason}")



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
        st.markdown(f"Go/no-go gate for **{nxt}**:")
        st.dataframe([{"check": c.name, "result": "pass" if c.passed else "FAIL", "detail": c.detail}
                      for c in checks], hide_index=True, width="stretch")
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
    st.dataframe([{"at": c["at"], "change": c["event"].removeprefix("control."), "to": c["status"],
                   "by": c["actor"], "reason": c["reason"] or "", "forced": c["forced"]} for c in changes],
                 hide_index=True, width="stretch")
else:
    st.info("No kill switch or phase changes recorded yet.")
