"""Second review of issue 13 item 2 (sessions): panels that refresh on a timer in a tab whose session has ended.

A timer tick (``st.fragment(run_every=...)``) reruns only the fragment, not app.py, so the session check of every
run (console/auth.authenticate) did not happen: after a logout in another tab, ``alpha users revoke``, a password
change or a removal, the kill switch panel and the breaker cards went on showing live state (and their buttons)
in that tab until the next full run. Now each tick calls ``console.auth.still_signed_in()`` (a server-side check at
most every few seconds): an ended session signs the tab out and the whole app runs again (the login page).

AppTest cannot fire a timer, so these tests run the fragment as its first (inline) run does, with the last check
made long enough ago; tests/e2e/test_review2_sessions_browser.py watches a real timer in a real browser.
"""
from __future__ import annotations

import time

import pytest

from tests.console.conftest import no_exception, text


def _age_the_last_check(at) -> None:
    from console.auth import CHECK_EVERY_SECONDS, CHECKED_KEY

    at.session_state[CHECKED_KEY] = time.monotonic() - CHECK_EVERY_SECONDS - 1


def _end(ctx, how: str, username: str = "ops") -> None:
    import engine.adapters.users as users
    from engine.services.sessions import SessionService

    if how == "revoked":
        assert SessionService(ctx.app.store).revoke_user(username, "revoked", "test") == 1
    elif how == "password_changed":  # a file edit: no CLI, so nothing revoked the row
        users.set_password(username, "a-changed-secret-word-9")
    elif how == "user_removed":
        users.remove_user(username)


def _signed_out(at) -> None:
    no_exception(at)
    assert "alpha_session_token" not in at.session_state
    assert "You are not signed in" in text(at.error), text(at.error)


@pytest.mark.parametrize("how", ["revoked", "password_changed"])  # a removed user: the page's role check refuses
def test_the_kill_switch_panel_stops_showing_state_when_the_session_has_ended(ctx, how):
    at = ctx.page("pages/kill_switch.py", "ops")
    no_exception(at)
    assert "Kill switch off" in text(at.markdown)
    _end(ctx, how)
    _age_the_last_check(at)
    at.run()  # the panel's next run (a timer tick runs the same fragment)
    _signed_out(at)
    assert "Kill switch off" not in text(at.markdown)
    assert not [b for b in at.button if "KILL SWITCH" in b.label.upper()]


def test_the_breaker_cards_stop_showing_state_when_the_session_has_ended(ctx):
    at = ctx.page("pages/breakers.py", "ops")
    no_exception(at)
    assert [b for b in at.button if b.label == "Force open"]
    _end(ctx, "revoked")
    _age_the_last_check(at)
    at.run()
    _signed_out(at)
    assert not [b for b in at.button if b.label == "Force open"]


def _panel():
    import streamlit as st

    from console import auth
    from console.runtime import require_role

    if not st.session_state.pop("tick", False):  # a full run checks the page's role first, as every page does
        require_role("ops", "admin")
    st.session_state["checks_seen"] = st.session_state.get("checks_seen", 0)
    if auth.still_signed_in():
        st.write("PANEL WITH LIVE STATE")


def _panel_test(ctx, username: str = "ops"):
    from streamlit.testing.v1 import AppTest

    from tests.console.conftest import _session_token

    at = AppTest.from_function(_panel, default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["name"] = f"Test {username}"
    at.session_state["alpha_session_token"] = _session_token(ctx.app, username)
    at.session_state["_page_roles"] = ["ops", "admin"]
    return at


@pytest.mark.parametrize("how", ["revoked", "password_changed", "user_removed"])
def test_a_tick_in_a_tab_whose_session_has_ended_shows_the_login_page(ctx, how):
    at = _panel_test(ctx)
    at.session_state["tick"] = True
    at.run()
    assert "PANEL WITH LIVE STATE" in text(at.markdown)
    _end(ctx, how)
    _age_the_last_check(at)
    at.session_state["tick"] = True
    at.run()  # the tick signs the tab out and runs the whole app again: here, the page's role check
    no_exception(at)
    assert "PANEL WITH LIVE STATE" not in text(at.markdown)
    assert "alpha_session_token" not in at.session_state and "username" not in at.session_state
    assert "You are not signed in" in text(at.error), text(at.error)


def test_the_check_is_made_at_most_every_few_seconds(ctx, monkeypatch):
    from engine.services.sessions import SessionService

    calls = []
    real = SessionService.check
    monkeypatch.setattr(SessionService, "check", lambda self, token: calls.append(1) or real(self, token))
    at = _panel_test(ctx)
    for _ in range(3):
        at.session_state["tick"] = True
        at.run()
        no_exception(at)
        assert "PANEL WITH LIVE STATE" in text(at.markdown)
    assert len(calls) == 1, calls  # a tick every 2 s costs one check per CHECK_EVERY_SECONDS, not one per tick
    _age_the_last_check(at)
    at.session_state["tick"] = True
    at.run()
    assert len(calls) == 2


def test_a_role_taken_away_ends_the_panel_too(ctx):
    """ops made an ae by an admin (the session itself stays valid): the kill switch panel is an ops page."""
    import engine.adapters.users as users

    at = _panel_test(ctx)
    at.session_state["tick"] = True
    at.run()
    assert "PANEL WITH LIVE STATE" in text(at.markdown)
    data = users.load_users()
    data["credentials"]["usernames"]["ops"]["roles"] = ["ae"]
    users._write(ctx.users_file, data)
    _age_the_last_check(at)
    at.session_state["tick"] = True
    at.run()
    no_exception(at)
    assert "PANEL WITH LIVE STATE" not in text(at.markdown)
    assert "Access refused" in text(at.error), text(at.error)


def test_a_tick_during_a_database_outage_shows_why_and_no_state(ctx, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from engine.adapters.db import Store

    at = _panel_test(ctx)
    at.session_state["tick"] = True
    at.run()
    assert "PANEL WITH LIVE STATE" in text(at.markdown)

    def down(self, *a, **k):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with monkeypatch.context() as mp:
        for name in ("read", "write", "write_plain"):
            mp.setattr(Store, name, down)
        _age_the_last_check(at)
        at.session_state["tick"] = True
        at.run()
        no_exception(at)
        assert "PANEL WITH LIVE STATE" not in text(at.markdown)
        assert "Cannot check your session" in text(at.warning), text(at.warning)
        assert at.session_state["alpha_session_token"]  # kept: the outage does not sign anyone out
        at.session_state["tick"] = True
        at.run()  # the next tick checks again (a failed check is not remembered as a good one)
        assert "PANEL WITH LIVE STATE" not in text(at.markdown)
    at.session_state["tick"] = True
    at.run()
    no_exception(at)
    assert "PANEL WITH LIVE STATE" in text(at.markdown)
