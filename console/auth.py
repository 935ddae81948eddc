"""Console login: the form, the server-side session (engine.services.sessions) and the browser cookie that carries it.

The browser keeps one cookie, ``alpha_session``: a random token, nothing else (Path=/, SameSite=Strict,
Max-Age = the session's absolute lifetime, Secure on https). It is written by a small script (st.html with
JavaScript) rendered in the sidebar on every run while signed in, so no rerun removes it before it runs, and
read when a page opens (``st.context.cookies``): a reload, a direct link or a new tab resumes the session without
the form. Every run re-checks the session on the server, so a logout, a revocation, a password change or a
removed user ends it at the next click, in every tab; Log out also clears the cookie. After a logout (or a session
ended elsewhere) the page reloads once, so the login form starts from a fresh browser session.

Session state holds ``authentication_status``, ``username`` and ``name`` (what console.runtime reads) and the
token. No streamlit-authenticator here: its cookie was written after only some logins.

A click inside a fragment (an ``st.dialog``, a ``run_every`` panel) reruns only that fragment, not app.py, so
``authenticate`` does not run before it: ``recheck`` is the same server-side check for such a click, to be made
before any change is recorded (console.runtime.actor), so a session ended elsewhere or a role taken away cannot
finish a confirmation dialog that was opened before. A panel that refreshes on a timer (``run_every``) calls
``still_signed_in`` on each tick: the same check, at most every ``CHECK_EVERY_SECONDS``, so a tab whose session
ended elsewhere shows the login page within seconds instead of live state.

When the session cannot be checked (the database is down or restarting), the page says so (the database named,
never its password, and what to do) and shows nothing else: nothing can be seen or changed unchecked, and the
session is kept, so the same tab goes on by itself when the database is back (no new login).
"""
from __future__ import annotations

import json
import time

import streamlit as st

from console.runtime import PAGE_ROLES, get_app, md_escape
from console.widgets import clock_time
from engine.core.errors import AlphaError
from engine.services.sessions import ABSOLUTE_LIFETIME, COOKIE_NAME, Resumed, SessionService, valid_token
from engine.adapters.users import demo_mode

TOKEN_KEY = "alpha_session_token"
CLEAR_KEY = "alpha_clear_cookie"  # the login page clears the cookie (after a logout, or a cookie that is refused)
RELOAD_KEY = "alpha_reload"  # once, after a logout or a session ended elsewhere: a fresh page (no stale navigation)
CHECKED_KEY = "alpha_session_checked_at"  # time.monotonic() of the last good server-side check of this session
_STATE = ("authentication_status", "username", "name", TOKEN_KEY, CHECKED_KEY)
CHECK_EVERY_SECONDS = 5.0  # still_signed_in: a timer tick re-checks the session at most this often
RETRY_SECONDS = 5  # while the session cannot be checked, the page tries again this often


def sessions() -> SessionService:
    return SessionService.for_app(get_app())


def _client() -> str:
    try:
        ip = st.context.ip_address or ""
        agent = st.context.headers.get("User-Agent") or ""
    except Exception:  # noqa: BLE001 - no request context (tests)
        return ""
    return f"{ip} {agent}".strip()[:200]


def _cookie_token() -> str | None:
    try:
        token = st.context.cookies.get(COOKIE_NAME)
    except Exception:  # noqa: BLE001 - no request context (tests)
        return None
    return token if valid_token(token) else None


