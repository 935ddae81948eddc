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
"""
from __future__ import annotations

import json

import streamlit as st

from console.runtime import get_app
from engine.core.errors import AlphaError
from engine.services.sessions import ABSOLUTE_LIFETIME, COOKIE_NAME, Resumed, SessionService, valid_token
from engine.adapters.users import demo_mode

TOKEN_KEY = "alpha_session_token"
CLEAR_KEY = "alpha_clear_cookie"  # the login page clears the cookie (after a logout, or a cookie that is refused)
RELOAD_KEY = "alpha_reload"  # once, after a logout or a session ended elsewhere: a fresh page (no stale navigation)
_STATE = ("authentication_status", "username", "name", TOKEN_KEY)


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
        r = svc.check(token)
        if r.username:
            _sign_in(r, token)
            return r
        _sign_out_state()
        st.session_state[RELOAD_KEY] = True
        notice = r
    cookie = _cookie_token()
    if cookie and cookie != token:  # a reload, a direct link, a new tab
        r = svc.check(cookie)
        if r.username:
            _sign_in(r, cookie)
            return r
        st.session_state[CLEAR_KEY] = True
        notice = notice or (r if r.reason != "unknown" else None)
    _login_page(svc, notice)
    st.stop()


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
