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
    assert [t.value for t in at.title] == ["Welcome"]  # demo mode opens on "Try this as each role"
    assert "Try this as each role" in [h.value for h in at.subheader]


@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_demo_mode_leaves_the_production_users_file_alone(ctx, monkeypatch, tmp_path, where):
    """Seen: with ALPHA_DEMO=1 and ALPHA_USERS_FILE (in the environment or only in .env), demo mode wrote the demo
    users into the production users file and replaced the real admin's password."""
    before = ctx.users_file.read_bytes()
    monkeypatch.setenv("ALPHA_DEMO", "1")
    monkeypatch.setenv("ALPHA_DEMO_PASSWORD", "demo-password-for-tests-7")
    if where == "dotenv":
        env_file = tmp_path / "demo.env"
        env_file.write_text(f"ALPHA_USERS_FILE={ctx.users_file}\n")
        monkeypatch.setenv("ALPHA_ENV_FILE", str(env_file))
        monkeypatch.setenv("ALPHA_USERS_FILE", "placeholder")  # recorded, so the .env value is undone afterwards
        monkeypatch.delenv("ALPHA_USERS_FILE")
    at = no_exception(ctx.main())
    at = no_exception(ctx.login(at, "approver", "demo-password-for-tests-7"))
    assert at.session_state["authentication_status"] is True
    at = no_exception(ctx.login(ctx.main(), "admin", "demo-password-for-tests-7"))
    assert at.session_state["authentication_status"] is True
    assert ctx.users_file.read_bytes() == before  # the real admin keeps their password
    assert (tmp_path / "data" / "demo_users.yaml").is_file()


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
    assert not at.button


def test_pages_loaded_directly_refuse_anonymous_sessions(ctx):
    for path in (KILL_PAGE, STATUS_PAGE):
        at = no_exception(ctx.page(path, None))
        assert "not signed in" in text(at.error)
        assert not at.title


def test_roles_come_from_the_users_file_not_the_session(ctx):
    from engine.adapters.users import remove_user

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


def _sessions(ctx):
    from engine.services.sessions import SessionService

    return SessionService(ctx.app.store)


def test_login_keeps_the_session_on_the_server_and_writes_only_a_token_cookie(ctx):
    from console.auth import TOKEN_KEY

    at = no_exception(ctx.login(ctx.main(), "ops"))
    token = at.session_state[TOKEN_KEY]
    assert _sessions(ctx).resume(token) == "ops"
    scripts = [h.proto.body for h in at.get("html")]
    assert any(f"alpha_session={token}; Path=/; Max-Age=604800; SameSite=Strict" in b for b in scripts)
    assert any("location.protocol==='https:'" in b and "Secure" in b for b in scripts)
    at = no_exception(at.run())  # every run while signed in renders it again (a rerun cannot drop it)
    assert any(f"alpha_session={token}" in h.proto.body for h in at.get("html"))


def test_logout_ends_the_session_on_the_server_and_clears_the_cookie(ctx):
    from console.auth import TOKEN_KEY

    at = no_exception(ctx.login(ctx.main(), "admin"))
    token = at.session_state[TOKEN_KEY]
    next(b for b in at.button if b.label == "Log out").click()
    at = no_exception(at.run())
    assert _sessions(ctx).resume(token) is None  # a copied cookie is worth nothing now
    assert any("alpha_session=; Path=/; Max-Age=0" in h.proto.body for h in at.get("html"))


def test_a_session_ended_elsewhere_is_refused_at_the_next_click(ctx):
    from engine.adapters.users import set_password

    at = no_exception(ctx.login(ctx.main(), "approver"))
    set_password("approver", "a-brand-new-password-3")
    at = no_exception(at.run())
    assert [w.label for w in at.text_input] == ["Username", "Password"]
    assert "password was changed" in text(at.warning)


def test_failed_logins_lock_the_name_with_a_growing_delay(ctx):
    """Seen: 25 wrong passwords, then the right one logged in."""
    at = ctx.main()
    for i in range(5):
        at = no_exception(ctx.login(at, "ops", f"not-the-password-{i}"))
    assert "Too many failed logins for this username: try again in 30 seconds" in text(at.error)
    at = no_exception(ctx.login(at, "ops", PASSWORD))  # the right password, while locked
    assert at.session_state["authentication_status"] is False
    assert "Too many failed logins" in text(at.error) and "Status" not in [t.value for t in at.title]
    at = no_exception(ctx.login(ctx.main(), "admin"))  # other users are not affected
    assert [t.value for t in at.title] == ["Status"]


@pytest.mark.parametrize("username", ["ae", "approver", "ops", "admin"])
def test_status_page_for_every_role(ctx, username):
    at = no_exception(ctx.page(STATUS_PAGE, username))
    assert [t.value for t in at.title] == ["Status"]
    assert {m.label for m in at.metric} >= {"Rollout phase", "Kill switch", "Mode", "Live sending"}
    breakers = at.dataframe[0].value
    assert set(breakers["breaker"]) == {"ghl", "linkedin", "clay", "supabase", "llm", "slack"}