def _cookie_script(value: str, max_age: int, reload: bool = False) -> str:
    assert value == "" or valid_token(value)
    cookie = json.dumps(f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; SameSite=Strict")
    return ("<script>(function(){var c=" + cookie + ";"
            "if(location.protocol==='https:'){c+='; Secure';}document.cookie=c;"
            + ("window.location.reload();" if reload else "") + "})();</script>")


def keep_cookie() -> None:
    """Write the session cookie in this browser (render it on every run while signed in)."""
    token = st.session_state.get(TOKEN_KEY)
    if valid_token(token):
        st.html(_cookie_script(token, int(ABSOLUTE_LIFETIME.total_seconds())), unsafe_allow_javascript=True)


def _clear_cookie(reload: bool) -> None:
    if reload and not st.session_state.get(CLEAR_KEY):  # keep the cookie: the fresh page says why it is refused
        st.html("<script>window.location.reload();</script>", unsafe_allow_javascript=True)
    else:
        st.html(_cookie_script("", 0, reload), unsafe_allow_javascript=True)


def _sign_in(r, token: str) -> None:
    st.session_state["authentication_status"] = True
    st.session_state["username"] = r.username
    st.session_state["name"] = r.name or r.username
    st.session_state[TOKEN_KEY] = token
    st.session_state[CHECKED_KEY] = time.monotonic()
    st.session_state.pop(CLEAR_KEY, None)
    st.session_state.pop(RELOAD_KEY, None)


def _sign_out_state() -> None:
    for k in _STATE:
        st.session_state.pop(k, None)


def authenticate() -> Resumed:
    """The signed-in user (re-checked on the server on every run), or the login form and st.stop()."""
    svc = sessions()
    notice: Resumed | None = None
    token = st.session_state.get(TOKEN_KEY)
    if token:  # signed in during this browser session: still valid?
        r = _check_or_stop(svc, token)
        if r.username:
            _sign_in(r, token)
            return r
        _sign_out_state()
        st.session_state[RELOAD_KEY] = True
        notice = r
    cookie = _cookie_token()
    if cookie and cookie != token:  # a reload, a direct link, a new tab
        r = _check_or_stop(svc, cookie)
        if r.username:
            _sign_in(r, cookie)
            return r
        st.session_state[CLEAR_KEY] = True
        notice = notice or (r if r.reason != "unknown" else None)
    _login_page(svc, notice)
    st.stop()


def recheck(roles: tuple[str, ...] | list[str] | None = None) -> Resumed:
    """The signed-in user, checked on the server NOW (token, expiry, the users file, the password fingerprint) and,
    with ``roles``, holding one of them as the users file says now. Otherwise this browser session is signed out
    and the whole app runs again (from a fragment too), so the login page says why; nothing after the call runs."""
    token = st.session_state.get(TOKEN_KEY)
    try:
        r = sessions().check(token) if token else Resumed(None, reason="unknown", message="Log in to continue.")
    except AlphaError as e:  # fail closed: nothing after this call runs; the session is kept for later
        st.error(f"{_unchecked_text(e)} Nothing was changed: try again when the database is back.")
        st.stop()
    r = _ended_unless_same_user(r)
    if roles is not None and not set(r.roles) & set(roles):
        st.error(f"Refused: this needs the role {' or '.join(roles)}; {r.username} now has "
                 f"{', '.join(r.roles) or 'no role'}. Nothing was changed.")
        st.stop()
    st.session_state[CHECKED_KEY] = time.monotonic()
    return r


def _ended_unless_same_user(r: Resumed) -> Resumed:
    """``r`` when it is the signed-in user's valid session; otherwise this browser session is signed out and the
    whole app runs again (from a fragment too), so the login page says why: the call does not return."""
    if r.username and st.session_state.get("username") not in (None, r.username):  # another user's token: never
        r = Resumed(None, reason="unknown", message="Log in to continue.")
    if not r.username:
        _sign_out_state()
        st.session_state[RELOAD_KEY] = True
        st.rerun(scope="app")
    return r


def still_signed_in(every: float = CHECK_EVERY_SECONDS) -> bool:
    """For a panel that refreshes on a timer (``st.fragment(run_every=...)``): call it first on every tick. A tick
    reruns only the fragment, not app.py, so ``authenticate`` does not run before it; this re-checks the session on
    the server (one indexed read and the users file) at most every ``every`` seconds. When the session has ended
    (logged out in another tab, revoked, expired, the password changed, the user removed) or the page's role was
    taken away, this tab is signed out and the whole app runs again, so the login page (or the refusal) shows and
    the call does not return. True: show the panel. False: the session cannot be checked now (the database is
    down); the reason is shown in the panel's place, draw nothing else (fail closed) and try at the next tick."""
    token = st.session_state.get(TOKEN_KEY)
    if not token or st.session_state.get("authentication_status") is not True:
        _ended_unless_same_user(Resumed(None, reason="unknown", message="Log in to continue."))
    last = st.session_state.get(CHECKED_KEY)
    if isinstance(last, float) and 0 <= time.monotonic() - last < every:
        return True
    try:
        r = sessions().check(token)
    except AlphaError as e:
        st.warning(f"{_unchecked_text(e)} Nothing is shown until it can be checked; this panel tries again on its "
                   "own.")
        return False
    r = _ended_unless_same_user(r)
    roles = st.session_state.get(PAGE_ROLES)
    if roles and not set(r.roles) & set(roles):  # the page's role was taken away: its full run refuses the page
        st.rerun(scope="app")
    st.session_state[CHECKED_KEY] = time.monotonic()
    return True


def _unchecked_text(e: Exception) -> str:
    return f"Cannot check your session: {md_escape(e)}"


def _check_or_stop(svc: SessionService, token: str) -> Resumed:
    """``svc.check(token)``; when the session cannot be checked (the database is down), a page that says so and
    what to do, and st.stop(): no page, no change, no login form, and the session kept (not signed out), so the
    same tab goes on by itself when the database is back."""
    try:
        return svc.check(token)
    except AlphaError as e:
        st.title("Alpha operator console")
        st.error(f"{_unchecked_text(e)}")
        st.info(f"You are still signed in. Nothing can be seen or changed until the session can be checked. This "
                f"page tries again every {RETRY_SECONDS} seconds and goes on by itself when the database is back; "
                "Try again checks now. If it does not come back, tell whoever runs the database.")
        st.button("Try again", key="session_retry", type="primary")  # a click reruns the whole app
        _retry_when_back(token)
        st.stop()


@st.fragment(run_every=RETRY_SECONDS)
def _retry_when_back(token: str) -> None:
    """While the session cannot be checked: try again on a timer; the whole app runs again once it can."""
    try:
        sessions().check(token)
    except AlphaError:
        st.caption(f"Still unreachable (tried at {clock_time()}).")
        return
    st.rerun(scope="app")


def logout() -> None:
    """Revoke the session on the server and clear the cookie (on the login page the next run shows)."""
    token = st.session_state.get(TOKEN_KEY)
    if token:
        try:
            sessions().logout(token)
        except AlphaError as e:
            st.session_state[CLEAR_KEY] = True
            _sign_out_state()
            st.error(f"Logged out here, but the session could not be ended on the server: {e}")
            return
    _sign_out_state()
    st.session_state[CLEAR_KEY] = True
    st.session_state[RELOAD_KEY] = True


def _login_page(svc: SessionService, notice: Resumed | None) -> None:
    st.title("Alpha operator console")
    if notice is not None and notice.message:
        if notice.reason in ("user_removed", "users_file"):
            st.error(notice.message)
        else:
            st.warning(notice.message)
    with st.form("login"):
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if not (username or "").strip() or not password:
            st.error("Enter a username and a password.")
        else:
            try:
                r = svc.login(username, password, _client())
            except AlphaError as e:
                st.error(f"Login failed: {e}")
                r = None
            if r is not None and r.ok:
                _sign_in(r, r.token)
                st.rerun()
            if r is not None:
                st.session_state["authentication_status"] = False
                st.error(r.message)
    if demo_mode():
        st.info("Demo mode: log in as ae, approver, ops or admin with the demo password "
                "(ALPHA_DEMO_PASSWORD, or the one printed in the server log).")
    reload = bool(st.session_state.pop(RELOAD_KEY, False))
    if reload or st.session_state.get(CLEAR_KEY):
        _clear_cookie(reload)
