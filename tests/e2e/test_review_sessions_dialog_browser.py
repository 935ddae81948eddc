"""Review of issue 13 item 2 in a real browser: a session ended elsewhere must not finish a change.

A confirmation dialog (``st.dialog``) is a fragment: a click in it reruns the dialog only, not app.py, so the
server-side session check of every run did not happen before the change. Seen: ops opened "Turn kill switch ON",
was logged out in another tab (or their password was changed, or they were removed), and the click in the dialog
still turned the kill switch on as ``console:<them>``. The change must be refused and the login page shown.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, login, open_page, settle

pytestmark = pytest.mark.browser


def _user(console, username: str, role: str) -> None:
    import engine.adapters.users as users
    from engine.core.errors import InvalidRequest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "BCRYPT_ROUNDS", 4)
        path = console.env["ALPHA_USERS_FILE"]
        try:
            users.add_user(username, f"E2E {username}", f"{username}@example.com", role, PASSWORD, path=path)
        except InvalidRequest:
            users.set_password(username, PASSWORD, path=path)


def _engine(console):
    from engine.adapters.db import Store
    from engine.services.sessions import SessionService

    store = Store(console.env["DATABASE_URL"])
    return store, SessionService(store, users_path=console.env["ALPHA_USERS_FILE"])


@pytest.mark.parametrize("ended_by", ["revoke", "role_taken"])
def test_a_kill_switch_dialog_opened_before_the_session_ended_changes_nothing(page, console, ended_by):
    import engine.adapters.users as users
    from engine.adapters.models import ControlState

    name = f"e2e-dialog-{ended_by.replace('_', '-')}"
    _user(console, name, "ops")
    store, svc = _engine(console)
    try:
        with store.read() as s:
            assert s.get(ControlState, 1).kill_switch is False, "the shared console's kill switch must start off"
        login(page, console, name)
        open_page(page, "Kill switch & rollout")
        page.locator(".st-key-kill_button_on").get_by_role("button", name=re.compile("TURN KILL SWITCH ON")).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Reason (required, recorded in the audit trail)").fill("e2e: after the session ended")
        if ended_by == "revoke":  # Log out in another tab, `alpha users revoke`, a password change: all revoke
            assert svc.revoke_user(name, "revoked", "e2e") == 1
        else:  # an admin edits the file: now an ae (same password, so the session itself stays valid)
            path = console.env["ALPHA_USERS_FILE"]
            data = users.load_users(path)
            data["credentials"]["usernames"][name]["roles"] = ["ae"]
            users._write(Path(path), data)
        dialog.get_by_role("button", name="Turn kill switch ON").click()
        page.wait_for_timeout(1500)
        settle(page)
        with store.read() as s:
            ctl = s.get(ControlState, 1)
            assert ctl.kill_switch is False, f"turned on by {ctl.kill_actor} after the session ended"
        if ended_by == "revoke":
            expect(page.get_by_label("Username", exact=True)).to_be_visible()
    finally:  # put the shared console back if the click went through
        with store.write() as s:
            ctl = s.get(ControlState, 1)
            if ctl.kill_switch:
                ctl.kill_switch, ctl.kill_reason, ctl.kill_actor = False, "e2e: undo a dead session's flip", "e2e"
                s.add(ctl)
        store.dispose()
