"""GoHighLevel (LeadConnector API v2) client: the few endpoints the engine uses, and nothing that re-sends.

Contract: GHL's official OpenAPI specs (contacts, conversations, locations). Every call carries a Bearer
token, ``Accept: application/json`` and the ``Version`` header its spec requires (contacts and locations
``2021-07-28``, conversations ``2021-04-15``).

Retries (bounded in attempts and in total waiting):

- 429: never processed, so every call (a send included) waits and tries again, honouring ``Retry-After``
  when given (seconds or an HTTP date), exponential backoff otherwise. A wait that would exceed the budget
  raises ``GHLRateLimited`` at once, with ``retry_after`` set.
- Reads and idempotent writes (tags, upsert by email): retried on 5xx and on transport errors.
- A send (``POST /conversations/messages``) is retried only when it certainly did not reach GHL (429, or a
  connection that could not be opened). After a timeout or a dropped connection it raises
  ``GHLAmbiguousSend`` and is never retried here; a 5xx raises ``GHLServerError`` (504, a proxy's timeout,
  raises ``GHLAmbiguousSend``). Sends use a connection of their own each time, so a stale pooled keep-alive
  connection can never turn a send that never left into an ambiguous one.

A client-side limiter keeps to GHL's documented limits (100 requests per 10 s sliding window, 200,000 per
day, per process) and honours ``X-RateLimit-Remaining`` / ``X-RateLimit-Interval-Milliseconds`` and
``X-RateLimit-Daily-Remaining``. The API key never appears in exception messages or logs.
"""
from __future__ import annotations

import collections
import email.utils
import json
import logging
import os
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

import httpx

log = logging.getLogger("alpha.ghl")

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
VERSION_CONTACTS = "2021-07-28"
VERSION_LOCATIONS = "2021-07-28"
VERSION_CONVERSATIONS = "2021-04-15"

BURST_LIMIT, BURST_INTERVAL_S, DAILY_LIMIT = 100, 10.0, 200_000
REDACTED = "[REDACTED]"

# What a call may safely do again after a failure.
READ, IDEMPOTENT_WRITE, SEND = "read", "idempotent_write", "send"


# ------------------------------------------------------------------------------------- errors

class GHLError(Exception):
    """A GHL call failed. ``status`` (None when no response), GHL's ``message``, the parsed ``body``."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None, method: str | None = None,
                 path: str | None = None, retry_after: float | None = None):
        self.status, self.message, self.body = status, message, body
        self.method, self.path, self.retry_after = method, path, retry_after
        where = f" on {method} {path}" if method and path else ""
        super().__init__(f"GHL {status if status is not None else 'error'}{where}: {message}")


class GHLAuthError(GHLError):
    """401/403: the token is invalid, expired, lacks a scope or has no access to the location."""


class GHLNotFound(GHLError):
    """404."""


class GHLValidationError(GHLError):
    """400/422: GHL refused the request as given (nothing was done, except for GHL's own quirks)."""


class GHLRateLimited(GHLError):
    """429 after the allowed retries, or a local limit reached: not processed."""


class GHLServerError(GHLError):
    """5xx after the allowed retries (reads), or at once (sends)."""


class GHLTransportError(GHLError):
    """No usable answer from GHL for a call that is safe to repeat, or a connection that could not be
    opened (for a send: it certainly did not go out)."""


class GHLAmbiguousSend(GHLError):
    """A send may have reached GHL (timeout, dropped connection, 504): never retried automatically."""


def error_for_status(status: int) -> type[GHLError]:
    if status in (401, 403):
        return GHLAuthError
    if status == 404:
        return GHLNotFound
    if status in (400, 422):
        return GHLValidationError
    if status == 429:
        return GHLRateLimited
    if status >= 500:
        return GHLServerError
    return GHLError


# ------------------------------------------------------------------------------------- helpers

def email_dnd_active(contact: dict | None) -> bool:
    """True when GHL says not to email this contact: global ``dnd``, or ``dndSettings.Email.status`` active
    or permanent (the spec's DndSettingSchema enum is active | inactive | permanent)."""
    if not contact:
        return False
    if contact.get("dnd") is True:
        return True
    settings = contact.get("dndSettings") or {}
    email_dnd = settings.get("Email") if isinstance(settings, dict) else None
    status = email_dnd.get("status") if isinstance(email_dnd, dict) else None
    return isinstance(status, str) and status.lower() in ("active", "permanent")


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now() if now else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw.strip())
    except ValueError:
        return None


