"""Review of issue 13 item 5: a GHL that is really the local sandbox must never count as live, whatever spelling of
a loopback address GHL_BASE_URL uses (and `alpha status` must not say LIVE for it either).

Seen in review: 0.0.0.0, a trailing dot, the short and numeric IPv4 forms (127.1, 2130706433, 0x7f.0.0.1), an
IPv4-mapped IPv6 loopback and a host name that resolves to 127.0.0.1 all passed as the real GHL ("ready for live
phases: YES") and made the header say LIVE."""
from __future__ import annotations

import socket

import pytest

from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
from engine.services.verify import PASS, SANDBOX, check_ghl, is_sandbox_url

LOOPBACK_FORMS = ("http://0.0.0.0:{port}", "http://localhost.:{port}", "http://LOCALHOST.:{port}",
                  "http://127.1:{port}", "http://2130706433:{port}", "http://0x7f.0.0.1:{port}",
                  "http://[::ffff:127.0.0.1]:{port}", "http://[::]:{port}", "http://0:{port}",
                  "http://ghl.localhost.:{port}")


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_every_spelling_of_a_local_address_is_the_sandbox(form):
    assert is_sandbox_url(form.format(port=8765)), form


def test_real_addresses_are_not_the_sandbox():
    for url in ("https://services.leadconnectorhq.com", "https://services.leadconnectorhq.com.",
                "http://192.0.2.10:80", "http://[2001:db8::1]:443", "https://example.com", "http://10.0.0.7:8765"):
        assert not is_sandbox_url(url), url


@pytest.fixture
def sandbox():
    server, url = start_sandbox()
    yield server, url
    server.shutdown()
    server.server_close()


def _ghl_env(monkeypatch, base: str) -> None:
    monkeypatch.setenv("GHL_API_KEY", "sandbox-token-123456")
    monkeypatch.setenv("GHL_LOCATION_ID", DEFAULT_LOCATION)
    monkeypatch.setenv("GHL_BASE_URL", base)


def test_the_sandbox_reached_through_0_0_0_0_is_not_live(sandbox, monkeypatch):
    _server, url = sandbox
    port = url.rsplit(":", 1)[1]
    _ghl_env(monkeypatch, f"http://0.0.0.0:{port}")
    c = check_ghl(None)
    assert c.status == SANDBOX, c  # it answered (the sandbox works) but it is not the real GHL


def test_a_host_name_that_resolves_to_loopback_is_not_live(sandbox, monkeypatch):
    """e.g. an /etc/hosts entry or a DNS name for the sandbox: the address the name leads to decides."""
    _server, url = sandbox
    port = url.rsplit(":", 1)[1]
    real = socket.getaddrinfo

    def fake(host, *a, **kw):  # ghl-sandbox.internal -> 127.0.0.1, like a hosts-file entry
        return real("127.0.0.1" if str(host).rstrip(".") == "ghl-sandbox.internal" else host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    _ghl_env(monkeypatch, f"http://ghl-sandbox.internal:{port}")
    c = check_ghl(None)
    assert c.status == SANDBOX and "SANDBOX" in c.reason, c
    assert c.status != PASS


class _FakeGHLExecutor:
    """A GHL executor as the engine sees it (name, api, live, client.base_url); never sends."""

    name, api, live = "ghl", "ghl", True

    def __init__(self, base_url: str):
        self.client = type("C", (), {"base_url": base_url})()

    def execute(self, item):  # pragma: no cover - never called
        raise AssertionError


@pytest.mark.parametrize("base", ["http://0.0.0.0:8765", "http://localhost.:8765", "http://127.1:8765"])
def test_status_mode_is_sandbox_for_a_local_ghl(app_factory, base):
    app = app_factory(executors={"email": _FakeGHLExecutor(base), "crm": _FakeGHLExecutor(base)})
    assert app.mode == "SANDBOX"
    st = app.status()
    assert st["mode"] == "SANDBOX" and st["live_sending"] is False
    assert st["components"]["executor"]["state"] == "sandbox"
