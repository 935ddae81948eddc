"""Second review of issue 13 item 2 (sessions): the database goes down after the console started.

Every run re-checks the session on the server (console/auth.authenticate, and recheck before a change): with the
database gone that check raised through Streamlit, and the browser showed a Python traceback (the driver's
OperationalError, or the engine's DatabaseUnreachable) instead of saying what is wrong and what to do. Now the page
says it (the database named, never its password), shows nothing else (fail closed: no page, no change), and keeps
the session: when the database is back the same tab goes on without a new login.
"""
from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.console.conftest import no_exception, text

SECRET = "pw-never-shown-7"


def _with_password(monkeypatch, db_url: str) -> str:
    """On PostgreSQL, DATABASE_URL with a password (the test server trusts any): it must never be shown."""
    u = make_url(db_url)
    if u.get_backend_name() != "postgresql":
        return db_url
    url = u.set(password=SECRET).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def _down(monkeypatch, url: str, how: str) -> None:
    """Every use of the store fails as it does with the database server gone."""
    from engine.adapters.db import DatabaseUnreachable, Store, unreachable_message

    driver = OperationalError("SELECT 1", {}, Exception("connection refused: is the server running on that host "
                                                        "and accepting TCP/IP connections?"))

    def fail(self, *a, **k):
        if how == "driver":
            raise driver
        raise DatabaseUnreachable(unreachable_message(url, driver))

    for name in ("read", "write", "write_plain"):
        monkeypatch.setattr(Store, name, fail)


def _shown(at) -> str:
    return text(list(at.error) + list(at.warning) + list(at.info) + list(at.markdown) + list(at.caption))


def _assert_clear_message(at, url: str) -> None:
    no_exception(at)
    shown = _shown(at)
    assert SECRET not in shown, shown
    assert "Cannot check your session" in shown, shown
    u = make_url(url)
    where = u.database if u.get_backend_name() == "sqlite" else f"{u.host}:{u.port or 5432}"
    assert where in shown, shown  # the database is named
    assert "try again" in shown.lower() or "Try again" in [b.label for b in at.button], shown  # what to do


@pytest.mark.parametrize("how", ["driver", "engine"])
def test_a_database_gone_after_login_is_a_clear_message_the_session_kept(ctx, db_url, monkeypatch, how):
    url = _with_password(monkeypatch, db_url)
    at = ctx.login(ctx.main(), "ops")
    no_exception(at)
    assert at.session_state["authentication_status"] is True
    with monkeypatch.context() as mp:
        _down(mp, url, how)
        at.run()
        _assert_clear_message(at, url)
        # fail closed: no page, no navigation, no button that changes anything; not the login form either
        assert not [w for w in at.text_input if w.label == "Username"], "logged out by an outage"
        assert not [b for b in at.button if b.label == "Log out"], "the signed-in page was drawn unchecked"
        assert "alpha_session_token" in at.session_state  # the session is kept for when the database is back
    at.run()  # the database is back: the same tab goes on, no new login
    no_exception(at)
    assert [b for b in at.button if b.label == "Log out"]
    assert not [w for w in at.text_input if w.label == "Username"]


def test_a_resumed_cookie_checked_during_an_outage_is_a_clear_message(ctx, db_url, monkeypatch):
    """A reload or a new tab (the cookie, no session state yet) while the database is down."""
    import console.auth as auth
    from tests.console.conftest import _session_token

    url = _with_password(monkeypatch, db_url)
    token = _session_token(ctx.app, "ops")
    monkeypatch.setattr(auth, "_cookie_token", lambda: token)
    _down(monkeypatch, url, "driver")
    at = ctx.main()
    _assert_clear_message(at, url)
    assert not [b for b in at.button if b.label == "Log out"]


def test_a_login_during_an_outage_is_a_clear_message(ctx, db_url, monkeypatch):
    url = _with_password(monkeypatch, db_url)
    at = ctx.main()
    _down(monkeypatch, url, "driver")
    at = ctx.login(at, "ops")
    no_exception(at)
    shown = _shown(at)
    assert SECRET not in shown and "Login failed" in shown, shown
    assert not [b for b in at.button if b.label == "Log out"]


def _recheck_script():
    import streamlit as st

    from console import auth

    try:
        auth.recheck(("ops", "admin"))
    finally:
        st.session_state["after_recheck"] = st.session_state.get("after_recheck", 0)
    st.session_state["after_recheck"] += 1
    st.write("CHANGE RECORDED")


@pytest.mark.parametrize("how", ["driver", "engine"])
def test_a_change_during_an_outage_is_refused_with_a_clear_message(ctx, db_url, monkeypatch, how):
    """A click in a dialog or a fragment (console.runtime.actor -> auth.recheck) while the database is down:
    nothing after the check runs, the message says why, and the session is not ended."""
    from streamlit.testing.v1 import AppTest

    from tests.console.conftest import _session_token

    url = _with_password(monkeypatch, db_url)
    at = AppTest.from_function(_recheck_script, default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "ops"
    at.session_state["name"] = "Test ops"
    at.session_state["alpha_session_token"] = _session_token(ctx.app, "ops")
    _down(monkeypatch, url, how)
    at.run()
    _assert_clear_message(at, url)
    assert "CHANGE RECORDED" not in _shown(at)
    assert at.session_state["alpha_session_token"] and at.session_state["username"] == "ops"


# ------------------------------------------------------------------------------------------ a real outage


class _Proxy:
    """A TCP forwarder in front of the test PostgreSQL server: ``stop()`` is the server going away (every open
    connection cut, new ones refused), ``start()`` its return on the same port."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self._socks: list[socket.socket] = []
        self._srv: socket.socket | None = None

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self.port = srv.getsockname()[1]
        self._srv = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        if self._srv is not None:
            try:
                self._srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() and stops listening (close alone does not)
            except OSError:
                pass
            self._srv.close()
            self._srv = None
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self._socks.clear()


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_real_database_outage_and_return(ctx, db_url, monkeypatch):
    """The PostgreSQL server really goes away (its connections cut, new ones refused) and comes back (PostgreSQL
    only: SQLite is a file in the console's own process)."""
    u = make_url(db_url)
    proxy = _Proxy(u.host or "127.0.0.1", u.port or 5432)
    proxy.start()
    try:
        url = u.set(host="127.0.0.1", port=proxy.port, password=SECRET).render_as_string(hide_password=False)
        monkeypatch.setenv("DATABASE_URL", url)
        at = ctx.login(ctx.main(), "ops")
        no_exception(at)
        assert [b for b in at.button if b.label == "Log out"]
        proxy.stop()
        at.run()
        _assert_clear_message(at, url)
        assert not [b for b in at.button if b.label == "Log out"]
        assert not [w for w in at.text_input if w.label == "Username"]
        proxy.start()  # back, same port
        at.run()
        no_exception(at)
        assert [b for b in at.button if b.label == "Log out"], _shown(at)
    finally:
        proxy.stop()
