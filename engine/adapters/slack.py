"""Slack alerts through an incoming webhook.

``SlackAlerter.alert()`` posts a Block Kit message (header, section, fields, context) with a plain ``text``
fallback, records the outcome in ``AlertLog`` and never raises into the caller: an alert is a side channel,
so a Slack outage must not break the code path that raised the alert.

* Slack answers ``200 ok`` on success and a 4xx/5xx with a short text (``invalid_payload``, ``no_service``,
  ``channel_is_archived``...) otherwise.
* ``429`` is honoured through ``Retry-After``, bounded: at most ``max_retries`` retries and at most
  ``max_total_wait`` seconds of waiting per alert; a longer wait is not taken (the alert fails instead).
* Timeouts are not retried: the message may have been posted, and a duplicate alert is worse than a late one.
* With breakers, every post goes through the ``slack`` circuit breaker; an open breaker means "not sent".
* The webhook URL is a secret (whoever has it can post to the channel): it is never stored or logged.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx

from engine.adapters.audit import REDACTED, redact
from engine.core.clock import Clock, iso
from engine.adapters.models import AlertLog

log = logging.getLogger("alpha.slack")

BREAKER = "slack"

KINDS: dict[str, str] = {
    "hot_lead": ":fire:",
    "breaker_opened": ":red_circle:",
    "breaker_closed": ":large_green_circle:",
    "kill_switch": ":octagonal_sign:",
    "phase_changed": ":arrows_counterclockwise:",
    "approval_sla_breached": ":hourglass:",
    "canary_failed": ":warning:",
    "unsubscribe_test_failed": ":no_entry:",
    "audit_checkpoint_failed": ":warning:",
    "test": ":white_check_mark:",
}

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks)
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
FALLBACK_MAX = 3000


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _esc(s: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_payload(kind: str, title: str, text: str, fields: dict | None = None, url: str | None = None,
                  at: datetime | None = None) -> dict:
    """The Block Kit message for one alert, within Slack's size limits."""
    emoji = KINDS.get(kind, ":bell:")
    title = " ".join(str(title or kind).split()) or kind
    text = str(text or "")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{emoji} {title}", HEADER_MAX),
                                    "emoji": True}},
    ]
    if text.strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(text), SECTION_TEXT_MAX)}})
    items = list((fields or {}).items())
    if items:
        shown = items[:MAX_FIELDS]
        if len(items) > MAX_FIELDS:  # fold the rest into the last field rather than dropping them silently
            rest = ", ".join(f"{k}: {v}" for k, v in items[MAX_FIELDS - 1:])
            shown = items[: MAX_FIELDS - 1] + [("more", rest)]
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{_esc(str(k))}*\n{_esc(str(v))}", FIELD_TEXT_MAX)} for k, v in shown
        ]})
    context = f"`{kind}`"
    if at is not None:
        context += f" · {iso(at)}"
    if url:
        safe = str(url).strip().replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
        context += f" · <{safe}|open>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, FIELD_TEXT_MAX)}]})
    fallback = f"[{kind}] {title}" + (f": {' '.join(text.split())}" if text.strip() else "")
    return {"text": _cut(fallback, FALLBACK_MAX), "blocks": blocks}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/garbled."""
    if value is None or not str(value).strip():
        return None
    v = str(value).strip()
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class _SecretFilter(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST https://hooks.slack.com/services/...");
    for a webhook the URL is the secret, so records on the httpx logger are scrubbed of registered webhook
    paths before any handler sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            try:
                msg = record.getMessage()
            except Exception:  # noqa: BLE001
                return True
            if any(sec in msg for sec in self.secrets):
                for sec in self.secrets:
                    msg = msg.replace(sec, REDACTED)
                record.msg, record.args = msg, ()
        return True


_HTTPX_FILTER = _SecretFilter()
logging.getLogger("httpx").addFilter(_HTTPX_FILTER)


def _secret_parts(url: str) -> list[str]:
    """The webhook URL and its path (the part that carries the token)."""
    parts = [url]
    try:
        path = httpx.URL(url).path if "://" in url else ""
    except Exception:  # noqa: BLE001 - a garbled URL: the whole string is still scrubbed
        path = ""
    if len(path) > 1:
        parts.append(path)
    return parts


class _Failure(Exception):
    def __init__(self, message: str, breaker_failure: bool = True):
        super().__init__(message)
        self.breaker_failure = breaker_failure


class SlackAlerter:
    def __init__(self, store, clock: Clock, webhook_url: str | None, breakers=None, timeout: float = 5.0,
                 sleep: Callable[[float], Any] = time.sleep, transport: httpx.BaseTransport | None = None,
                 max_retries: int = 2, max_total_wait: float = 30.0):
        self.store, self.clock, self.breakers = store, clock, breakers
        self._url = (webhook_url or "").strip() or None
        self._secrets = _secret_parts(self._url) if self._url else []
        _HTTPX_FILTER.secrets.update(p for p in self._secrets if len(p) >= 8)
        self.timeout, self.sleep, self.transport = timeout, sleep, transport
        self.max_retries, self.max_total_wait = max_retries, max_total_wait

    def __repr__(self) -> str:  # never show the URL
        return f"SlackAlerter(configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self._url is not None

    @classmethod
    def from_env(cls, store, clock: Clock, breakers=None, **kw) -> "SlackAlerter":
        return cls(store, clock, os.environ.get("SLACK_WEBHOOK_URL") or None, breakers=breakers, **kw)

    # ------------------------------------------------------------------------------------------ public

    def send_test(self, text: str = "Test alert: the Slack integration is configured and reachable.") -> AlertLog:
        return self.alert("test", "Alpha Swarm test alert", text)

    def alert(self, kind: str, title: str, text: str, fields: dict | None = None, url: str | None = None) -> AlertLog:
        """Post one alert. Returns the AlertLog row (status sent|failed|not_configured). Never raises."""
        try:
            return self._alert(kind, title, text, fields, url)
        except Exception as e:  # noqa: BLE001 - an alert must never break its caller
            err = self._scrub(f"unexpected {type(e).__name__}: {e}")
            log.error("slack alert %s failed unexpectedly: %s", kind, err)
            try:
                return self._record(str(kind)[:64], {"text": f"[{kind}] {title}"}, "failed", err, self.clock())
            except Exception:  # noqa: BLE001
                return AlertLog(kind=str(kind)[:64], text=self._scrub(str(title)), status="failed", error=err)

    # ------------------------------------------------------------------------------------------ internals

    def _alert(self, kind, title, text, fields, url) -> AlertLog:
        kind = str(kind or "unknown")[:64]
        if kind not in KINDS:
            log.warning("slack alert of unknown kind %r (sent anyway)", kind)
        now = self.clock()
        payload = build_payload(kind, title, text, fields, url, at=now)
        webhook = self._url
        if webhook is None:
            log.info("slack alert %s not sent: SLACK_WEBHOOK_URL is not configured", kind)
            return self._record(kind, payload, "not_configured", "SLACK_WEBHOOK_URL is not configured", now)
        if not webhook.lower().startswith(("https://", "http://")):
            log.warning("slack alert %s not sent: the webhook URL is not an http(s) URL", kind)
            return self._record(kind, payload, "failed", "the Slack webhook URL is not an http(s) URL", now)

        if self.breakers is not None:
            ok, retry_at = self.breakers.admit(BREAKER)
            if not ok:
                err = f"breaker_open: circuit breaker 'slack' is open; retry after {iso(retry_at)}"
                log.warning("slack alert %s not sent: %s", kind, err)
                return self._record(kind, payload, "failed", err, now)

        try:
            attempts = self._post(webhook, payload)
        except _Failure as f:
            err = self._scrub(str(f))
            if self.breakers is not None:
                self._breaker(ok=not f.breaker_failure, error=err)
            log.warning("slack alert %s failed: %s", kind, err)
            return self._record(kind, payload, "failed", err, now)
        if self.breakers is not None:
            self._breaker(ok=True)
        if attempts > 1:
            log.info("slack alert %s sent after %d attempts", kind, attempts)
        return self._record(kind, payload, "sent", None, now)

    def _post(self, webhook: str, payload: dict) -> int:
        """POST with bounded 429 handling. Returns the number of attempts; raises _Failure."""
        waited = 0.0
        attempt = 0
        with httpx.Client(timeout=self.timeout, transport=self.transport, follow_redirects=False) as client:
            while True:
                attempt += 1
                try:
                    r = client.post(webhook, json=payload)
                except httpx.TimeoutException:
                    raise _Failure(f"timeout: no answer from Slack within {self.timeout:g}s "
                                   "(not retried: the message may have been posted)") from None
                except httpx.HTTPError as e:
                    raise _Failure(f"transport error: {type(e).__name__}: {e}") from None
                body = (r.text or "").strip()[:300]
                if 200 <= r.status_code < 300:
                    return attempt
                if r.status_code == 429:
                    delay = parse_retry_after(r.headers.get("retry-after"), self.clock())
                    delay = 1.0 if delay is None else delay
                    if attempt > self.max_retries:
                        raise _Failure(f"rate_limited: HTTP 429 from Slack after {attempt} attempts ({body})")
                    if waited + delay > self.max_total_wait:
                        raise _Failure(f"rate_limited: HTTP 429, Retry-After {delay:g}s exceeds the wait budget "
                                       f"({self.max_total_wait:g}s total)")
                    self.sleep(delay)
                    waited += delay
                    continue
                # 4xx: Slack understood us and refused (invalid_payload, no_service, ...): the service is up
                raise _Failure(f"HTTP {r.status_code} from Slack: {body or r.reason_phrase}",
                               breaker_failure=r.status_code >= 500)

    def _breaker(self, ok: bool, error: str | None = None) -> None:
        try:
            self.breakers.record(BREAKER, ok, error)
        except Exception as e:  # noqa: BLE001
            log.error("could not record the slack breaker outcome: %s", self._scrub(f"{type(e).__name__}: {e}"))

    def _scrub(self, s: str) -> str:
        """Remove the webhook URL (and its secret path) from a message, then redact known secrets."""
        s = str(s)
        for secret in self._secrets:
            s = s.replace(secret, REDACTED)
        return redact(s)

    def _record(self, kind: str, payload: dict, status: str, error: str | None, now: datetime) -> AlertLog:
        clean = redact(payload)
        row = AlertLog(kind=kind, text=self._scrub(clean.get("text", "")), status=status,
                       error=self._scrub(error) if error else None, payload=self._scrub_obj(clean), at=now)
        try:
            with self.store.write_plain() as s:
                s.add(row)
                s.flush()
        except Exception as e:  # noqa: BLE001 - the alert outcome is still returned and logged
            log.error("could not record slack alert %s (%s) in alert_log: %s", kind, status,
                      self._scrub(f"{type(e).__name__}: {e}"))
        return row

    def _scrub_obj(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: self._scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._scrub_obj(v) for v in obj]
        if isinstance(obj, str):
            return self._scrub(obj)
        return obj


def from_env(store, clock: Clock, breakers=None, **kw) -> SlackAlerter:
    return SlackAlerter.from_env(store, clock, breakers, **kw)
