"""(d) Drafting with an LLM: 1,000 first-touch drafts, each asking a local fake of the Anthropic Messages API
(loopback HTTP, tests/fake_servers.AnthropicFake) that answers every request after 200 ms and refuses (429)
any request beyond its rate limit of 6,000 requests a minute, enforced as a token bucket of one second's worth
(100 requests, refilled at 100 a second), as providers do. The chain is configured the way an operator would:
ANTHROPIC_RPM=5700 (5% headroom) and ALPHA_LLM_CONCURRENCY=32. Goal: under 15 s, never above the provider's limit
(zero 429s), and zero LLM calls when the same drafts are made again (the response cache).

Bare: the same number of HTTP requests to the same fake with the same concurrency and the same requests-per-
minute limiter, straight through httpx (no prompt, no cache, no database, no drafting): the floor the rate
limit and the latency impose.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .common import Figure, Progress, database, make_app, median, timed, write_leads_csv

NAME = "drafting"
TITLE = "Drafting 1,000 emails with an LLM"
GOAL_SECONDS = 15.0
PROVIDER_RPM = 6000          # the fake provider's limit
CHAIN_RPM = 5700             # what the chain is told (headroom for jitter)
CONCURRENCY = 32


class LimitedAnthropic:
    """The fake Anthropic API behind a provider-style rate limit: a token bucket holding one second's worth of
    requests (RPM/60), refilled continuously at RPM/60 a second (Anthropic documents its limits as a token bucket
    that may be enforced over intervals shorter than a minute). A request finding the bucket empty gets 429."""

    def __init__(self, latency: float, rpm: int):
        from tests.fake_servers import AnthropicFake

        self.rate = rpm / 60.0
        self.fake = AnthropicFake(latency=latency, reply=lambda prompt: (
            "Hope the quarter is going well for you and the team."))
        self._lock = threading.Lock()
        self.reset()
        self.fake.always(self._answer)

    def _answer(self, req):
        with self._lock:
            now = req.at
            if self._last is not None:
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self.arrivals.append(now)
            while self.arrivals and self.arrivals[0] <= now - 1.0:
                self.arrivals.popleft()
            self.max_per_second = max(self.max_per_second, len(self.arrivals))
            if self._tokens < 1.0:
                self.refused += 1
                return self.fake.rate_limited("1")
            self._tokens -= 1.0
        return self.fake.default(req)

    def reset(self) -> None:
        with self._lock:
            self._tokens, self._last = self.rate, None
            self.arrivals: deque[float] = deque()
            self.refused = 0
            self.max_per_second = 0


def _jobs(app, n: int, ctx):
    """``n`` leads that are not disqualified, each with its cold first-touch step."""
    from sqlmodel import select

    from engine.adapters.leads_csv import import_leads
    from engine.adapters.models import Lead
    from engine.services.pipeline import score_leads

    import_leads(app.store, write_leads_csv(ctx.tmp / f"draft_{n}.csv", int(n * 1.5) + 20, seed=5), app.clock)
    score_leads(app)
    with app.store.read() as s:
        leads = list(s.exec(select(Lead).where(Lead.tier.is_not(None)).order_by(Lead.id).limit(n)).all())
    return [(lead, ("cold", 1)) for lead in leads]


def _bare(url: str, n: int, latency_probe) -> float:
    """n plain requests at the same concurrency and rate limit."""
    import httpx

    from engine.adapters.llm import RateLimiter

    limiter = RateLimiter(CHAIN_RPM)
    client = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64), timeout=30)
    body = {"model": "claude-haiku-4-5", "max_tokens": 120, "messages": [{"role": "user", "content": "x"}]}
    headers = {"x-api-key": latency_probe.fake.api_key, "anthropic-version": "2023-06-01"}

    def one(_):
        limiter.acquire()
        r = client.post(url + "/v1/messages", json=body, headers=headers)
        r.raise_for_status()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(n)))
    client.close()
    return time.perf_counter() - t0


def run(ctx) -> list[Figure]:
    from engine.services.drafting import draft_many
    from engine.rules.messaging import load_pack

    n, latency = ctx.size(20, 1000), ctx.size(0.02, 0.2)
    runs = ctx.runs(3)
    p = Progress(NAME)
    server = LimitedAnthropic(latency, PROVIDER_RPM)
    # The fake's socketserver listens with a backlog of 5: 32 clients connecting at once overflow it and get a
    # reset now and then (a real provider's front door does not). A deeper backlog, for this server only.
    from http.server import ThreadingHTTPServer

    backlog = ThreadingHTTPServer.request_queue_size
    ThreadingHTTPServer.request_queue_size = 256
    try:
        server.fake.start()
    finally:
        ThreadingHTTPServer.request_queue_size = backlog
    env = {"ANTHROPIC_API_KEY": server.fake.api_key, "ANTHROPIC_BASE_URL": server.fake.base_url,
           "ANTHROPIC_RPM": str(CHAIN_RPM), "ALPHA_LLM_CONCURRENCY": str(CONCURRENCY)}
    os.environ.update(env)
    first, second, bares, calls, again_calls, refused, peak, in_flight = [], [], [], [], [], [], [], []
    drafted, from_llm = [], []
    try:
        for i in range(1, runs + 1):
            with database("sqlite", ctx.tmp) as url:
                app = make_app(url)
                jobs = _jobs(app, n, ctx)
                pack = load_pack(app.settings.config_dir)
                server.reset()
                server.fake.reset()
                server.fake.always(server._answer)
                t1, drafts = timed(lambda jobs=jobs, pack=pack, app=app: draft_many(
                    jobs, pack, app.settings, app.secret, llm=app.llm, now=app.clock(), approved_only=False))
                calls.append(server.fake.count)
                refused.append(server.refused)
                peak.append(server.max_per_second)
                in_flight.append(server.fake.max_in_flight)
                drafted.append(len(drafts))
                from_llm.append(sum(1 for d in drafts if getattr(d, "provider", None) == "anthropic"))
                why_not = {str((d.provenance.get("llm") or {}).get("error") or (d.provenance.get("llm") or {}))[:200]
                           for d in drafts if getattr(d, "provider", "anthropic") != "anthropic"}
                if why_not:
                    p.note(f"{len(drafts) - from_llm[-1]} drafts without the LLM: {sorted(why_not)[:3]}")
                before = server.fake.count
                t2, _ = timed(lambda jobs=jobs, pack=pack, app=app: draft_many(
                    jobs, pack, app.settings, app.secret, llm=app.llm, now=app.clock(), approved_only=False))
                again_calls.append(server.fake.count - before)
                app.llm.close()
                app.store.dispose()
            server.reset()
            tb = _bare(server.fake.base_url, len(jobs), server)
            first.append(t1)
            second.append(t2)
            bares.append(tb)
            p.run(f"{len(jobs):,} drafts: {calls[-1]:,} calls, {refused[-1]} refused (429), peak {peak[-1]}/s, "
                  f"{in_flight[-1]} in flight; again: {t2:.2f} s, {again_calls[-1]} calls; bare {tb:.2f} s; first",
                  i, runs, t1)
    finally:
        server.fake.stop()
        for k in env:
            os.environ.pop(k, None)
    fig = Figure(f"Draft {n:,} emails, LLM answering in {int(latency * 1000)} ms", "s", first,
                 goal=f"< {GOAL_SECONDS:g} s, no request over the provider's limit", baseline=median(bares))
    fig.ratio = fig.median / fig.baseline
    fig.passed = fig.median < GOAL_SECONDS and max(refused) == 0
    fig.extra = {"llm_calls": calls, "refused_429": refused, "peak_requests_in_1s": peak, "max_in_flight": in_flight,
                 "drafts_from_llm": from_llm, "provider_rpm": PROVIDER_RPM, "chain_rpm": CHAIN_RPM,
                 "concurrency": CONCURRENCY}
    fig.note = (f"{median(calls):,.0f} LLM calls, {max(refused)} refused with 429 (limit {PROVIDER_RPM:,}/min as a "
                f"bucket of {PROVIDER_RPM // 60}), at most {max(peak)} requests in any second, {max(in_flight)} in "
                f"flight; bare = the same requests "
                f"through httpx at the same limit and concurrency")
    again = Figure(f"Same {n:,} drafts again (response cache)", "s", second, goal="zero LLM calls")
    again.passed = max(again_calls) == 0
    again.extra = {"llm_calls": again_calls}
    missed = max(total - got for total, got in zip(drafted, from_llm))
    again.note = (f"{max(again_calls)} LLM calls on the second run"
                  + (f" (asking again for the {missed} drafts the LLM did not answer the first time)" if missed else
                     "; every answer came from llm_cache"))
    return [fig, again]
