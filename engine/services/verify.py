"""`alpha verify`: is every integration healthy, and is it the real one? Each check answers pass, fail,
not_configured, skipped (configured, not tested) or sandbox (a local stand-in: GHL or Slack at an address of this
machine, or a GHL that answers as the local sandbox wherever it is reached) with a reason; the run is stored
(verify_run) as readiness evidence.

The report says two things (``assess``):
- ready for sandbox: no check failed, so the local loop works (a sandbox GHL, no Slack, no LLM are fine);
- ready for live phases (assisted, autonomous): every integration a live send needs is configured, real and
  passing: GHL real (not the sandbox) and answering, Slack configured and its test message delivered (with
  ``--no-send`` it is configured but not tested, which is not a pass), the webhook receiver answering, every
  breaker closed. The LLM is optional by design (drafts fall back to the approved templates' own wording), so
  an unconfigured LLM is reported as not required; a configured one that fails is a failure.
``ok`` (and the exit code of `alpha verify`) is "ready for live phases"; `alpha verify --sandbox` accepts the
sandbox loop instead."""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

from engine.adapters.breakers import Breakers
from engine.adapters.ports import Readable, Stored
from engine.core.clock import iso
from engine.adapters.ghl_sandbox import SANDBOX_COMPANY_ID, is_sandbox_location
from engine.adapters.models import VerifyRun

PASS, FAIL, NOT_CONFIGURED, SKIPPED, SANDBOX = "pass", "fail", "not_configured", "skipped", "sandbox"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8787"
# What a live phase needs of each check: "required" must pass; "optional" must pass when configured.
LIVE_NEEDS = {"ghl": "required", "slack": "required", "llm": "optional", "webhooks": "required",
              "breakers": "required"}
LLM_NOT_REQUIRED = "not required: drafts fall back to the approved templates' own wording"


@dataclass
class Check:
    name: str
    status: str
    reason: str
    seconds: float = 0.0
    required: bool = True  # needed for live phases
    live: bool = False     # counts as ready for live phases


def _local_ip(text: str) -> bool | None:
    """Whether ``text``, read as an IP address the way the resolver reads it, is this machine: loopback
    (127.0.0.0/8, ::1, also IPv4-mapped) or unspecified (0.0.0.0, ::, which connect to the local host). The
    resolver's short and numeric IPv4 forms count too (127.1, 2130706433, 0x7f.0.0.1, 0). None: not an address."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(text))
        except (OSError, ValueError):
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _host(url: str) -> str:
    """The host of ``url`` as it is compared: lower case, without brackets or the root's trailing dot."""
    return (urlparse(url.strip()).hostname or "").strip("[]").lower().rstrip(".")


def is_sandbox_url(url: str) -> bool:
    """A loopback or unspecified address in any spelling (127.0.0.0/8, 127.1, 0.0.0.0, ::1, ::ffff:127.0.0.1,
    localhost, *.localhost, with or without the trailing dot): a local stand-in, never the real service. Read
    from the URL alone (no name lookup); `alpha verify` also looks at where a host name leads
    (resolves_to_local)."""
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return bool(_local_ip(host))


def resolves_to_local(url: str) -> bool:
    """Whether the host name of ``url`` resolves to this machine (any address loopback or unspecified), e.g. a
    hosts-file entry or a DNS name for the sandbox. A name that does not resolve is not local (a check of it
    fails on its own); an IP address is is_sandbox_url's to judge."""
    host = _host(url)
    if not host or _local_ip(host) is not None:
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return any(_local_ip(str(info[4][0]).split("%", 1)[0]) for info in infos)


def _timed(name: str, fn) -> Check:
    t = time.perf_counter()
    try:
        status, reason = fn()
    except Exception as e:  # noqa: BLE001 - a check that cannot run has failed, with its reason
        status, reason = FAIL, f"{type(e).__name__}: {e}"
    return Check(name, status, reason, round(time.perf_counter() - t, 3))


class Verifiable(Stored, Protocol):
    """What `alpha verify` probes of the engine (engine.app.App): its store and clock, its Slack alerter, LLM chain
    and circuit breakers."""

    @property
    def alerter(self) -> Any: ...

    @property
    def llm(self) -> Any: ...

    @property
    def breakers(self) -> Breakers: ...


