"""Shared fixtures for the GHL tests: a module-scoped local GHL sandbox, its control client, a recorder that
validates every request and response against GHL's OpenAPI specs, and an injected clock/sleep."""
from __future__ import annotations

import pytest

from engine.adapters.ghl import GHLClient
from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, SandboxControl, start_sandbox
from tests.ghl_spec import SpecRecorder

TOKEN = "pit-test-0123456789abcdef-secret"
SEND_PATH = "/conversations/messages"


class FakeTime:
    """An injected sleep that only records, and the monotonic clock it moves."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture(scope="module")
def sandbox():
    server, url = start_sandbox(token=TOKEN)
    yield url
    server.shutdown()


@pytest.fixture
def ctl(sandbox):
    c = SandboxControl(sandbox)
    c.reset()
    yield c
    c.close()


@pytest.fixture
def spec():
    rec = SpecRecorder()
    yield rec
    rec.assert_clean()


@pytest.fixture
def fake():
    return FakeTime()


@pytest.fixture
def make_client(sandbox, ctl, spec, fake):
    made = []

    def make(api_key: str = TOKEN, location_id: str = DEFAULT_LOCATION, **kw) -> GHLClient:
        args = dict(base_url=sandbox, timeout=0.5, sleep=fake, clock=fake.clock, event_hooks=spec.hooks(),
                    jitter=False)
        args.update(kw)
        c = GHLClient(api_key, location_id, **args)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
