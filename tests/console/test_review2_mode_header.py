"""Second review of issue 13 item 5: the header's LIVE/SANDBOX (and the Status page's Mode) is what the running
workers report, not the console's own environment. Seen: a console without GHL credentials showed a blue SANDBOX
while its worker sent through the real GHL."""
from __future__ import annotations

from datetime import timedelta

from engine.adapters.models import Heartbeat
from engine.core.clock import system_clock
from engine.queries.health import WORKER
from tests.console.conftest import no_exception, text

REAL = {"mode": "LIVE", "executor": "ghl", "ghl_url": "https://services.leadconnectorhq.com",
        "label": "LIVE (ghl at https://services.leadconnectorhq.com)"}
LOCAL = {"mode": "SANDBOX", "executor": "sandbox", "ghl_url": None,
         "label": "SANDBOX (the local sandbox executor: no GHL credentials)"}


def running_worker(app, instance: str, sending: dict) -> None:
    at = system_clock() - timedelta(seconds=1)  # the console's engine runs on the system clock
    with app.store.write_plain() as s:
        s.add(Heartbeat(component=WORKER, instance=instance, started_at=at, beat_at=at,
                        info={"interval": 5.0, "pid": 1, "sending": sending}))


def header(at) -> str:
    return text(at.markdown)


def test_header_shows_the_live_worker_not_the_consoles_sandbox(ctx):
    running_worker(ctx.app, "worker-host:41", REAL)  # the console (this process) has no GHL credentials
    at = no_exception(ctx.login(ctx.main(), "ops"))
    h = header(at)
    assert ":orange-badge[**LIVE**] :small[by the worker, SANDBOX here]" in h, h
    assert ":blue-badge[SANDBOX]" not in h and ":green-badge[LIVE" not in h


def test_header_says_so_when_workers_disagree(ctx):
    running_worker(ctx.app, "worker-host:41", REAL)
    running_worker(ctx.app, "worker-host:42", LOCAL)
    h = header(no_exception(ctx.login(ctx.main(), "ops")))
    assert ":orange-badge[**MIXED**] :small[the workers differ]" in h, h


def test_header_without_a_worker_marks_the_configured_mode_not_running(ctx):
    h = header(no_exception(ctx.login(ctx.main(), "ops")))
    assert ":gray-badge[SANDBOX] :small[not running]" in h, h
    assert ":blue-badge[SANDBOX]" not in h


def test_header_with_agreeing_workers_is_the_plain_mode(ctx):
    running_worker(ctx.app, "worker-host:41", LOCAL)
    h = header(no_exception(ctx.login(ctx.main(), "ops")))
    assert ":blue-badge[SANDBOX]" in h and "not running" not in h, h


def test_status_page_shows_the_workers_mode_and_the_disagreement(ctx):
    running_worker(ctx.app, "worker-host:41", REAL)
    at = no_exception(ctx.page("pages/status.py", "ops"))
    mode = next(m for m in at.metric if m.label == "Mode")
    assert mode.value == "LIVE", mode.value
    warned = text(at.warning)
    assert "Where sends go" in warned and "worker-host:41" in warned and "configured for SANDBOX" in warned, warned
