"""What every console page shares: the cached engine, the signed-in user, the role check and the header.

Pages call engine services only (no SQL here or in pages/). Roles are re-read from the users file on every
run, so removing a user or changing a role takes effect at the next click, whatever the session remembers.
"""
from __future__ import annotations

import os
import re
from typing import Callable

import streamlit as st

from console.widgets import age, clock_time, components_summary, mark
from engine.core.errors import AlphaError, ConfigError
from engine.adapters.users import ROLES, UsersFileInvalid, UsersFileMissing, roles_of

# Environment that selects which database/config/.env the engine uses: the cached App is keyed on it.
_ENGINE_ENV = ("DATABASE_URL", "ALPHA_CONFIG_DIR", "ALPHA_DATA_DIR", "ALPHA_ENV_FILE")
PAGE_ROLES = "_page_roles"  # the roles the page drawn last required (require_role): re-checked by actor()
ROLE_LABELS = {"ae": "Account executive", "approver": "Approver", "ops": "Operations", "admin": "Admin"}


@st.cache_resource(show_spinner="Starting the engine...")
def _cached_app(_key: tuple):
    from engine.app import App

    app = App()
    app.check_ready()
    return app


def get_app():
    """The engine, built once per server process (and per database/config selection); stops the page with an
    actionable message when the database or the configuration is not usable."""
    key = tuple(os.environ.get(k, "") for k in _ENGINE_ENV)
    try:
        return _cached_app(key)
    except ConfigError as e:
        st.error("The configuration is invalid; the engine refuses to run until it is fixed:\n\n"
                 + "\n".join(f"- {p}" for p in e.problems))
    except AlphaError as e:
        st.error(f"The engine cannot start: {e}")
    st.stop()


def actor() -> str:
    """How console changes are recorded in the audit trail. Every change asks for it, so it re-checks the session
    and the page's role on the server first (a click in a dialog or a fragment does not rerun app.py): a session
    ended elsewhere or a role taken away since the page was drawn changes nothing and shows the login page."""
    from console import auth

    return f"console:{auth.recheck(st.session_state.get(PAGE_ROLES)).username}"


def current_user() -> dict | None:
    """The signed-in user with roles as the users file says now, or None when nobody is signed in."""
    if st.session_state.get("authentication_status") is not True or not st.session_state.get("username"):
        return None
    username = st.session_state["username"]
    return {"username": username, "name": st.session_state.get("name") or username, "roles": roles_of(username)}


def require_role(*allowed: str) -> dict:
    """Stop the page unless the signed-in user holds one of ``allowed`` roles. Checked on the server on every
    run, so a page loaded directly (not through the navigation) is refused just the same."""
    unknown = [r for r in allowed if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; allowed: {ROLES}")
    try:
        user = current_user()
    except (UsersFileMissing, UsersFileInvalid) as e:
        st.error(f"Access refused: {e}")
        st.stop()
    if user is None:
        st.error("You are not signed in. Open the console's home page and log in.")
        st.stop()
    if not set(user["roles"]) & set(allowed):
        have = ", ".join(user["roles"]) or "no role (the user is no longer in the users file)"
        need = " or ".join(allowed)
        st.error(f"Access refused: this page needs the role {need}. You are signed in as "
                 f"{user['username']} with {have}. Ask an admin to change your role "
                 f"(`alpha users remove {user['username']}` then `alpha users add ... --role {allowed[0]}`).")
        st.stop()
    st.session_state[PAGE_ROLES] = list(allowed)
    return user


# Every ASCII punctuation character may be backslash-escaped in CommonMark: escaping them all leaves no
# emphasis, link, image, heading, list, table, HTML, entity, directive (:red[...]), emoji (:x:) or math ($).
_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def md_escape(text: object) -> str:
    """Text that Streamlit's markdown (st.markdown, st.error, captions...) shows exactly as written: for reasons,
    error messages and anything else a person or a lead typed."""
    return _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text))


def run_action(fn: Callable, *args, **kwargs):
    """Run an engine change; show an AlphaError as a message a person can act on (as written: it may quote
    user input). Returns (ok, result)."""
    try:
        return True, fn(*args, **kwargs)
    except AlphaError as e:
        st.error(md_escape(e))
        return False, None


def reason_and_confirm(label: str, key: str, fn: Callable, *args) -> str | None:
    """The body of a confirmation dialog for a change that needs a reason: a required reason, a confirm and a
    cancel button (keys ``<key>_reason``, ``<key>_confirm``, ``<key>_cancel``). On confirm it runs
    ``fn(*args, reason, actor())`` through run_action. Returns "done", "cancelled" or None (nothing yet, or refused
    with the message shown)."""
    reason = st.text_area("Reason (required, recorded in the audit trail)", key=f"{key}_reason")
    c1, c2 = st.columns(2)
    if c1.button(label, type="primary", key=f"{key}_confirm"):
        if not (reason or "").strip():
            st.error("A reason is required: say why, so the next person knows.")
        elif run_action(fn, *args, reason.strip(), actor())[0]:
            return "done"
    if c2.button("Cancel", key=f"{key}_cancel"):
        return "cancelled"
    return None