# ------------------------------------------------------------------------------------------ kill switch

def kill_button(at):
    """The one kill switch control: (key, label, disabled). Its key says what it does (kill_button_on turns it on)."""
    (b,) = [b for b in at.button if b.key in ("kill_button_on", "kill_button_off")]
    return b


def kill_panel(at) -> str:
    """What the kill switch panel says (its markdown), with markdown escapes removed."""
    return text(m for m in at.markdown if "Kill switch off" in m.value or "KILL SWITCH ON" in m.value
                or m.value.startswith(("**Why:**", "**Forced on", "Sending is governed")))


def _flip(at, on: bool, reason: str):
    b = kill_button(at)
    assert b.key == ("kill_button_on" if on else "kill_button_off")
    b.click()
    at = no_exception(at.run())
    assert at.text_area(key="kill_reason")  # the confirmation dialog is open
    at.text_area(key="kill_reason").input(reason)
    at.button(key="kill_confirm").click()
    return no_exception(at.run())


def test_ops_flips_the_kill_switch_through_the_dialog(ctx):
    at = ctx.page(KILL_PAGE, "ops")
    assert kill_button(at).label.startswith("TURN KILL SWITCH ON")
    at = _flip(at, True, "bounce spike on mailbox 2")
    st_ = ctx.app.status()["kill_switch"]
    assert st_["on"] is True and st_["source"] == "database"
    assert st_["reason"] == "bounce spike on mailbox 2" and st_["changed_by"] == "console:ops"
    assert kill_button(at).key == "kill_button_off" and "OFF" in kill_button(at).label
    panel = kill_panel(at)
    assert "KILL SWITCH ON - nothing is sent" in panel and "bounce spike on mailbox 2" in panel
    assert "console:ops" in panel and "s ago" in panel  # who, and when with its age
    assert "bounce spike on mailbox 2" in at.dataframe[-1].value["reason"].tolist()

    at = _flip(at, False, "bounces back to normal")
    assert ctx.app.status()["kill_switch"]["on"] is False
    assert kill_button(at).key == "kill_button_on"


def test_the_kill_switch_follows_the_database_between_runs(ctx):
    """Flipped elsewhere (the CLI) while the page is open: the next run shows the database's state, never a
    widget's memory of the old one."""
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    assert "Kill switch off" in kill_panel(at) and kill_button(at).key == "kill_button_on"
    ctx.app.control.set_kill(True, "cli: bounce storm", "cli:jane")
    at = no_exception(at.run())
    panel = kill_panel(at)
    assert "KILL SWITCH ON - nothing is sent" in panel and "cli: bounce storm" in panel and "cli:jane" in panel
    assert "Kill switch off" not in panel
    assert kill_button(at).key == "kill_button_off" and kill_button(at).label.startswith("Turn kill switch OFF")
    ctx.app.control.set_kill(False, "cli: storm over", "cli:jane")
    at = no_exception(at.run())
    assert "Kill switch off" in kill_panel(at) and "KILL SWITCH ON" not in kill_panel(at)
    assert kill_button(at).key == "kill_button_on" and kill_button(at).label.startswith("TURN KILL SWITCH ON")


def test_a_stale_click_does_not_flip_the_switch_the_other_way(ctx):
    """The button was drawn while off; the CLI turned it on meanwhile: the dialog says so and changes nothing."""
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    ctx.app.control.set_kill(True, "cli: incident", "cli:jane")
    kill_button(at).click()  # still the "turn on" button drawn before the CLI's change
    at = no_exception(at.run())
    assert "already ON" in text(at.info) and not at.text_area
    at.button(key="kill_close").click()
    at = no_exception(at.run())
    assert ctx.app.status()["kill_switch"]["on"] is True and kill_button(at).key == "kill_button_off"


def test_kill_switch_without_a_reason_is_refused(ctx):
    at = ctx.page(KILL_PAGE, "ops")
    at = _flip(at, True, "   ")
    assert "A reason is required" in text(at.error)
    assert ctx.app.status()["kill_switch"]["on"] is False


def test_cancel_leaves_the_kill_switch_alone(ctx):
    at = ctx.page(KILL_PAGE, "admin")
    kill_button(at).click()
    at = no_exception(at.run())
    at.button(key="kill_cancel").click()
    at = no_exception(at.run())
    assert ctx.app.status()["kill_switch"]["on"] is False
    assert kill_button(at).key == "kill_button_on"
    assert not at.text_area  # dialog closed


