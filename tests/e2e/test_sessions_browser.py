"""Console sessions in a real browser (issue 13): a login survives a reload, a direct link and a new tab; Log out and
a password change end it on the server, so a copied cookie is worth nothing; failed logins lock the name.

Tests that change a password or lock a name use their own users (the other browser tests log in as ae, approver,
ops and admin with the e2e PASSWORD).
"""
from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, TIMEOUT_MS, _bin, login, screenshot, settle

pytestmark = pytest.mark.browser
COOKIE = "alpha_session"


def add_user(console, username: str, role: str = "ops") -> None:
    """A user of this test only (password PASSWORD, so the `login` helper works), added to the console's users file
    (or given PASSWORD again when a previous run left it there)."""
    import engine.adapters.users as users
    from engine.core.errors import InvalidRequest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users, "BCRYPT_ROUNDS", 4)
        path = console.env["ALPHA_USERS_FILE"]
        try:
            users.add_user(username, f"E2E {username}", f"{username}@example.com", role, PASSWORD, path=path)
        except InvalidRequest:
            users.set_password(username, PASSWORD, path=path)


def session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def wait_for_cookie(page) -> dict:
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=TIMEOUT_MS)
    return session_cookie(page.context)


def wait_for_failures(console, username: str, n: int, timeout: float = TIMEOUT_MS / 1000) -> None:
    db = console.env["DATABASE_URL"].removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as c:
            row = c.execute("SELECT failures FROM login_attempt WHERE key = ?", (f"user:{username}",)).fetchone()
        if row and row[0] >= n:
            return
        assert time.monotonic() < deadline, f"the server counted {row} failed logins of {username}, not {n}"
        time.sleep(0.05)


def expect_login_form(page) -> None:
    settle(page)
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)


def expect_signed_in(page) -> None:
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)
    expect(page.get_by_label("Username", exact=True)).to_have_count(0)


def test_reload_direct_link_and_new_tab_keep_the_session(page, console):
    """Seen: logins usually did not survive a reload, a direct link or a new tab."""
    login(page, console, "approver")
    cookie = wait_for_cookie(page)
    assert cookie["path"] == "/" and cookie["sameSite"] == "Strict" and not cookie["secure"]  # http here
    assert cookie["expires"] > 0 and len(cookie["value"]) >= 40
    assert PASSWORD not in cookie["value"] and "approver" not in cookie["value"]

    page.reload()
    expect_signed_in(page)

    page.goto(console.url + "/approvals")  # a link typed or pasted
    expect_signed_in(page)
    page.get_by_role("heading", name="Approvals").first.wait_for()
    screenshot(page, "approvals-direct-link")

    tab = page.context.new_page()  # a new tab in the same browser
    try:
        tab.goto(console.url + "/status")
        expect_signed_in(tab)
        tab.get_by_role("heading", name="Status").first.wait_for()
    finally:
        tab.close()


def test_log_out_ends_the_session_so_a_copied_cookie_is_refused(page, console, browser):
    """Seen: a copied login cookie survived logout."""
    login(page, console, "admin")
    copied = wait_for_cookie(page)
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    expect_login_form(page)
    page.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=TIMEOUT_MS)  # cleared
    page.reload()
    expect_login_form(page)

    other = browser.new_context()  # someone who copied the cookie before the logout
    try:
        other.add_cookies([copied])
        p = other.new_page()
        p.goto(console.url + "/audit-log")
        expect_login_form(p)
    finally:
        other.close()


def test_a_password_change_ends_the_session_in_every_browser(page, console, browser):
    """Seen: a copied login cookie survived a password change."""
    add_user(console, "e2e-passwd", "ops")
    login(page, console, "e2e-passwd")
    copied = wait_for_cookie(page)
    new_password = "a-new-e2e-password-31"
    out = subprocess.run([_bin("alpha"), "users", "set-password", "e2e-passwd"], input=f"{new_password}\n" * 2,
                         env=console.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1 open console session(s) of e2e-passwd ended" in out.stdout

    other = browser.new_context()
    try:
        other.add_cookies([copied])
        p = other.new_page()
        p.goto(console.url)
        expect_login_form(p)
    finally:
        other.close()
    page.reload()  # the browser that logged in: its cookie is refused too, saying why
    expect_login_form(page)
    expect(page.get_by_text("the password was changed")).to_be_visible()
    screenshot(page, "session-ended")


def test_failed_logins_lock_the_name_even_for_the_right_password(page, console):
    """Seen: 25 wrong passwords, then the right one logged in."""
    add_user(console, "e2e-lockout", "ae")
    page.goto(console.url)
    settle(page)
    for i in range(1, 6):
        page.get_by_label("Username", exact=True).fill("e2e-lockout")
        page.get_by_label("Password", exact=True).fill(f"wrong-password-{i}")
        page.get_by_role("button", name="Log in").click()
        wait_for_failures(console, "e2e-lockout", i)  # the same message each time: wait for the server's count
        settle(page)
    expect(page.get_by_text("Too many failed logins for this username: try again in 30 seconds")).to_be_visible()
    page.get_by_label("Username", exact=True).fill("e2e-lockout")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    settle(page)
    expect(page.get_by_text("Too many failed logins for this username")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    screenshot(page, "locked")
