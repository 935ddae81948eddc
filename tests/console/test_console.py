"""The operator console end to end: login, per-role navigation, server-side role checks, kill switch, phase."""
from __future__ import annotations

import pytest
from streamlit.testing.v1.errors import AppTestError

from tests.console.conftest import PASSWORD, no_exception, text

KILL_PAGE = "pages/kill_switch.py"
STATUS_PAGE = "pages/status.py"
KILL_PAGE_FROM_APP = "../pages/kill_switch.py"  # AppTest.switch_page is relative to console/app.py


# ------------------------------------------------------------------------------------------ login and roles

def test_login_form_when_not_logged_in(ctx):
    at = no_exception(ctx.main())
    assert [w.label for w in at.text_input] == ["Username", "Password"]
    assert "Log in" in [b.label for b in at.button]
    assert "Status" not in [t.value for t in at.title]
    at = no_exception(at.switch_page(KILL_PAGE_FROM_APP).run())  # asking for a page still shows the login
    assert [w.label for w in at.text_input] == ["Username", "Password"]
    assert "Kill switch & rollout" not in [t.value for t in at.title]


def test_wrong_password_is_refused(ctx):
    at = ctx.login(ctx.main(), "ops", "not-the-password-123")
    no_exception(at)
    assert "incorrect" in text(at.error)
    assert at.session_state["authentication_status"] is False
    assert "Status" not in [t.value for t in at.title]


def test_no_users_file_tells_the_admin_what_to_run(ctx):
    ctx.users_file.unlink()
    at = no_exception(ctx.main())
    assert "No console users exist yet" in text(at.warning)
    assert "alpha users add" in text(at.code)
    assert not at.text_input  # no login form, no default password


def test_demo_mode_seeds_the_four_users(ctx, monkeypatch, tmp_path):
    monkeypatch.delenv("ALPHA_USERS_FILE")
    monkeypatch.setenv("ALPHA_DEMO", "1")
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "demo-password-for-tests-7")
    at = no_exception(ctx.main())
    assert "Demo mode" in text(at.info)
    assert (tmp_path / "data" / "demo_users.yaml").is_file()
    at = no_exception(ctx.login(at, "approver", "demo-password-for-tests-7"))
    assert at.session_state["authentication_status"] is True
    assert [t.value for t in at.title] == ["Status"]


def test_demo_mode_refuses_a_weak_demo_password(ctx, monkeypatch):
    monkeypatch.delenv("ALPHA_USERS_FILE")
    monkeypatch.setenv("ALPHA_DEMO", "1")
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "short")
    at = no_exception(ctx.main())
    assert "ALPHA_DEMO_PASSWORD is too weak" in text(at.error)
    assert not at.text_input


@pytest.mark.parametrize("username,allowed", [("ae", False), ("approver", False), ("ops", True), ("admin", True)])
def test_each_role_sees_only_its_pages(ctx, username, allowed):
    at = no_exception(ctx.login(ctx.main(), username))
    assert [t.value for t in at.title] == ["Status"]
    header = text(at.markdown)
    assert "**Phase:** `shadow`" in header and "kill switch off" in header and "SANDBOX" in header
    if allowed:
        at = no_exception(at.switch_page(KILL_PAGE_FROM_APP).run())
        assert [t.value for t in at.title] == ["Kill switch & rollout"]
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(KILL_PAGE_FROM_APP)


@pytest.mark.parametrize("username", ["ae", "approver"])
def test_kill_switch_page_loaded_directly_refuses_other_roles(ctx, username):
    at = no_exception(ctx.page(KILL_PAGE, username))
    assert "Access refused: this page needs the role ops or admin" in text(at.error)
    assert not at.toggle and not at.button


def test_pages_loaded_directly_refuse_anonymous_sessions(ctx):
    for path in (KILL_PAGE, STATUS_PAGE):
        at = no_exception(ctx.page(path, None))
        assert "not signed in" in text(at.error)
        assert not at.title


def test_roles_come_from_the_users_file_not_the_session(ctx):
    from engine.users import remove_user

    at = no_exception(ctx.login(ctx.main(), "ops"))
    remove_user("ops")
    at = no_exception(at.run())
    assert "no longer exists" in text(at.error)
    assert no_exception(ctx.page(KILL_PAGE, "ops")).error  # refused on the page too


def test_logout(ctx):
    at = no_exception(ctx.login(ctx.main(), "admin"))
    next(b for b in at.button if b.label == "Log out").click()
    at = no_exception(at.run())
    assert [w.label for w in at.text_input] == ["Username", "Password"]


@pytest.mark.parametrize("username", ["ae", "approver", "ops", "admin"])
def test_status_page_for_every_role(ctx, username):
    at = no_exception(ctx.page(STATUS_PAGE, username))
    assert [t.value for t in at.title] == ["Status"]
    assert {m.label for m in at.metric} >= {"Rollout phase", "Kill switch", "Mode", "Live sending"}
    breakers = at.dataframe[0].value
    assert set(breakers["breaker"]) == {"ghl", "linkedin", "clay", "supabase", "llm", "slack"}


# ------------------------------------------------------------------------------------------ kill switch

def _flip(at, on: bool, reason: str):
    at.toggle(key="kill_toggle").set_value(on)
    at = no_exception(at.run())
    assert at.text_area(key="kill_reason")  # the confirmation dialog is open
    at.text_area(key="kill_reason").input(reason)
    at.button(key="kill_confirm").click()
    return no_exception(at.run())