def test_emergency_stop_forces_on_and_the_button_cannot_turn_it_off(ctx, monkeypatch):
    monkeypatch.setenv("EMERGENCY_STOP", "true")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    button = kill_button(at)
    assert button.key == "kill_button_off" and button.disabled is True
    assert "Forced on by EMERGENCY_STOP" in kill_panel(at)
    assert "cannot be turned off from the console or the CLI" in text(at.warning)
    with pytest.raises(AppTestError, match="disabled"):  # a browser cannot drive it either
        button.click()
    assert ctx.app.status()["kill_switch"]["on"] is True


def test_emergency_stop_set_while_the_dialog_is_open_still_wins(ctx, monkeypatch):
    ctx.app.control.set_kill(True, "incident", "test")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    kill_button(at).click()
    at = no_exception(at.run())
    monkeypatch.setenv("EMERGENCY_STOP", "true")  # someone pulls the emergency stop meanwhile
    at.text_area(key="kill_reason").input("incident over")
    at.button(key="kill_confirm").click()
    at = no_exception(at.run())
    assert "cannot be turned off while EMERGENCY_STOP=true" in text(at.error)
    assert ctx.app.status()["kill_switch"]["on"] is True


def test_header_names_open_breakers_and_the_component_health(ctx):
    at = no_exception(ctx.login(ctx.main(), "ops"))  # the header is drawn by console/app.py
    header = text(at.markdown)
    assert "breakers: :green-badge[all closed]" in header and "components: " in header
    ctx.app.breakers.force("ghl", "OPEN", "GHL returns 500s", "ops")
    at = no_exception(at.run())
    header = text(at.markdown)
    assert "breakers: ghl :red-badge[OPEN]" in header
    assert "all closed" not in header
    assert any(c.value.startswith("live sending:") and "checked " in c.value and "s ago" in c.value
               for c in at.caption)


def test_header_summarises_any_component_dict():
    from console.widgets import components_summary

    assert components_summary({"database": {"ok": True}, "config": {"ok": True}, "executor": {"ok": True}}) == \
        "components: 3 ok"
    line = components_summary({"database": {"ok": True, "state": "ok"}, "worker": {"ok": False, "state": "stale"},
                               "webhook_receiver": {"ok": False}, "ghl": {"ok": False, "state": "not_configured"}})
    assert line == ("components: 1 ok, worker :orange-badge[STALE], webhook receiver :red-badge[DOWN], "
                    "ghl :gray-badge[not configured]")


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


def gate_lines(at) -> list[str]:
    """The go/no-go gate's lines, in the order shown (one markdown per check, a mark word first)."""
    return [m.value for m in at.markdown if m.value.startswith((":red-badge[FAIL]", ":green-badge[PASS]"))]


def test_gate_lists_failures_first_with_their_full_reasons(ctx, monkeypatch):
    from engine.services import control, readiness

    long = "the evidence is " + "very " * 40 + "old: run `alpha canary` again"
    monkeypatch.setitem(readiness.PHASE_GATES, "parallel", [
        lambda c: control.GateCheck("first passing", True, "fine"),
        lambda c: control.GateCheck("canary passing", False, long),
        lambda c: control.GateCheck("second passing", True, "fine too"),
        lambda c: control.GateCheck("breakers closed", False, "not closed: ghl")])
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    lines = [line.replace("\\", "") for line in gate_lines(at)]
    assert [line.split("**")[1] for line in lines] == ["canary passing", "breakers closed", "first passing",
                                                        "second passing"]
    assert lines[0].startswith(":red-badge[FAIL]") and lines[-1].startswith(":green-badge[PASS]")
    assert long in lines[0]  # the whole reason, not cut off in a table cell
    assert "2 of 4 failing" in text(at.markdown)


def test_phase_up_only_when_the_gate_passes(ctx, kill_gate_only):
    ctx.app.control.set_kill(True, "incident", "test")  # the gate for parallel needs the kill switch off
    at = no_exception(ctx.page(KILL_PAGE, "admin"))
    assert "FAIL" in gate_lines(at)[0]
    assert at.button(key="phase_up").disabled is True
    assert "The gate for parallel fails" in text(at.warning)
    with pytest.raises(AppTestError, match="disabled"):
        at.button(key="phase_up").click()

    ctx.app.control.set_kill(False, "incident over", "test")
    at = no_exception(at.run())
    assert not any("FAIL" in line for line in gate_lines(at))
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
    """A reason is typed by a person: `**`, links, `:red[]`, `$math$` and HTML stay literal on every page that
    shows it."""
    from console.runtime import md_escape

    payload = "**bold** [x](javascript:alert(1)) :red[x] $m$ <img src=x onerror=alert(1)>"
    ctx.app.control.set_kill(True, payload, "ops")
    at = no_exception(ctx.page(KILL_PAGE, "ops"))
    shown = [e.value for e in at.error] + [m.value for m in at.markdown]
    assert any(md_escape(payload) in v for v in shown)
    assert not any(payload in v for v in shown)  # never the raw, renderable form
    assert md_escape("a_b") == "a\\_b" and md_escape(None) == ""