class RateLimiter:
    """In-process limiter: ``burst`` requests per ``interval`` seconds (sliding window) and ``daily`` per
    rolling 24 hours, plus whatever the server's X-RateLimit-* headers say. Thread-safe.

    Waits for the burst window (it is short); refuses with GHLRateLimited when the daily budget is spent.
    """

    def __init__(self, burst: int = BURST_LIMIT, interval: float = BURST_INTERVAL_S, daily: int = DAILY_LIMIT,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 daily_cooldown: float = 300.0):
        self.burst, self.interval, self.daily = burst, interval, daily
        self.clock, self.sleep = clock, sleep
        self.daily_cooldown = daily_cooldown
        self._window: collections.deque[float] = collections.deque()
        self._day: collections.deque[list] = collections.deque()  # [minute bucket, count]
        self._day_total = 0
        self._blocked_until = 0.0        # server said: nothing left in this interval
        self._daily_blocked_until = 0.0  # server said: nothing left today
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            if now < self._daily_blocked_until:
                raise GHLRateLimited("GHL daily request limit reached (X-RateLimit-Daily-Remaining: 0)",
                                     status=None, retry_after=self._daily_blocked_until - now)
            self._prune_day(now)
            if self._day_total >= self.daily:
                raise GHLRateLimited(f"client-side daily limit of {self.daily} requests reached", status=None,
                                     retry_after=60.0)
            if now < self._blocked_until:
                now = self._wait(self._blocked_until, now)
            while self._window and self._window[0] <= now - self.interval:
                self._window.popleft()
            if len(self._window) >= self.burst:
                now = self._wait(self._window[0] + self.interval, now)
                while self._window and self._window[0] <= now - self.interval:
                    self._window.popleft()
            self._window.append(now)
            minute = int(now // 60)
            if self._day and self._day[-1][0] == minute:
                self._day[-1][1] += 1
            else:
                self._day.append([minute, 1])
            self._day_total += 1

    def _wait(self, until: float, now: float) -> float:
        delay = max(0.0, until - now)
        if delay > 0:
            log.debug("GHL rate limiter: waiting %.3fs", delay)
            self.sleep(delay)
            self.waited += delay
        return max(self.clock(), until)  # an injected sleep may not move the clock

    def _prune_day(self, now: float) -> None:
        oldest = int(now // 60) - 24 * 60
        while self._day and self._day[0][0] <= oldest:
            self._day_total -= self._day.popleft()[1]

    def observe(self, headers: httpx.Headers) -> None:
        """Honour the server's view of our budget."""
        remaining = _header_number(headers, "X-RateLimit-Remaining")
        interval_ms = _header_number(headers, "X-RateLimit-Interval-Milliseconds")
        daily_remaining = _header_number(headers, "X-RateLimit-Daily-Remaining")
        with self._lock:
            now = self.clock()
            if remaining is not None and remaining <= 0:
                wait = (interval_ms / 1000.0) if interval_ms and interval_ms > 0 else self.interval
                self._blocked_until = max(self._blocked_until, now + wait)
            if daily_remaining is not None and daily_remaining <= 0:
                self._daily_blocked_until = max(self._daily_blocked_until, now + self.daily_cooldown)


# ------------------------------------------------------------------------------------- client

class GHLClient:
    """Synchronous GHL API v2 client for one location (sub-account)."""

    def __init__(self, api_key: str, location_id: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 15.0, *,
                 breakers=None, breaker: str = "ghl", sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.BaseTransport | None = None,
                 event_hooks: dict | None = None, max_attempts: int = 4, max_total_wait: float = 60.0,
                 backoff_base: float = 0.5, backoff_max: float = 8.0, jitter: bool = True,
                 limiter: RateLimiter | None = None):
        if not api_key:
            raise ValueError("a GHL API key (Private Integration token or OAuth access token) is required")
        if not location_id:
            raise ValueError("a GHL location id is required")
        self._api_key = api_key
        self.location_id = location_id
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.breakers, self.breaker = breakers, breaker
        self.sleep = sleep
        self.max_attempts, self.max_total_wait = max(1, max_attempts), max_total_wait
        self.backoff_base, self.backoff_max, self.jitter = backoff_base, backoff_max, jitter
        self.limiter = limiter or RateLimiter(clock=clock, sleep=sleep)
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                   "User-Agent": "alpha-swarm-ghl/1.0"}
        common: dict[str, Any] = dict(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
                      event_hooks=event_hooks or {}, follow_redirects=False)
        self._http = httpx.Client(transport=transport, **common)
        # Sends open a fresh connection each time (see the module docstring).
        self._send_http = httpx.Client(transport=transport, limits=httpx.Limits(max_keepalive_connections=0),
                                       **common)

    @classmethod
    def from_env(cls, **kw) -> "GHLClient":
        """GHL_API_KEY, GHL_LOCATION_ID and optionally GHL_BASE_URL, GHL_TIMEOUT_SECONDS."""
        key, loc = os.environ.get("GHL_API_KEY", ""), os.environ.get("GHL_LOCATION_ID", "")
        if not key or not loc:
            raise ValueError("GHL_API_KEY and GHL_LOCATION_ID must both be set")
        kw.setdefault("base_url", os.environ.get("GHL_BASE_URL") or DEFAULT_BASE_URL)
        kw.setdefault("timeout", float(os.environ.get("GHL_TIMEOUT_SECONDS") or 15))
        return cls(key, loc, **kw)

    def __repr__(self) -> str:
        return f"GHLClient(base_url={self.base_url!r}, location_id={self.location_id!r})"

    def close(self) -> None:
        self._http.close()
        self._send_http.close()

    def __enter__(self) -> "GHLClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------- endpoints

    def get_contact(self, contact_id: str) -> dict:
        """GET /contacts/{contactId} -> the contact."""
        body = self._call("GET", f"/contacts/{_seg(contact_id)}", VERSION_CONTACTS, kind=READ)
        return body.get("contact") or {}

    def find_contact_by_email(self, email: str) -> dict | None:
        """GET /contacts/search/duplicate?locationId=&email= -> the contact, or None."""
        body = self._call("GET", "/contacts/search/duplicate", VERSION_CONTACTS, kind=READ,
                          params={"locationId": self.location_id, "email": email})
        contact = body.get("contact")
        return contact if isinstance(contact, dict) and contact else None

    def upsert_contact(self, data: dict) -> dict:
        """POST /contacts/upsert -> {"new": bool, "contact": {...}, "traceId": ...}.

        Beware GHL's quirk: it can answer 422 and create the contact anyway; look it up again on 422.
        """
        payload = {k: v for k, v in dict(data).items() if v is not None}
        payload["locationId"] = self.location_id
        return self._call("POST", "/contacts/upsert", VERSION_CONTACTS, kind=IDEMPOTENT_WRITE, json_body=payload)

    def add_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        """POST /contacts/{contactId}/tags -> the contact's tags."""
        body = self._call("POST", f"/contacts/{_seg(contact_id)}/tags", VERSION_CONTACTS, kind=IDEMPOTENT_WRITE,
                          json_body={"tags": list(tags)})
        return list(body.get("tags") or [])

    def remove_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        """DELETE /contacts/{contactId}/tags -> the contact's remaining tags."""
        body = self._call("DELETE", f"/contacts/{_seg(contact_id)}/tags", VERSION_CONTACTS, kind=IDEMPOTENT_WRITE,
                          json_body={"tags": list(tags)})
        return list(body.get("tags") or [])

    def send_email(self, contact_id: str, subject: str, html: str | None, email_from: str | None = None, *,
                   text: str | None = None, email_to: str | None = None, email_cc: list[str] | None = None,
                   email_bcc: list[str] | None = None, reply_message_id: str | None = None,
                   thread_id: str | None = None, attachments: list[str] | None = None,
                   scheduled_timestamp: int | None = None) -> dict:
        """POST /conversations/messages with type Email -> SendMessageResponseDto (messageId, conversationId...).

        Never retried after it may have reached GHL: raises GHLAmbiguousSend instead.
        SendMessageBodyDto has no field for custom email headers (e.g. List-Unsubscribe).
        """
        body: dict[str, Any] = {"type": "Email", "contactId": contact_id, "subject": subject}
        if html:
            body["html"] = html
        elif text:
            body["message"] = text
        optional = {"emailFrom": email_from, "emailTo": email_to, "emailCc": email_cc, "emailBcc": email_bcc,
                    "replyMessageId": reply_message_id, "threadId": thread_id, "attachments": attachments,
                    "scheduledTimestamp": scheduled_timestamp}
        body.update({k: v for k, v in optional.items() if v not in (None, [], "")})
        return self._call("POST", "/conversations/messages", VERSION_CONVERSATIONS, kind=SEND, json_body=body)

    def get_location(self) -> dict:
        """GET /locations/{locationId} -> the location (a cheap health check of token and location)."""
        body = self._call("GET", f"/locations/{_seg(self.location_id)}", VERSION_LOCATIONS, kind=READ)
        return body.get("location") or {}

    # ------------------------------------------------------------------------------- machinery

    def _call(self, method: str, path: str, version: str, *, kind: str, params: dict | None = None,
              json_body: Any = None) -> dict:
        if self.breakers is None:
            return self._request(method, path, version, kind=kind, params=params, json_body=json_body)
        from engine.core.errors import BreakerOpenError

        ok, retry_at = self.breakers.admit(self.breaker)
        if not ok:
            raise BreakerOpenError(self.breaker, retry_at)
        try:
            result = self._request(method, path, version, kind=kind, params=params, json_body=json_body)
        except (GHLServerError, GHLTransportError, GHLRateLimited, GHLAmbiguousSend, GHLAuthError) as e:
            self.breakers.record(self.breaker, False, f"{type(e).__name__}: {e}")
            raise
        except GHLError:
            self.breakers.record(self.breaker, True)  # our request was wrong, GHL is fine
            raise
        self.breakers.record(self.breaker, True)
        return result

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempt - 1))
        if self.jitter:
            delay *= 0.5 + random.random() / 2
        return delay

    def _request(self, method: str, path: str, version: str, *, kind: str, params: dict | None,
                 json_body: Any) -> dict:
        http = self._send_http if kind == SEND else self._http
        headers = {"Version": version}
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.max_attempts

            def retry(delay: float, why: str, last: bool = last, attempt: int = attempt) -> bool:
                nonlocal waited
                if last or waited + delay > self.max_total_wait:
                    return False
                log.warning("GHL %s %s: %s; retry %d/%d in %.2fs", method, path, why, attempt,
                            self.max_attempts - 1, delay)
                self.sleep(delay)
                waited += delay
                return True

            self.limiter.acquire()
            try:
                resp = http.request(method, path, params=params, json=json_body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
                    httpx.LocalProtocolError) as e:
                # The request never left: safe to try again whatever it was.
                why = f"could not connect ({type(e).__name__})"
                if retry(self._backoff(attempt), why):
                    continue
                raise GHLTransportError(self._scrub(f"{why}: {e}"), method=method, path=path) from e
            except httpx.TransportError as e:
                # Sent, or partly sent, and no answer: a send may have gone out.
                why = f"{type(e).__name__} after the request was sent"
                if kind == SEND:
                    log.error("GHL %s %s: %s; NOT retried (may have been delivered)", method, path, why)
                    raise GHLAmbiguousSend(self._scrub(f"{why}: {e or 'no response'}; the message may have been "
                                                       "sent: check GHL before re-sending"),
                                           method=method, path=path) from e
                if retry(self._backoff(attempt), why):
                    continue
                raise GHLTransportError(self._scrub(f"{why}: {e}"), method=method, path=path) from e

            self.limiter.observe(resp.headers)
            status = resp.status_code
            log.info("GHL %s %s -> %d", method, path, status)
            if status < 300:
                return self._json(resp)
            body = self._json(resp, quiet=True)
            message = self._message(body, resp)
            if status == 429:
                hinted = parse_retry_after(resp.headers.get("Retry-After"))
                delay = hinted if hinted is not None else self._backoff(attempt)
                if retry(delay, "429 Too Many Requests"):
                    continue
                raise GHLRateLimited(message, status=429, body=body, method=method, path=path, retry_after=delay)
            if status >= 500:
                if kind == SEND:
                    # A 5xx does not prove the message was not processed (a 500 after queueing, a 502/504 from
                    # the edge while GHL went on): never risk a second email. Reconciliation decides; GHL's
                    # OutboundMessage webhook confirms it automatically when it did go out.
                    raise GHLAmbiguousSend(f"{status} from GHL on a send: {message}; the message may have been "
                                           "sent: check GHL before re-sending", status=status, body=body,
                                           method=method, path=path)
                if retry(self._backoff(attempt), f"{status}"):
                    continue
                raise GHLServerError(message, status=status, body=body, method=method, path=path)
            raise error_for_status(status)(message, status=status, body=body, method=method, path=path)

    def _json(self, resp: httpx.Response, quiet: bool = False) -> Any:
        if not resp.content:
            return {}
        try:
            data = resp.json()
        except (ValueError, json.JSONDecodeError):
            if not quiet:
                log.warning("GHL %s %s: %d with a body that is not JSON", resp.request.method,
                            resp.request.url.path, resp.status_code)
            return {"raw": self._scrub(resp.text[:500])}
        return self._scrub_obj(data)

    def _message(self, body: Any, resp: httpx.Response) -> str:
        msg = body.get("message") if isinstance(body, dict) else None
        if isinstance(msg, list):
            msg = "; ".join(str(m) for m in msg)
        if not msg and isinstance(body, dict):
            msg = body.get("error") or body.get("raw")
        return self._scrub(str(msg or resp.reason_phrase or f"HTTP {resp.status_code}"))

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, REDACTED) if self._api_key and text else text

    def _scrub_obj(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self._scrub(obj)
        if isinstance(obj, dict):
            return {k: self._scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._scrub_obj(v) for v in obj]
        return obj


def _seg(value: str) -> str:
    """One path segment, percent-encoded (an id can never add a path level)."""
    return quote(str(value), safe="")