def follow_control(kill_on: bool, kill_source, kill_changed_at, phase: str, phase_changed_at) -> None:
    """Called by every fragment that re-reads the control plane (the header, the kill switch panel): when the kill
    switch or the phase changed since the page was drawn, the WHOLE page runs again, so no part of it (a gate row
    'kill switch off', the history, a button) goes on contradicting the new state. Times as
    ``engine.core.clock.iso``."""
    seen = (bool(kill_on), kill_source or "", str(kill_changed_at or ""), phase, str(phase_changed_at or ""))
    before = st.session_state.get("_control_seen")
    st.session_state["_control_seen"] = seen
    if before is not None and before != seen and _fragment_only_run():
        st.rerun()  # from inside a fragment: the whole app (a full run draws everything fresh anyway, and
        # rerunning it would drop the click that started it)


def _fragment_only_run() -> bool:
    """Whether this script run re-runs fragments only (a timer tick), not the whole page."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return bool(ctx and ctx.fragment_ids_this_run)
    except Exception:  # noqa: BLE001 - an internal API: without it, never force a rerun
        return False


def _header_body() -> None:
    app = get_app()
    try:
        s = app.status()
    except Exception as e:  # noqa: BLE001 - the header must never take the page down
        st.warning(f"Status unavailable: {md_escape(e)} (checked {clock_time()})")
        return
    kill = s["kill_switch"]
    follow_control(kill["on"], kill["source"], kill["changed_at"], s["phase"], s["phase_changed_at"])
    c1, c2, c3, c4, c5 = st.columns([0.8, 1.4, 0.9, 2.1, 1.0])
    c1.markdown(f"**Phase:** `{s['phase']}`")
    if kill["on"]:
        why = "forced by EMERGENCY_STOP" if kill["source"] == "env" else md_escape(kill["reason"] or "no reason")
        c2.markdown(f":red-background[**KILL SWITCH ON**] ({why})")
    else:
        c2.markdown(":green-badge[kill switch off]")
    badge, tip = mode_badge(s)
    c3.markdown(badge, help=md_escape(tip) or None)
    open_ = [b for b in s.get("breakers") or [] if b.get("state") != "CLOSED"]
    breakers = ("breakers: " + ", ".join(f"{md_escape(b['name'])} {mark(str(b['state']).lower())}" for b in open_)
                if open_ else "breakers: " + mark("closed", "all closed"))
    c4.markdown(breakers + "  \n" + components_summary(s.get("components") or {}))
    c5.caption(f"live sending: {'yes' if s['live_sending'] else 'no'}  \n"
               f"checked {clock_time(s.get('checked_at'))} ({age(s.get('checked_at'))})")


def mode_word(label: str) -> tuple[str, str]:
    """(the mode word, the rest) of a sending label: "SANDBOX, not running" -> ("SANDBOX", "not running"); "LIVE by
    the worker, SANDBOX here" -> ("LIVE", "by the worker, SANDBOX here"). The word fits a badge or a metric; the
    rest goes beside it in small text, so neither is cut off in a narrow column."""
    word, _, rest = (label or "unknown").partition(" ")
    word = word.rstrip(",:")
    return word, rest.strip(" ,:")


def mode_badge(s: dict) -> tuple[str, str]:
    """(markdown, tooltip) of where sends go, as the running workers report it (status()["sending"]): LIVE orange,
    SANDBOX blue when every running worker agrees with this console; orange when they disagree (with each other or
    with the console); grey, "not running", when no worker runs (the mode is then only the configured one). The
    badge holds the mode word; what qualifies it follows in small text."""
    sending = s.get("sending") or {}
    mode, state = str(s.get("mode") or "unknown"), sending.get("state") or "unknown"
    detail = str(sending.get("detail") or "")
    if state == "ok":
        return (f":orange-badge[**{mode}**]" if mode == "LIVE" else f":blue-badge[{mode}]"), detail
    label = str(sending.get("label") or mode).replace("[", "(").replace("]", ")")  # the engine's words, in a badge
    word, rest = mode_word(label)
    rest = f" :small[{md_escape(rest)}]" if rest else ""
    if state == "differs":
        return f":orange-badge[**{word}**]{rest}", detail
    return f":gray-badge[{word}]{rest}", detail


@st.fragment(run_every=5)
def header() -> None:
    """Phase, kill switch (EMERGENCY_STOP named), SANDBOX/LIVE, open circuit breakers and component health on every
    page, refreshed every 5 seconds. A tab whose session ended meanwhile (logout elsewhere, revoked, password
    changed, role taken) is signed out by the next tick instead of showing live state."""
    from console.auth import still_signed_in  # local import: console.auth imports this module

    if not still_signed_in():
        return
    with st.container(key="alpha_header"):
        _header_body()