def check_ghl(app: object) -> Check:
    def run():
        if not (os.environ.get("GHL_API_KEY") and os.environ.get("GHL_LOCATION_ID")):
            return NOT_CONFIGURED, "GHL_API_KEY and GHL_LOCATION_ID are not set: the sandbox executor records sends"
        from engine.adapters.ghl import GHLClient

        with GHLClient.from_env(timeout=5.0, max_attempts=1) as client:
            loc = client.get_location()
            name = (loc.get("location") or loc).get("name") if isinstance(loc, dict) else None
            if is_sandbox_location(loc):  # wherever it was reached: a LAN address, a public name
                return SANDBOX, (f"SANDBOX location {client.location_id} fetched ({name or 'unnamed'}) from "
                                 f"{client.base_url}, which answered as the local GHL sandbox (company "
                                 f"{SANDBOX_COMPANY_ID}): nothing reaches a real inbox (set GHL_BASE_URL, GHL_API_KEY "
                                 "and GHL_LOCATION_ID of the real account for live)")
            if is_sandbox_url(client.base_url) or resolves_to_local(client.base_url):
                return SANDBOX, (f"SANDBOX location {client.location_id} fetched ({name or 'unnamed'}) from "
                                 f"{client.base_url}: the local GHL sandbox works; nothing reaches a real inbox "
                                 "(set GHL_BASE_URL, GHL_API_KEY and GHL_LOCATION_ID of the real account for live)")
            return PASS, f"location {client.location_id} fetched ({name or 'unnamed'}) from {client.base_url}"

    return _timed("ghl", run)


def check_slack(app: Verifiable, send: bool) -> Check:
    def run():
        alerter = app.alerter
        if not alerter.configured:
            return NOT_CONFIGURED, "SLACK_WEBHOOK_URL is not set: alerts are recorded, not delivered"
        url = str(getattr(alerter, "_url", None) or os.environ.get("SLACK_WEBHOOK_URL") or "")
        local = bool(url) and (is_sandbox_url(url) or resolves_to_local(url))
        stand_in = (f"SLACK_WEBHOOK_URL points at this machine ({_host(url)}): a local stand-in, not Slack; "
                    "alerts reach no one (set the real Slack incoming-webhook URL for live)")
        if not send:
            if local:
                return SANDBOX, f"{stand_in}; not tested (--no-send)"
            return SKIPPED, "configured, not tested: no test message sent (--no-send)"
        row = alerter.send_test("alpha verify: Slack alerts are reachable.")
        if row.status == "sent":
            return (SANDBOX, f"test message delivered, but {stand_in}") if local else (PASS, "test message delivered")
        return FAIL, f"test message not delivered: {row.error}"

    return _timed("slack", run)


def check_llm(app: Verifiable) -> Check:
    def run():
        from engine.adapters.llm import TemplateProvider

        chain = app.llm
        network = [p for p in chain.providers if not isinstance(p, TemplateProvider)
                   and getattr(p, "configured", False)]
        if not network:
            return NOT_CONFIGURED, f"no LLM key set: drafts use the offline template renderer ({LLM_NOT_REQUIRED})"
        c = chain.complete(f"Reply with the single word OK. ({iso(app.clock())})", max_tokens=5)
        if c.provider == "template":
            return FAIL, "every configured provider failed: " + "; ".join(c.fallbacks)
        return PASS, f"{c.provider} {c.model} answered ({c.input_tokens}+{c.output_tokens} tokens)"

    c = _timed("llm", run)
    c.required = LIVE_NEEDS["llm"] == "required"
    return c


def resolve_webhook_url(app: Readable | None = None, url: str | None = None) -> tuple[str, str]:
    """(the receiver to check, where that address came from): --webhook-url, $ALPHA_WEBHOOK_URL, the running
    receiver's own heartbeat (so `alpha up --webhook-port N` is found), else the default."""
    if url:
        return url.rstrip("/"), "--webhook-url"
    if os.environ.get("ALPHA_WEBHOOK_URL"):
        return os.environ["ALPHA_WEBHOOK_URL"].rstrip("/"), "ALPHA_WEBHOOK_URL"
    if app is not None:
        from engine.queries.health import latest_receiver_url

        seen = latest_receiver_url(app.store)
        if seen:
            return seen.rstrip("/"), "the receiver's heartbeat"
    return DEFAULT_WEBHOOK_URL, "the default"


