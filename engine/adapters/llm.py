"""LLM provider chain for drafting: Anthropic -> OpenAI -> an offline template that always answers.

``LLMChain.complete()`` walks the providers in order:

* a provider without an API key is skipped ("not configured");
* the response cache (``llm_cache``, keyed by sha256 of provider, model, system, prompt and max_tokens) is
  consulted for every configured network provider *before any network call*, so re-running the same drafts
  costs zero provider calls;
* every network call goes through the shared ``llm`` circuit breaker (open -> skip to the next provider);
* ``429`` and Anthropic's ``529 overloaded`` are retried once after ``retry-after`` (bounded by
  ``max_retry_wait``); if the provider still refuses, the chain falls through to the next provider and, when the
  provider named a time (``retry-after``), does not call it again in this process before that time;
* 5xx, timeouts and transport errors fall through at once;
* the ``TemplateProvider`` renders ``string.Template.safe_substitute(fallback_context)`` (or a deterministic text
  derived from the prompt) offline.

Each answered call is recorded in ``llm_usage`` (cache hits with ``cached=True`` and zero tokens: they cost
nothing). API keys are never logged or stored: every message that could carry one is scrubbed and redacted.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import hashlib
import json
import logging
import os
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from engine.adapters.audit import REDACTED, redact
from engine.core.clock import Clock, iso
from engine.adapters.models import LLMCache, LLMUsage
from engine.adapters.slack import parse_retry_after

log = logging.getLogger("alpha.llm")

BREAKER = "llm"
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Completion:
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached: bool
    fallbacks: tuple[str, ...] = ()  # why earlier providers were skipped or failed (scrubbed)


@dataclass(frozen=True)
class ProviderReply:
    text: str
    input_tokens: int
    output_tokens: int


class ProviderError(Exception):
    """One failed provider call. ``kind``: rate_limited | overloaded | server | timeout | transport | client |
    refused | bad_response."""

    RETRYABLE = ("rate_limited", "overloaded")

    def __init__(self, provider: str, kind: str, message: str, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.provider, self.kind, self.status, self.retry_after = provider, kind, status, retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE

    @property
    def breaker_failure(self) -> bool:
        # a 400/413/422 is about this one request; the service answered, so it says nothing about its health
        return self.kind != "client"


class LLMUnavailable(Exception):
    """Every provider was skipped or failed and the chain has no offline template provider."""


def cache_key(provider: str, model: str, system: str | None, prompt: str, max_tokens: int) -> str:
    raw = json.dumps([provider, model, system, prompt, int(max_tokens)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _scrub(text: str, *secrets: str | None) -> str:
    s = str(text)
    for secret in secrets:
        if secret:
            s = s.replace(secret, REDACTED)
    return redact(s)


def _strip_v1(base: str) -> str:
    base = base.strip().rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


# ---------------------------------------------------------------------------------------------- providers

class HTTPProvider(ABC):
    name = "http"
    network = True
    DEFAULT_MODEL = ""
    DEFAULT_BASE_URL = ""
    PATH = ""
    KEY_ENV = MODEL_ENV = BASE_ENV = RPM_ENV = ""

    def __init__(self, api_key: str | None, model: str | None = None, base_url: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self._key = (api_key or "").strip() or None
        self.model = (model or "").strip() or self.DEFAULT_MODEL
        self.base_url = _strip_v1(base_url or self.DEFAULT_BASE_URL)
        self.timeout = timeout
        self.transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, **kw) -> "HTTPProvider":
        return cls(os.environ.get(cls.KEY_ENV), os.environ.get(cls.MODEL_ENV) or None,
                   os.environ.get(cls.BASE_ENV) or None, **kw)

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self._key is not None

    @property
    def url(self) -> str:
        return self.base_url + self.PATH

    def scrub(self, text: str) -> str:
        return _scrub(text, self._key)

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                # every connection kept alive: bulk drafting keeps up to LLMChain.concurrency calls in flight, and a
                # new connection costs a TLS handshake each time
                self._client = httpx.Client(timeout=self.timeout, transport=self.transport, follow_redirects=False,
                                            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # each provider's wire format
    @abstractmethod
    def headers(self) -> dict[str, str]: ...

    @abstractmethod
    def body(self, prompt: str, system: str | None, max_tokens: int) -> dict: ...

    @abstractmethod
    def parse(self, data: Any) -> ProviderReply: ...

    def classify(self, status: int) -> str:
        if status == 429:
            return "rate_limited"
        if status >= 500:
            return "server"
        if status in (400, 413, 422):
            return "client"
        return "refused"  # 401/403/404...: a configuration problem (key, model, base URL)

    def call(self, prompt: str, system: str | None, max_tokens: int) -> ProviderReply:
        """One HTTP attempt. Raises ProviderError (its message is scrubbed of the key)."""
        try:
            r = self.client().post(self.url, headers=self.headers(), json=self.body(prompt, system, max_tokens))
        except httpx.TimeoutException:
            raise ProviderError(self.name, "timeout", f"{self.name}: no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as e:
            raise ProviderError(self.name, "transport",
                                self.scrub(f"{self.name}: transport error {type(e).__name__}: {e}")) from None
        if r.status_code == 200:
            try:
                return self.parse(r.json())
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise ProviderError(self.name, "bad_response", self.scrub(
                    f"{self.name}: unexpected response body ({type(e).__name__}: {e})"), 200) from None
        kind = self.classify(r.status_code)
        retry_after = None
        if kind in ProviderError.RETRYABLE:
            ms = r.headers.get("retry-after-ms")
            try:
                retry_after = float(ms) / 1000.0 if ms else None
            except ValueError:
                retry_after = None
            if retry_after is None:
                retry_after = parse_retry_after(r.headers.get("retry-after"))
        raise ProviderError(self.name, kind, self.scrub(f"{self.name}: HTTP {r.status_code} {_error_text(r)}"),
                            r.status_code, retry_after)


def _error_text(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        if isinstance(err, dict):
            return f"{err.get('type') or err.get('code') or 'error'}: {str(err.get('message') or '')[:300]}"
    except (ValueError, AttributeError):
        pass
    return (r.text or r.reason_phrase or "")[:300]


class AnthropicProvider(HTTPProvider):
    """Anthropic Messages API."""

    name = "anthropic"
    DEFAULT_MODEL = "claude-haiku-4-5"
    DEFAULT_BASE_URL = "https://api.anthropic.com"
    PATH = "/v1/messages"
    KEY_ENV, MODEL_ENV, BASE_ENV = "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL", "ANTHROPIC_BASE_URL"
    RPM_ENV = "ANTHROPIC_RPM"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._key or "", "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json"}

    def body(self, prompt: str, system: str | None, max_tokens: int) -> dict:
        b: dict[str, Any] = {"model": self.model, "max_tokens": int(max_tokens),
                             "messages": [{"role": "user", "content": prompt}]}
        if system:
            b["system"] = system
        return b

    def parse(self, data: Any) -> ProviderReply:
        blocks = data["content"]
        texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type", "text") == "text"]
        if not texts:
            raise ValueError(f"no text content (stop_reason {data.get('stop_reason')!r})")
        usage = data.get("usage") or {}
        return ProviderReply("".join(texts), int(usage.get("input_tokens") or 0),
                             int(usage.get("output_tokens") or 0))

    def classify(self, status: int) -> str:
        if status == 529:
            return "overloaded"
        return super().classify(status)


class OpenAIProvider(HTTPProvider):
    """OpenAI Chat Completions API."""

    name = "openai"
    DEFAULT_MODEL = "gpt-4o-mini"
    DEFAULT_BASE_URL = "https://api.openai.com"
    PATH = "/v1/chat/completions"
    KEY_ENV, MODEL_ENV, BASE_ENV = "OPENAI_API_KEY", "OPENAI_MODEL", "OPENAI_BASE_URL"
    RPM_ENV = "OPENAI_RPM"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._key or ''}", "content-type": "application/json"}

    def body(self, prompt: str, system: str | None, max_tokens: int) -> dict:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return {"model": self.model, "messages": messages, "max_completion_tokens": int(max_tokens)}

    def parse(self, data: Any) -> ProviderReply:
        msg = data["choices"][0]["message"]
        content = msg.get("content")
        if not isinstance(content, str) or not content:
            raise ValueError(f"no content (refusal: {msg.get('refusal')!r})")
        usage = data.get("usage") or {}
        return ProviderReply(content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


class TemplateProvider:
    """Offline and deterministic: always answers."""

    name = "template"
    model = "template"
    network = False
    configured = True

    def __init__(self, template: str | None = None):
        self.template = template

    def __repr__(self) -> str:
        return f"TemplateProvider(template={'set' if self.template else None})"

    def render(self, prompt: str, fallback_context: Mapping | None = None, template: str | None = None) -> str:
        tpl = template if template is not None else self.template
        if tpl is not None:
            return string.Template(tpl).safe_substitute({k: "" if v is None else str(v)
                                                         for k, v in (fallback_context or {}).items()})
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
        head = " ".join(prompt.split())
        head = head if len(head) <= 200 else head[:199] + "…"
        return f"[offline draft {digest}] {head}"

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- limiter

class RateLimiter:
    """At most ``per_minute`` requests a minute, evenly spaced (one every 60/per_minute seconds), shared by
    every thread that holds it. A slot is reserved under the lock and waited for outside it."""

    def __init__(self, per_minute: float, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = time.sleep):
        if per_minute <= 0:
            raise ValueError("requests per minute must be positive")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self.monotonic, self.sleep = monotonic, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self.monotonic()
            at = now if self._next is None else max(now, self._next)
            self._next = at + self.interval
        wait = at - now
        if wait > 0:
            self.sleep(wait)
        return max(0.0, wait)


# ---------------------------------------------------------------------------------------------- chain

Provider = Any  # HTTPProvider | TemplateProvider


class LLMChain:
    def __init__(self, providers: Sequence[Provider], store, clock: Clock, breakers=None,
                 sleep: Callable[[float], Any] = time.sleep, max_retry_wait: float = 20.0,
                 default_retry_wait: float = 1.0,
                 requests_per_minute: int | Mapping[str, int] | None = None, concurrency: int = 8):
        self.providers = list(providers)
        # how many calls callers that draft in bulk (drafting.draft_many) keep in flight; the limiters below
        # keep them within each provider's requests-per-minute limit whatever this is
        self.concurrency = max(1, int(concurrency))
        self.store, self.clock, self.breakers = store, clock, breakers
        self.sleep = sleep
        self.max_retry_wait, self.default_retry_wait = max_retry_wait, default_retry_wait
        self._limiters = self._make_limiters(requests_per_minute)
        self._cooldown: dict[str, datetime] = {}
        self._cooldown_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LLMChain({self.providers!r})"

    @classmethod
    def from_env(cls, store, clock: Clock, breakers=None, *, template: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, **kw) -> "LLMChain":
        """Keys, models and base URLs from the environment, and the account's limits: ``ANTHROPIC_RPM`` /
        ``OPENAI_RPM`` (requests per minute, every request counted, retries included) and
        ``ALPHA_LLM_CONCURRENCY`` (calls in flight when drafting in bulk, default 8)."""
        http: list[HTTPProvider] = [AnthropicProvider.from_env(timeout=timeout, transport=transport),
                                    OpenAIProvider.from_env(timeout=timeout, transport=transport)]
        providers: list[Provider] = [*http, TemplateProvider(template)]
        if "requests_per_minute" not in kw:  # the template makes no request: only the network providers have one
            rpm = {p.name: n for p in http if p.network and (n := _env_int(p.RPM_ENV)) is not None}
            kw["requests_per_minute"] = rpm or None
        if "concurrency" not in kw and (n := _env_int("ALPHA_LLM_CONCURRENCY")) is not None:
            kw["concurrency"] = n
        return cls(providers, store, clock, breakers, **kw)

    def close(self) -> None:
        for p in self.providers:
            p.close()

    def __enter__(self) -> "LLMChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ public

    def complete(self, prompt: str, system: str | None = None, max_tokens: int = 300,
                 fallback_context: Mapping | None = None, *, fallback_template: str | None = None) -> Completion:
        return self._complete(prompt, system, max_tokens, fallback_context, fallback_template, self._limiters)

    def complete_many(self, prompts: Iterable[str | Mapping], concurrency: int = 8,
                      requests_per_minute: int | Mapping[str, int] | None = None, *, system: str | None = None,
                      max_tokens: int = 300, fallback_context: Mapping | None = None,
                      fallback_template: str | None = None) -> list[Completion]:
        """Complete many prompts with at most ``concurrency`` in flight, in input order.

        An item is a prompt string or a dict of ``complete()`` arguments (``prompt`` and optionally ``system``,
        ``max_tokens``, ``fallback_context``, ``fallback_template``) overriding the shared ones.
        ``requests_per_minute`` (one number for every network provider, or a dict by provider name) caps the
        network requests of this run, retries included; cache hits and the template cost no request.
        """
        items = [{"prompt": p} if isinstance(p, str) else dict(p) for p in prompts]
        if not items:
            return []
        limiters = self._make_limiters(requests_per_minute) if requests_per_minute is not None else self._limiters
        defaults = {"system": system, "max_tokens": max_tokens, "fallback_context": fallback_context,
                    "fallback_template": fallback_template}

        def one(item: dict) -> Completion:
            a = {**defaults, **item}
            return self._complete(a["prompt"], a["system"], a["max_tokens"], a["fallback_context"],
                                  a["fallback_template"], limiters)

        with ThreadPoolExecutor(max_workers=max(1, min(int(concurrency), len(items))),
                                thread_name_prefix="llm") as pool:
            futures = [pool.submit(one, it) for it in items]
            return [f.result() for f in futures]

    # ------------------------------------------------------------------------------------------ internals

    def _make_limiters(self, rpm: int | Mapping[str, int] | None) -> dict[str, RateLimiter]:
        if rpm is None:
            return {}
        names = [p.name for p in self.providers if p.network]
        if isinstance(rpm, Mapping):
            return {n: RateLimiter(rpm[n]) for n in names if rpm.get(n)}
        return {n: RateLimiter(rpm) for n in names}

    def _complete(self, prompt: str, system: str | None, max_tokens: int, fallback_context: Mapping | None,
                  fallback_template: str | None, limiters: Mapping[str, RateLimiter]) -> Completion:
        notes: list[str] = []
        network = [p for p in self.providers if p.network and p.configured]
        for p in self.providers:
            if p.network and not p.configured:
                notes.append(f"{p.name}: not configured ({p.KEY_ENV} is not set)")

        # 1. the cache, for every configured network provider, before any network call
        keys = {p.name: cache_key(p.name, p.model, system, prompt, max_tokens) for p in network}
        if keys:
            hit = self._cache_lookup([(p, keys[p.name]) for p in network])
            if hit is not None:
                p, row = hit
                self._record_usage(p.name, p.model, 0, 0, True, 0)
                return Completion(row.response, p.name, p.model, row.input_tokens, row.output_tokens, True,
                                  tuple(notes))

        # 2. the providers in order
        for p in self.providers:
            if not p.network:
                t0 = time.monotonic()
                text = p.render(prompt, fallback_context, fallback_template)
                self._record_usage(p.name, p.model, 0, 0, False, int((time.monotonic() - t0) * 1000))
                if notes:
                    log.info("llm: answered by the offline template (%s)", "; ".join(notes))
                return Completion(text, p.name, p.model, 0, 0, False, tuple(notes))
            if not p.configured:
                continue
            until = self._cooldown_until(p.name)
            if until is not None:
                notes.append(f"{p.name}: skipped, it asked for no calls before {iso(until)}")
                continue
            if self.breakers is not None:
                ok, retry_at = self.breakers.admit(BREAKER)
                if not ok:
                    notes.append(f"{p.name}: skipped, circuit breaker 'llm' is open until {iso(retry_at)}")
                    continue
            t0 = time.monotonic()
            try:
                reply = self._call(p, prompt, system, max_tokens, limiters.get(p.name))
            except ProviderError as e:
                msg = p.scrub(str(e))
                self._breaker(not e.breaker_failure, msg, p)
                if e.retryable and e.retry_after is not None:
                    self._set_cooldown(p.name, e.retry_after)
                notes.append(msg)
                log.warning("llm: %s failed (%s), falling through: %s", p.name, e.kind, msg)
                continue
            latency = int((time.monotonic() - t0) * 1000)
            self._breaker(True, None, p)
            self._store_result(keys[p.name], p, reply, latency)
            return Completion(reply.text, p.name, p.model, reply.input_tokens, reply.output_tokens, False,
                              tuple(notes))
        raise LLMUnavailable("no provider answered: " + "; ".join(notes))

    def _call(self, p: HTTPProvider, prompt: str, system: str | None, max_tokens: int,
              limiter: RateLimiter | None) -> ProviderReply:
        """One attempt, plus one retry after a 429/529 when the wait asked for is within bounds."""
        retried = False
        while True:
            if limiter is not None:
                limiter.acquire()
            try:
                return p.call(prompt, system, max_tokens)
            except ProviderError as e:
                if not e.retryable or retried:
                    raise
                delay = e.retry_after if e.retry_after is not None else self.default_retry_wait
                if delay > self.max_retry_wait:
                    raise
                log.info("llm: %s answered %s; retrying once in %.1fs", p.name, e.status, delay)
                self.sleep(delay)
                retried = True

    def _cooldown_until(self, name: str) -> datetime | None:
        with self._cooldown_lock:
            until = self._cooldown.get(name)
            if until is None:
                return None
            if self.clock() >= until:
                del self._cooldown[name]
                return None
            return until

    def _set_cooldown(self, name: str, seconds: float) -> None:
        with self._cooldown_lock:
            self._cooldown[name] = self.clock() + timedelta(seconds=seconds)

    def _breaker(self, ok: bool, error: str | None, p: HTTPProvider) -> None:
        if self.breakers is None:
            return
        try:
            self.breakers.record(BREAKER, ok, p.scrub(error) if error else None)
        except Exception as e:  # noqa: BLE001 - the call itself is done; do not lose its answer
            log.error("llm: could not record the breaker outcome: %s", p.scrub(f"{type(e).__name__}: {e}"))

    def _cache_lookup(self, candidates: list[tuple[HTTPProvider, str]]) -> tuple[HTTPProvider, LLMCache] | None:
        with self.store.read() as s:
            rows = {r.key: r for r in s.exec(select(LLMCache).where(col(LLMCache.key).in_([k for _, k in candidates])))}
        for p, k in candidates:
            if k in rows:
                return p, rows[k]
        return None

    def _store_result(self, key: str, p: HTTPProvider, reply: ProviderReply, latency_ms: int) -> None:
        """Cache the answer and record its usage in one transaction (one write per call, not two)."""
        now = self.clock()
        try:
            with self.store.write_plain() as s:
                if s.get(LLMCache, key) is None:
                    s.add(LLMCache(key=key, provider=p.name, model=p.model[:100], response=reply.text,
                                   input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                                   created_at=now))
                s.add(self._usage_row(p.name, p.model, reply.input_tokens, reply.output_tokens, False, latency_ms))
            return
        except IntegrityError:
            pass  # a concurrent identical call cached it first: record the usage alone
        except Exception as e:  # noqa: BLE001 - never lose a paid answer over its cache row
            log.error("llm: could not cache a %s response: %s", p.name, p.scrub(f"{type(e).__name__}: {e}"))
        self._record_usage(p.name, p.model, reply.input_tokens, reply.output_tokens, False, latency_ms)

    def _usage_row(self, provider: str, model: str, input_tokens: int, output_tokens: int, cached: bool,
                   latency_ms: int) -> LLMUsage:
        return LLMUsage(provider=provider, model=model[:100], input_tokens=input_tokens, output_tokens=output_tokens,
                        cached=cached, latency_ms=latency_ms, at=self.clock())

    def _record_usage(self, provider: str, model: str, input_tokens: int, output_tokens: int, cached: bool,
                      latency_ms: int) -> None:
        try:
            with self.store.write_plain() as s:
                s.add(self._usage_row(provider, model, input_tokens, output_tokens, cached, latency_ms))
        except Exception as e:  # noqa: BLE001
            log.error("llm: could not record usage for %s: %s", provider, redact(f"{type(e).__name__}: {e}"))


def _env_int(name: str) -> int | None:
    """A positive whole number from the environment; unset or empty is None; anything else is ignored loudly."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n <= 0:
        log.warning("llm: %s=%r is not a positive whole number; ignored", name, raw[:40])
        return None
    return n


def from_env(store, clock: Clock, breakers=None, **kw) -> LLMChain:
    return LLMChain.from_env(store, clock, breakers, **kw)