def test_ops_flips_the_kill_switch_through_the_dialog(ctx):
    at = ctx.page(KILL_PAGE, "ops")
    assert at.toggle(key="kill_toggle").value is False
    at = _flip(at, True, "bounce spike on mailbox 2")
    st_ = ctx.app.status()["kill_switch"]
    assert st_["on"] is True and st_["source"] == "database"
    assert st_["reason"] == "bounce spike on mailbox 2" and st_["changed_by"] == "console:ops"
    assert at.toggle(key="kill_toggle").value is True
    assert "KILL SWITCH ON" in text(at.error)
    assert "bounce spike on mailbox 2" in at.dataframe[-1].value["reason"].tolist()

    at = _flip(at, False, "bounces back to normal")
    assert ctx.app.status()["kill_switch"]["on"] is False
    assert at.toggle(key="kill_toggle").value is False


def test_kill_switch_without_a_reason_is_refused(ctx):
    at = ctx.page(KILL_PAGE, "ops")
    at = _flip(at, True, "   ")
    assert "A reason is required" in text(at.error)
    assert ctx.app.status()["kill_switch"]["on"] is False


def test_cancel_leaves_the_kill_switch_alone(ctx):
    at = ctx.page(KILL_PAGE, "admin")
    at.toggle(key="kill_toggle").set_value(True)
    at = no_exception(at.run())
    at.button(key="kill_cancel").click()
    at = no_exception(at.run())
    assert ctx.app.status()["kill_switch"]["on"] is False
    assert at.toggle(key="kill_toggle").value is False
    assert not at.text_area  # dialog closed


def test_emergency_stop_forces_on_and_the_toggle_cannot_turn_it_off(ctx, monkeypatch):
    monkeypatch.setenv("EMERGENCY_STOP", "true")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    toggle = at.toggle(key="kill_toggle")
    assert toggle.value is True and toggle.disabled is True
    assert "Forced on by EMERGENCY_STOP" in text(at.warning)
    with pytest.raises(AppTestError, match="disabled"):  # a browser cannot drive it either
        toggle.set_value(False)
    assert ctx.app.status()["kill_switch"]["on"] is True


def test_emergency_stop_set_while_the_dialog_is_open_still_wins(ctx, monkeypatch):
    ctx.app.control.set_kill(True, "incident", "test")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    at.toggle(key="kill_toggle").set_value(False)
    at = no_exception(at.run())
    monkeypatch.setenv("EMERGENCY_STOP", "true")  # someone pulls the emergency stop meanwhile
    at.text_area(key="kill_reason").input("incident over")
    at.button(key="kill_confirm").click()
    at = no_exception(at.run())
    assert "cannot be turned off while EMERGENCY_STOP=true" in text(at.error)
    assert ctx.app.status()["kill_switch"]["on"] is True


# ------------------------------------------------------------------------------------------ rollout phase

def test_phase_down_at_once_with_a_reason(ctx):
    ctx.app.control.set_phase("parallel", "setup", "test", force=True)
    at = ctx.page(KILL_PAGE, "ops")
    assert at.selectbox(key="phase_down_target").value == "shadow"
    at.button(key="phase_down").click()
    at = no_exception(at.run())
    assert "A reason is required" in text(at.error)
    assert ctx.app.control.state().phase == "parallel"

    at.text_input(key="phase_down_reason").input("reply quality dropped")
    at.button(key="phase_down").click()
    at = no_exception(at.run())
    ctl = ctx.app.control.state()
    assert ctl.phase == "shadow" and ctl.phase_actor == "console:ops" and ctl.phase_reason == "reply quality dropped"
    assert "Phase parallel -> shadow." in text(at.success)


def test_phase_up_only_when_the_gate_passes(ctx, kill_gate_only):
    ctx.app.control.set_kill(True, "incident", "test")  # the gate for parallel needs the kill switch off
    at = no_exception(ctx.page(KILL_PAGE, "admin"))
    gate = at.dataframe[0].value
    assert "FAIL" in gate["result"].tolist()
    assert at.button(key="phase_up").disabled is True
    assert "The gate for parallel fails" in text(at.warning)
    with pytest.raises(AppTestError, match="disabled"):
        at.button(key="phase_up").click()

    ctx.app.control.set_kill(False, "incident over", "test")
    at = no_exception(at.run())
    assert "FAIL" not in at.dataframe[0].value["result"].tolist()
    assert at.button(key="phase_up").disabled is False
    at.button(key="phase_up").click()
    at = no_exception(at.run())
    assert "A reason is required" in text(at.error)
    assert ctx.app.control.state().phase == "shadow"

    ctx.app.control.set_kill(True, "again", "test")  # the gate fails again between render and click
    at.text_input(key="phase_up_reason").input("shadow results reviewed")
    at.button(key="phase_up").click()
    at = no_exception(at.run())  # the gate is re-evaluated on the click's run: the button is disabled again
    assert at.button(key="phase_up").disabled is True
    assert ctx.app.control.state().phase == "shadow"

    ctx.app.control.set_kill(False, "all clear", "test")
    at = no_exception(at.run())
    at.text_input(key="phase_up_reason").input("shadow results reviewed")
    at.button(key="phase_up").click()
    at = no_exception(at.run())
    ctl = ctx.app.control.state()
    assert ctl.phase == "parallel" and ctl.phase_actor == "console:admin"


def test_reasons_and_errors_show_as_written_never_as_markdown(ctx):
    """A reason is typed by a person: `**`, links, `:red[]`, `$math$` and HTML stay literal on every page that shows it."""
    from console.runtime import md_escape

    payload = "**bold** [x](javascript:alert(1)) :red[x] $m$ <img src=x onerror=alert(1)>"
    ctx.app.control.set_kill(True, payload, "ops")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    shown = [e.value for e in at.error] + [m.value for m in at.markdown]
    assert any(md_escape(payload) in v for v in shown)
    assert not any(payload in v for v in shown)  # never the raw, renderable form
    assert md_escape("a_b") == "a\\_b" and md_escape(None) == ""
