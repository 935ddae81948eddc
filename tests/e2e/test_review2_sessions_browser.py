"""Second review of issue 13 item 2 in a real browser: a tab left open on a timer panel after its session ended.

The kill switch panel (and the breaker cards) refresh on a timer; a tick reruns only that panel, so the session
check of every run was skipped and a tab whose session had ended elsewhere (Log out in another tab, `alpha users
revoke`, a password change) went on showing the live kill switch, with its button, until someone clicked. Now the
tick re-checks the session (console.auth.still_signed_in) and the tab shows the login page by itself.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, login, open_page

pytestmark = pytest.mark.browser


def test_an_open_kill_switch_page_shows_the_login_page_when_its_session_is_revoked(page, console):
    import engine.adapters.users as users
    from engine.adapters.db import Store
    from engine.core.errors import InvalidRequest
    from engine.services.sessions import SessionService

    name = "e2e-timer-revoked"
    path = console.env["ALPHA_USERS_FILE"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "BCRYPT_ROUNDS", 4)
        try:
            users.add_user(name, "E2E timer", f"{name}@example.com", "ops", PASSWORD, path=path)
        except InvalidRequest:
            users.set_password(name, PASSWORD, path=path)
    store = Store(console.env["DATABASE_URL"])
    try:
        login(page, console, name)
        open_page(page, "Kill switch & rollout")
        button = page.locator(".st-key-kill_button_on, .st-key-kill_button_off")
        expect(button.first).to_be_visible()
        assert SessionService(store, users_path=path).revoke_user(name, "revoked", "e2e") == 1
        # no click, no reload: the panel's timer (2 s) and the check (at most every 5 s) must do it
        expect(page.get_by_label("Username", exact=True)).to_be_visible(timeout=15_000)
        expect(page.get_by_text(re.compile("Kill switch off|KILL SWITCH ON"))).to_have_count(0)
        expect(button).to_have_count(0)
    finally:
        store.dispose()