def check_webhooks(url: str | None = None, app: Readable | None = None, source: str | None = None) -> Check:
    """``source``: where an already resolved ``url`` came from (see resolve_webhook_url)."""
    base, source = (url.rstrip("/"), source) if url and source else resolve_webhook_url(app, url)
    src = f" (address from {source})"

    def elsewhere() -> str:
        """When the address checked came from the environment and a receiver reports another one in its heartbeat
        (`alpha up --webhook-port N` with an old ALPHA_WEBHOOK_URL in .env), say so instead of only failing."""
        if app is None or source != "ALPHA_WEBHOOK_URL":
            return ""
        from engine.queries.health import latest_receiver_url

        seen = (latest_receiver_url(app.store) or "").rstrip("/")
        return (f"; the last webhook receiver heartbeat names {seen}: if that is the receiver, set "
                f"ALPHA_WEBHOOK_URL={seen}" if seen and seen != base else "")

    def run():
        try:
            r = httpx.get(f"{base}/healthz", timeout=3.0)
        except httpx.HTTPError as e:
            return FAIL, (f"webhook receiver not reachable at {base}{src} ({type(e).__name__}): "
                          f"start it with `alpha webhooks serve`, or pass --webhook-url{elsewhere()}")
        if r.status_code == 200 and r.json().get("ok"):
            return PASS, f"webhook receiver answers at {base}{src}"
        return FAIL, f"{base}/healthz answered {r.status_code}{src}{elsewhere()}"

    return _timed("webhooks", run)


def check_breakers(app: Verifiable) -> Check:
    def run():
        bad = [f"{b.name}={b.state}" for b in app.breakers.list() if b.state != "CLOSED"]
        return (FAIL, "not closed: " + ", ".join(bad)) if bad else (PASS, "every circuit breaker is CLOSED")

    return _timed("breakers", run)


def _live(c: dict) -> bool:
    """Whether one stored check counts as ready for live phases (also reads runs stored before the sandbox
    status existed: a GHL pass from a loopback address said "SANDBOX")."""
    status, name = c.get("status"), c.get("name")
    if status == PASS:
        return not (name == "ghl" and str(c.get("reason", "")).startswith("SANDBOX"))
    return status == NOT_CONFIGURED and LIVE_NEEDS.get(name or "") == "optional"


def _blocker(c: dict) -> str:
    name, status = c.get("name"), c.get("status")
    if status == FAIL:
        return f"{name} failed"
    if name == "ghl" and status in (SANDBOX, PASS):
        return f"{name} is the local sandbox"
    if status == SANDBOX:
        return f"{name} is a local stand-in"
    if status == NOT_CONFIGURED:
        return f"{name} not configured"
    if status == SKIPPED:
        return f"{name} configured, not tested (--no-send)"
    return f"{name} {status}"


def assess(checks: list[dict]) -> dict:
    """What a run's checks add up to: ready_for_sandbox, ready_for_live, the blockers of each, a summary line."""
    failed = [c for c in checks if c.get("status") == FAIL]
    sandbox = not failed
    names = {c.get("name") for c in checks}
    missing = [n for n, need in LIVE_NEEDS.items() if need == "required" and n not in names]
    live_blockers = [_blocker(c) for c in checks if not _live(c)] + [f"{n} not checked" for n in missing]
    live = not live_blockers
    notes = [f"{c['name']} not configured, {LLM_NOT_REQUIRED}" for c in checks
             if c.get("status") == NOT_CONFIGURED and LIVE_NEEDS.get(c.get("name") or "") == "optional"]
    summary = ("ready for live phases: " + ("YES" if live else f"NO ({'; '.join(live_blockers)})"))
    return {"ready_for_sandbox": sandbox, "ready_for_live": live, "live_blockers": live_blockers,
            "sandbox_blockers": [_blocker(c) for c in failed], "notes": notes, "summary": summary,
            "sandbox_summary": "ready for sandbox: " + (
                "YES (the local loop works)" if sandbox else
                f"NO ({'; '.join(_blocker(c) for c in failed)})")}


def run_verify(app: Verifiable, send_slack: bool = True, webhook_url: str | None = None) -> dict:
    """Run every check, store the run (ok = ready for live phases) and return {ok, at, checks, ready_for_live,
    ready_for_sandbox, live_blockers, sandbox_blockers, notes, summary, sandbox_summary, webhook_url}."""
    url, source = resolve_webhook_url(app, webhook_url)
    checks = [check_ghl(app), check_slack(app, send_slack), check_llm(app), check_webhooks(url, app, source),
              check_breakers(app)]
    for c in checks:
        c.live = _live(asdict(c))
    results = [asdict(c) for c in checks]
    verdict = assess(results)
    ok = verdict["ready_for_live"]
    now = app.clock()
    with app.store.write_plain() as s:
        s.add(VerifyRun(at=now, ok=ok, results=results))
    return {"ok": ok, "at": iso(now), "checks": results, **verdict,
            "webhook_url": {"url": url, "source": source}}
