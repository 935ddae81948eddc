"""The LLM provider chain against local Anthropic and OpenAI fakes, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import logging
import threading

import pytest
from sqlmodel import select

from engine.adapters.llm import (AnthropicProvider, Completion, LLMChain, LLMUnavailable, OpenAIProvider,
                                     RateLimiter, TemplateProvider, cache_key, from_env)
from engine.adapters.models import AuditEntry, BreakerState, LLMCache, LLMUsage
from tests.fake_servers import AnthropicFake, OpenAIFake

ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_MODEL", "OPENAI_MODEL", "ANTHROPIC_BASE_URL",
       "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anthropic():
    with AnthropicFake() as fake:
        yield fake


@pytest.fixture
def openai():
    with OpenAIFake() as fake:
        yield fake


@pytest.fixture
def app(app_factory):
    return app_factory()


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def chain(app, anthropic=None, openai=None, template=None, breakers=True, timeout=5.0, **kw) -> LLMChain:
    providers = []
    if anthropic is not None:
        providers.append(AnthropicProvider(anthropic.api_key, base_url=anthropic.base_url, timeout=timeout))
    if openai is not None:
        providers.append(OpenAIProvider(openai.api_key, base_url=openai.base_url, timeout=timeout))
    providers.append(TemplateProvider(template))
    kw.setdefault("sleep", Sleeps())
    return LLMChain(providers, app.store, app.clock, app.breakers if breakers else None, **kw)


def usage(app) -> list[LLMUsage]:
    with app.store.read() as s:
        return list(s.exec(select(LLMUsage).order_by(LLMUsage.id)).all())


def breaker_state(app, name="llm") -> str:
    return {b.name: b.state for b in app.breakers.list()}[name]


def test_anthropic_messages_api_wire_format(app, anthropic):
    anthropic.queue(anthropic.ok(input_tokens=42, output_tokens=7))
    c = chain(app, anthropic).complete("Write a two-line opener for Jane at Acme.", system="Be brief.",
                                       max_tokens=120)
    assert (c.provider, c.model, c.cached) == ("anthropic", "claude-haiku-4-5", False)
    assert c.text == "anthropic draft: Write a two-line opener for Jane at Acme."
    assert anthropic.count == 1
    req = anthropic.requests[0]
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.headers["x-api-key"] == anthropic.api_key
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    assert req.json == {"model": "claude-haiku-4-5", "max_tokens": 120, "system": "Be brief.",
                        "messages": [{"role": "user", "content": "Write a two-line opener for Jane at Acme."}]}
    assert (c.input_tokens, c.output_tokens) == (42, 7)  # from the response's usage


def test_openai_chat_completions_wire_format(app, openai):
    openai.queue(openai.ok(input_tokens=31, output_tokens=5))
    c = chain(app, openai=openai).complete("Subject line for Acme?", system="You write subject lines.")
    assert (c.provider, c.model) == ("openai", "gpt-4o-mini")
    assert c.text == "openai draft: Subject line for Acme?"
    req = openai.requests[0]
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {openai.api_key}"
    assert "x-api-key" not in req.headers
    body = req.json
    assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 300
    assert body["messages"] == [{"role": "system", "content": "You write subject lines."},
                                {"role": "user", "content": "Subject line for Acme?"}]
    assert (c.input_tokens, c.output_tokens) == (31, 5)


def test_from_env_reads_keys_models_and_base_urls(app, anthropic, openai, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic.api_key)
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-sonnet-4-5")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", openai.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url + "/v1")  # the OpenAI SDK's convention also works
    ch = from_env(app.store, app.clock, app.breakers, sleep=Sleeps())
    assert [type(p).__name__ for p in ch.providers] == ["AnthropicProvider", "OpenAIProvider", "TemplateProvider"]
    assert ch.complete("hello").provider == "anthropic"
    assert anthropic.requests[0].json["model"] == "claude-sonnet-4-5"
    anthropic.always(AnthropicFake.server_error(500))
    assert ch.complete("hello again").provider == "openai"
    assert openai.requests[0].path == "/v1/chat/completions"
    assert anthropic.api_key not in repr(ch) and openai.api_key not in repr(ch)


def test_fallthrough_anthropic_529_then_openai_then_template(app, anthropic, openai):
    sleeps = Sleeps()
    anthropic.always(AnthropicFake.overloaded(retry_after="2"))
    ch = chain(app, anthropic, openai, template="Hi $first_name, a note about $company.", sleep=sleeps)
    c = ch.complete("draft for Jane", fallback_context={"first_name": "Jane", "company": "Acme"})
    assert c.provider == "openai" and c.text == "openai draft: draft for Jane"
    assert anthropic.count == 2 and sleeps == [2.0]  # retry-after honoured once, then fall through
    assert any("anthropic: HTTP 529 overloaded_error" in n for n in c.fallbacks)

    # Anthropic asked for 2 s: within that time this process does not call it again
    openai.always(OpenAIFake.server_error(503))
    c = ch.complete("draft for Bob", fallback_context={"first_name": "Bob", "company": "Beta"})
    assert (c.provider, c.text, c.cached) == ("template", "Hi Bob, a note about Beta.", False)
    assert anthropic.count == 2 and openai.count == 2
    assert any("anthropic: skipped" in n for n in c.fallbacks) and any("HTTP 503" in n for n in c.fallbacks)

    app.clock.advance(3)
    anthropic.always(None)
    assert ch.complete("draft for Bob").provider == "anthropic" and anthropic.count == 3
    assert [u.provider for u in usage(app)] == ["openai", "template", "anthropic"]


def test_429_retry_after_bounds(app, anthropic, openai):
    sleeps = Sleeps()
    anthropic.always(AnthropicFake.rate_limited(retry_after="120"))
    c = chain(app, anthropic, openai, sleep=sleeps, max_retry_wait=20).complete("x")
    assert c.provider == "openai" and sleeps == [] and anthropic.count == 1  # too long: not waited for

    openai.queue(OpenAIFake.rate_limited(retry_after=None))
    c = chain(app, openai=openai, sleep=sleeps).complete("y")
    assert c.provider == "openai" and sleeps == [1.0] and openai.count == 3  # no retry-after: a short default


def test_timeouts_and_refused_connections_fall_through(app, anthropic, openai):
    anthropic.queue(anthropic.slow(3))
    ch = chain(app, anthropic, openai, timeout=0.3)
    c = ch.complete("x")
    assert c.provider == "openai" and any("no answer within 0.3s" in n for n in c.fallbacks)
    anthropic.stop()
    c = ch.complete("y")
    assert c.provider == "openai" and any("transport error" in n for n in c.fallbacks)


def test_nothing_configured_gives_a_deterministic_template_answer(app):
    a = from_env(app.store, app.clock, app.breakers)
    b = from_env(app.store, app.clock, app.breakers)
    ca, cb = a.complete("Write to Jane at Acme"), b.complete("Write to Jane at Acme")
    assert ca == cb and ca.provider == "template" and ca.cached is False
    assert ca.text.startswith("[offline draft ") and ca.text.endswith("] Write to Jane at Acme")
    assert a.complete("Another prompt").text != ca.text
    assert ("anthropic: not configured (ANTHROPIC_API_KEY is not set)" in ca.fallbacks
            and "openai: not configured (OPENAI_API_KEY is not set)" in ca.fallbacks)
    tpl = from_env(app.store, app.clock, app.breakers, template="Hi $first_name, $missing stays")
    assert tpl.complete("p", fallback_context={"first_name": "Jane"}).text == "Hi Jane, $missing stays"
    assert tpl.complete("p", fallback_context={"n": 1}, fallback_template="n=$n").text == "n=1"
    assert all(u.provider == "template" and u.input_tokens == 0 for u in usage(app))


def test_without_a_template_provider_total_failure_raises(app, anthropic):
    anthropic.always(AnthropicFake.server_error(500))
    ch = LLMChain([AnthropicProvider(anthropic.api_key, base_url=anthropic.base_url)], app.store, app.clock)
    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        ch.complete("x")


def test_usage_recorded_and_identical_call_served_from_cache(app, anthropic, openai):
    ch = chain(app, anthropic, openai)
    first = ch.complete("Draft for Jane", system="S", max_tokens=200)
    assert first.cached is False and anthropic.count == 1
    [u] = usage(app)
    assert (u.provider, u.model, u.input_tokens, u.output_tokens, u.cached) == (
        "anthropic", "claude-haiku-4-5", first.input_tokens, first.output_tokens, False)
    assert u.latency_ms >= 0 and u.at == app.clock()
    with app.store.read() as s:
        row = s.get(LLMCache, cache_key("anthropic", "claude-haiku-4-5", "S", "Draft for Jane", 200))
    assert row is not None and row.response == first.text

    # a re-run (a new chain, as a new process would build) costs zero provider calls
    again = chain(app, anthropic, openai).complete("Draft for Jane", system="S", max_tokens=200)
    assert again.cached is True and again.text == first.text and again.provider == "anthropic"
    assert anthropic.count == 1 and openai.count == 0
    cached = usage(app)[-1]
    assert (cached.cached, cached.input_tokens, cached.output_tokens) == (True, 0, 0)

    # anything in the key changing is a miss
    ch.complete("Draft for Jane", system="S", max_tokens=201)
    ch.complete("Draft for Jane", system="T", max_tokens=200)
    assert anthropic.count == 3


def test_cache_of_a_later_provider_is_used_before_any_network_call(app, anthropic, openai):
    anthropic.queue(AnthropicFake.server_error(500))
    ch = chain(app, anthropic, openai)
    assert ch.complete("Draft").provider == "openai"
    c = ch.complete("Draft")  # Anthropic is healthy again, but the answer is already paid for
    assert c.cached and c.provider == "openai" and anthropic.count == 1 and openai.count == 1


def test_breaker_opens_after_repeated_failures_then_the_chain_skips_the_provider(app, anthropic):
    anthropic.always(AnthropicFake.server_error(500))
    ch = chain(app, anthropic)
    results = [ch.complete(f"prompt {i}") for i in range(5)]  # llm breaker: failure_threshold 5
    assert [r.provider for r in results] == ["template"] * 5 and anthropic.count == 5
    assert breaker_state(app) == "OPEN"
    c = ch.complete("prompt 6")
    assert c.provider == "template" and anthropic.count == 5
    assert any("circuit breaker 'llm' is open" in n for n in c.fallbacks)

    anthropic.always(None)
    app.clock.advance(121)  # llm recovery_timeout_seconds 120 -> HALF_OPEN trial
    assert ch.complete("prompt 7").provider == "anthropic" and anthropic.count == 6
    assert breaker_state(app) == "CLOSED"  # llm success_threshold 1


def test_forced_open_breaker_skips_every_network_provider_and_a_400_never_opens_it(app, anthropic, openai):
    app.breakers.force("llm", "OPEN", "vendor incident", "ops")
    c = chain(app, anthropic, openai, template="fallback").complete("x")
    assert (c.provider, c.text) == ("template", "fallback")
    assert anthropic.count == 0 and openai.count == 0

    app.breakers.force("llm", "CLOSED", "resolved", "ops")
    anthropic.always(lambda req: AnthropicFake._error(400, "invalid_request_error", "prompt is too long"))
    ch = chain(app, anthropic)
    for i in range(6):
        assert ch.complete(f"p{i}").provider == "template"
    assert breaker_state(app) == "CLOSED" and anthropic.count == 6  # the request's fault, not the service's


def test_keys_never_stored_or_logged(app, anthropic, openai, monkeypatch, caplog):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-WRONG-key-abcdef123456")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-WRONG-key-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
    with caplog.at_level(logging.DEBUG):
        ch = from_env(app.store, app.clock, app.breakers, template="t")
        results = [ch.complete(f"p{i}") for i in range(6)]  # both refuse the keys (401) -> template; breaker opens
        assert [r.provider for r in results] == ["template"] * 6
        # the OpenAI fake echoes the wrong key whole in its 401 message: it must be scrubbed everywhere
        assert "Incorrect API key provided" in json.dumps(results[0].fallbacks)
        anthropic.api_key, openai.api_key = "sk-ant-WRONG-key-abcdef123456", "sk-proj-WRONG-key-abcdef123456"
        app.breakers.force("llm", "CLOSED", "keys fixed", "ops")
        ok = [ch.complete("good"), ch.complete("good")]
    assert [(c.provider, c.cached) for c in ok] == [("anthropic", False), ("anthropic", True)]
    keys = ("sk-ant-WRONG-key-abcdef123456", "sk-proj-WRONG-key-abcdef123456")
    with app.store.read() as s:
        stored = json.dumps([r.model_dump(mode="json") for m in (LLMCache, LLMUsage, BreakerState, AuditEntry)
                             for r in s.exec(select(m)).all()])
    blob = stored + caplog.text + json.dumps([r.fallbacks for r in results]) + repr(ch)
    assert "[REDACTED]" in blob
    for k in keys:
        assert k not in blob


def test_complete_many_bounds_concurrency_and_keeps_order(app, anthropic):
    anthropic.latency = 0.15
    ch = chain(app, anthropic)
    prompts = [f"prompt {i}" for i in range(12)] + [{"prompt": "custom", "max_tokens": 50}]
    out = ch.complete_many(prompts, concurrency=3)
    assert [c.text for c in out[:12]] == [f"anthropic draft: prompt {i}" for i in range(12)]
    assert out[12].text == "anthropic draft: custom"
    [custom] = [r.json for r in anthropic.requests if r.json["messages"][0]["content"] == "custom"]
    assert custom["max_tokens"] == 50
    assert anthropic.max_in_flight <= 3 and anthropic.max_in_flight >= 2
    assert len(usage(app)) == 13
    # a re-run of the whole batch is served from the cache
    again = ch.complete_many(prompts, concurrency=3)
    assert all(c.cached for c in again) and anthropic.count == 13


def test_complete_many_never_exceeds_the_requests_per_minute(app, anthropic):
    import time

    ch = chain(app, anthropic)
    started = time.monotonic()
    out = ch.complete_many([f"p{i}" for i in range(6)], concurrency=6, requests_per_minute=600)  # one per 100 ms
    elapsed = time.monotonic() - started
    assert all(c.provider == "anthropic" for c in out) and len(anthropic.requests) == 6
    # the 6th request may not start before 5 x 100 ms: a load can only make this slower, never faster (the arrival
    # spacing at the server is not used: a delayed first arrival would shrink it). The exact spacing is proven
    # without timing by test_rate_limiter_spacing_with_a_fake_clock.
    assert elapsed >= 0.5 - 0.02, elapsed


def test_rate_limiter_spacing_with_a_fake_clock():
    now = [100.0]
    lock = threading.Lock()

    def sleep(s):
        with lock:
            now[0] += s

    lim = RateLimiter(60, monotonic=lambda: now[0], sleep=sleep)  # one a second
    waits = [lim.acquire() for _ in range(5)]
    assert waits == [0.0, 1.0, 1.0, 1.0, 1.0]
    now[0] += 10  # idle time does not bank a burst
    assert lim.acquire() == 0.0 and lim.acquire() == 1.0
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_completion_shape():
    c = Completion("t", "template", "template", 0, 0, False)
    assert c.fallbacks == () and c.cached is False
