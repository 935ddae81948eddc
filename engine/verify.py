"""`alpha verify`: is every integration healthy? Each check answers pass, fail or not_configured with a reason;
the run is stored (verify_run) for the readiness score. Only configured checks can fail the run."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

import httpx

from .clock import iso
from .models import VerifyRun

PASS, FAIL, NOT_CONFIGURED, SKIPPED = "pass", "fail", "not_configured", "skipped"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Check:
    name: str
    status: str
    reason: str
    seconds: float = 0.0


def is_sandbox_url(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOOPBACK


def _timed(name: str, fn) -> Check:
    t = time.perf_counter()
    try:
        status, reason = fn()
    except Exception as e:  # noqa: BLE001 - a check that cannot run has failed, with its reason
        status, reason = FAIL, f"{type(e).__name__}: {e}"
    return Check(name, status, reason, round(time.perf_counter() - t, 3))


def check_ghl(app) -> Check:
    def run():
        if not (os.environ.get("GHL_API_KEY") and os.environ.get("GHL_LOCATION_ID")):
            return NOT_CONFIGURED, "GHL_API_KEY and GHL_LOCATION_ID are not set: the sandbox executor records sends"
        from .integrations.ghl import GHLClient

        with GHLClient.from_env(timeout=5.0, max_attempts=1) as client:
            loc = client.get_location()
            name = (loc.get("location") or loc).get("name") if isinstance(loc, dict) else None
            where = "SANDBOX " if is_sandbox_url(client.base_url) else ""
            return PASS, f"{where}location {client.location_id} fetched ({name or 'unnamed'}) from {client.base_url}"

    return _timed("ghl", run)


def check_slack(app, send: bool) -> Check:
    def run():
        alerter = app.alerter
        if not alerter.configured:
            return NOT_CONFIGURED, "SLACK_WEBHOOK_URL is not set: alerts are recorded, not delivered"
        if not send:
            return SKIPPED, "configured; no test message sent (--no-send)"
        row = alerter.send_test("alpha verify: Slack alerts are reachable.")
        if row.status == "sent":
            return PASS, "test message delivered"
        return FAIL, f"test message not delivered: {row.error}"

    return _timed("slack", run)


def check_llm(app) -> Check:
    def run():
        from .integrations.llm import TemplateProvider

        chain = app.llm
        network = [p for p in chain.providers if not isinstance(p, TemplateProvider)
                   and getattr(p, "configured", False)]
        if not network:
            return NOT_CONFIGURED, "no LLM key set: drafts use the offline template renderer"
        c = chain.complete(f"Reply with the single word OK. ({iso(app.clock())})", max_tokens=5)
        if c.provider == "template":
            return FAIL, "every configured provider failed: " + "; ".join(c.fallbacks)
        return PASS, f"{c.provider} {c.model} answered ({c.input_tokens}+{c.output_tokens} tokens)"

    return _timed("llm", run)


def check_webhooks(url: str | None = None) -> Check:
    base = (url or os.environ.get("ALPHA_WEBHOOK_URL") or "http://127.0.0.1:8787").rstrip("/")

    def run():
        try:
            r = httpx.get(f"{base}/healthz", timeout=3.0)
        except httpx.HTTPError as e:
            return FAIL, (f"webhook receiver not reachable at {base} ({type(e).__name__}): "
                          "start it with `alpha webhooks serve`")
        if r.status_code == 200 and r.json().get("ok"):
            return PASS, f"webhook receiver answers at {base}"
        return FAIL, f"{base}/healthz answered {r.status_code}"

    return _timed("webhooks", run)


def check_breakers(app) -> Check:
    def run():
        bad = [f"{b.name}={b.state}" for b in app.breakers.list() if b.state != "CLOSED"]
        return (FAIL, "not closed: " + ", ".join(bad)) if bad else (PASS, "every circuit breaker is CLOSED")

    return _timed("breakers", run)


def run_verify(app, send_slack: bool = True, webhook_url: str | None = None) -> dict:
    checks = [check_ghl(app), check_slack(app, send_slack), check_llm(app), check_webhooks(webhook_url),
              check_breakers(app)]
    ok = all(c.status != FAIL for c in checks)
    now = app.clock()
    results = [asdict(c) for c in checks]
    with app.store.write_plain() as s:
        s.add(VerifyRun(at=now, ok=ok, results=results))
    return {"ok": ok, "at": iso(now), "checks": results}
