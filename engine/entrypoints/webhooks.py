"""The webhook receiver and the one-click unsubscribe endpoint (a small Starlette app served by uvicorn).

- ``POST /webhooks/ghl``: GHL events, authenticated by ``x-ghl-signature`` (Ed25519) or ``x-wh-signature``
  (RSA-SHA256) over the raw body. Bad or missing signature -> 401 and no state change; replay -> 200 duplicate;
  malformed body -> 400; body over 256 KiB -> 413. Answers within 10 s (GHL gives up after 15 s).
- ``POST /webhooks/rb2b``: website visitors, authenticated by a shared secret (``X-RB2B-Secret`` header or
  ``?secret=``).
- ``GET /unsubscribe/{token}``: a plain confirmation page (a GET never unsubscribes: mail scanners prefetch links).
- ``POST /unsubscribe/{token}`` with ``List-Unsubscribe=One-Click`` (RFC 8058): suppresses the address at once.
  No cookies, no redirect, no login.
- ``GET /healthz``: 200 when the database answers and its schema is at the code's revision, 503 otherwise; the
  JSON body carries database, schema, worker (heartbeats), webhook receiver and scheduler health
  (engine.queries.health).
- ``GET /metrics``: Prometheus text format (engine.queries.metrics); with ``ALPHA_METRICS_TOKEN`` set it needs
  ``Authorization: Bearer <token>``.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import html
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from engine.core.envcheck import EnvError, Problem, wrong_key_kind
from engine.services.events import EventService, parse_json_body
from engine.rules.unsubscribe import verify_token

log = logging.getLogger("alpha.webhooks")

MAX_BODY = 256 * 1024
ANSWER_WITHIN = 10.0


def _load_key_material(value: str) -> bytes:
    value = value.strip()
    if value and not value.startswith("-----") and Path(value).is_file():
        return Path(value).read_bytes()
    return value.replace("\\n", "\n").encode()


def _wrong_kind(name: str, var_key: str, key: object) -> EnvError:
    """A PEM key of another kind than ``var_key`` needs: its verify() takes other arguments, so every signed
    webhook would fail with a TypeError instead of being checked. Refused when the keys are loaded."""
    what, fix = wrong_key_kind(var_key, key) or ("not the kind of public key needed", "")
    return EnvError([Problem(name, None, what, fix)])


def _rsa_pem_key(material: bytes) -> RSAPublicKey:
    key = serialization.load_pem_public_key(material)
    if not isinstance(key, RSAPublicKey):
        raise _wrong_kind("GHL_WEBHOOK_PUBLIC_KEY", "rsa", key)
    return key


def _ed25519_pem_key(material: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(material)
    if not isinstance(key, Ed25519PublicKey):
        raise _wrong_kind("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "ed25519", key)
    return key


@dataclass
class SignatureKeys:
    rsa: RSAPublicKey | None = None
    ed25519: Ed25519PublicKey | None = None

    @classmethod
    def from_env(cls) -> "SignatureKeys":
        keys = cls()
        rsa = os.environ.get("GHL_WEBHOOK_PUBLIC_KEY", "")
        if rsa.strip():
            keys.rsa = _rsa_pem_key(_load_key_material(rsa))
        ed = os.environ.get("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "")
        if ed.strip():
            material = _load_key_material(ed)
            if material.startswith(b"-----"):
                keys.ed25519 = _ed25519_pem_key(material)
            else:
                keys.ed25519 = Ed25519PublicKey.from_public_bytes(base64.b64decode(material))
        return keys

    @property
    def configured(self) -> bool:
        return self.rsa is not None or self.ed25519 is not None


def verify_signature(raw: bytes, headers, keys: SignatureKeys) -> str | None:
    """None when the body carries a valid signature; otherwise why not."""
    if not keys.configured:
        return "no webhook public key is configured (GHL_WEBHOOK_ED25519_PUBLIC_KEY or GHL_WEBHOOK_PUBLIC_KEY)"
    ed_sig, rsa_sig = headers.get("x-ghl-signature"), headers.get("x-wh-signature")
    if ed_sig and keys.ed25519 is not None:
        try:
            keys.ed25519.verify(base64.b64decode(ed_sig, validate=True), raw)
            return None
        except (InvalidSignature, ValueError):
            return "x-ghl-signature does not match the body"
    if rsa_sig and keys.rsa is not None:
        try:
            keys.rsa.verify(base64.b64decode(rsa_sig, validate=True), raw, padding.PKCS1v15(), hashes.SHA256())
            return None
        except (InvalidSignature, ValueError):
            return "x-wh-signature does not match the body"
    return "missing signature header (x-ghl-signature or x-wh-signature)"


async def _read_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(engine_app=None, keys: SignatureKeys | None = None, alert=None) -> Starlette:
    """Build the ASGI app. ``engine_app`` defaults to an App built from the environment."""
    if engine_app is None:
        from engine.app import App

        engine_app = App()
        engine_app.store.check_ready()
    keys = keys or SignatureKeys.from_env()
    events = EventService(engine_app, alert=alert or getattr(engine_app, "alert_dict", None))

    async def _run(fn, *args):
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args), timeout=ANSWER_WITHIN)
        except asyncio.TimeoutError:
            return None

    async def ghl(request: Request):
        raw = await _read_body(request)
        if raw is None:
            return _err(413, f"body larger than {MAX_BODY} bytes")
        why = verify_signature(raw, request.headers, keys)
        if why:
            log.warning("rejected GHL webhook: %s", why)
            return _err(401, why)
        try:
            payload = parse_json_body(raw)
        except ValueError as e:
            return _err(400, str(e))
        if not isinstance(payload.get("type"), str) or not payload["type"]:
            return _err(400, "field 'type' (the event type) is required")
        out = await _run(events.ghl, payload, raw)
        if out is None:
            return _err(503, "busy: try again (the event was not lost; a retry is recognised)")
        return JSONResponse({"status": out.status, "detail": out.detail})

    async def rb2b(request: Request):
        secret = os.environ.get("RB2B_WEBHOOK_SECRET", "")
        given = request.headers.get("x-rb2b-secret") or request.query_params.get("secret") or ""
        if not secret:
            return _err(401, "RB2B_WEBHOOK_SECRET is not configured: visitor webhooks are refused")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return _err(401, "wrong or missing shared secret")
        raw = await _read_body(request)
        if raw is None:
            return _err(413, f"body larger than {MAX_BODY} bytes")
        try:
            payload = parse_json_body(raw)
        except ValueError as e:
            return _err(400, str(e))
        out = await _run(events.rb2b, payload, raw)
        if out is None:
            return _err(503, "busy: try again")
        return JSONResponse({"status": out.status, "detail": out.detail})

    def _recipient(request: Request) -> str | None:
        return verify_token(request.path_params["token"], engine_app.secret)

    async def unsubscribe_page(request: Request):
        email = _recipient(request)
        if email is None:
            return HTMLResponse(_page("Link not valid", "<p>This unsubscribe link is not valid. If you keep "
                                      "receiving email from us, reply with the word unsubscribe.</p>"), 404)
        e = html.escape(email)
        company = html.escape(engine_app.settings.production.sender.company_name)
        token = html.escape(request.path_params["token"])
        body = (f"<p>Stop all email from {company} to <strong>{e}</strong>?</p>"
                f'<form method="post" action="/unsubscribe/{token}">'
                '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                '<button type="submit">Unsubscribe</button></form>')
        return HTMLResponse(_page("Unsubscribe", body))

    async def unsubscribe_post(request: Request):
        email = _recipient(request)
        if email is None:
            return PlainTextResponse("This unsubscribe link is not valid.", 404)
        raw = await _read_body(request)
        if raw is None or b"List-Unsubscribe=One-Click" not in raw:
            return PlainTextResponse("Expected the body List-Unsubscribe=One-Click (RFC 8058).", 400)
        done = await _run(events.unsubscribe, email)
        if done is None:
            return PlainTextResponse("Busy, please try again in a moment.", 503)
        return PlainTextResponse(f"{email} is unsubscribed. You will receive no further email from us.")

    async def health(request: Request):
        """200 when the database answers and its schema is at the code's revision, else 503; the body (JSON) also
        reports the workers' and the scheduler's heartbeats, which never fail it (restarting the receiver would
        not bring a worker back)."""
        from engine.queries.health import component_health

        try:
            comps = await asyncio.wait_for(run_in_threadpool(component_health, engine_app), timeout=ANSWER_WITHIN)
        except asyncio.TimeoutError:
            return JSONResponse({"ok": False, "service": "alpha webhooks", "status": "unavailable",
                                 "detail": f"the health check took longer than {ANSWER_WITHIN:g} s"}, 503)
        ready = bool(comps.get("database", {}).get("ok") and comps.get("schema", {}).get("ok"))
        body = {"ok": ready, "service": "alpha webhooks", "status": "ok" if ready else "unavailable",
                "workers": int((comps.get("worker") or {}).get("workers") or 0),
                "components": {k: comps[k] for k in ("database", "schema", "worker", "webhook_receiver",
                                                     "scheduler") if k in comps}}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request):
        """Prometheus text format; with ALPHA_METRICS_TOKEN set, only for ``Authorization: Bearer <token>``."""
        from engine.queries.metrics import CONTENT_TYPE, metrics_text

        token = os.environ.get("ALPHA_METRICS_TOKEN", "").strip()
        if token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return PlainTextResponse("metrics need Authorization: Bearer <ALPHA_METRICS_TOKEN>\n", 401,
                                         headers={"WWW-Authenticate": 'Bearer realm="alpha metrics"'})
        try:
            text = await asyncio.wait_for(run_in_threadpool(metrics_text, engine_app), timeout=ANSWER_WITHIN)
        except asyncio.TimeoutError:
            return PlainTextResponse(f"metrics took longer than {ANSWER_WITHIN:g} s\n", 503)
        except Exception as e:  # noqa: BLE001 - a scrape error is an answer (and a log line), never a crash
            log.exception("metrics failed")
            return PlainTextResponse(f"metrics failed: {type(e).__name__}\n", 500)
        return PlainTextResponse(text, headers={"content-type": CONTENT_TYPE})

    return Starlette(routes=[
        Route("/webhooks/ghl", ghl, methods=["POST"]),
        Route("/webhooks/rb2b", rb2b, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ])


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<meta name='viewport' content='width=device-width'></head>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:3em auto'><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")


class RedactAccessLog(logging.Filter):
    """The access log never carries a credential: query strings (RB2B's ?secret=...) and unsubscribe tokens are
    replaced before a line is written, and any known secret value is redacted as a last resort."""

    _TOKEN = re.compile(r"(/unsubscribe/)[^\s/?\"]+")
    _QUERY = re.compile(r"\?[^\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        from engine.adapters.audit import redact

        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._clean(record.msg)
        record.msg, record.args = redact(record.msg), (tuple(redact(list(record.args))) if isinstance(
            record.args, tuple) else record.args)
        return True

    def _clean(self, s: str) -> str:
        return self._QUERY.sub("?[REDACTED]", self._TOKEN.sub(r"\1[TOKEN]", s))


def receiver_url(host: str, port: int) -> str:
    """The address a local client uses to reach a receiver bound to ``host``:``port``."""
    h = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
    if ":" in h and not h.startswith("["):
        h = f"[{h}]"
    return f"http://{h}:{port}"


class ReceiverHeartbeat:
    """Beats ``webhook_receiver`` (info {"url": ...}) every ``every`` seconds once the server is listening, from a
    daemon thread; marks it stopped when the server ends. Never raises into the server."""

    def __init__(self, store, server, host: str, port: int, every: float | None = None):
        import threading

        from engine.queries.health import RECEIVER_EVERY

        self.store, self.server, self.host, self.port = store, server, host, port
        self.every = RECEIVER_EVERY if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receiver-heartbeat", daemon=True)
        self.url: str | None = None

    def start(self) -> "ReceiverHeartbeat":
        self._thread.start()
        return self

    def _bound_port(self) -> int:
        try:
            return self.server.servers[0].sockets[0].getsockname()[1]
        except Exception:  # noqa: BLE001 - the configured port, then
            return self.port

    def _run(self) -> None:
        from engine.queries.health import RECEIVER, beat

        while not self._stop.is_set() and not getattr(self.server, "started", False):
            self._stop.wait(0.1)
        if self._stop.is_set():
            return
        self.url = receiver_url(self.host, self._bound_port())
        while not self._stop.is_set():
            try:
                beat(self.store, RECEIVER, {"url": self.url, "pid": os.getpid()})
            except Exception as e:  # noqa: BLE001 - a database outage must not take the receiver down
                log.warning("webhook receiver heartbeat not recorded: %s", e)
            self._stop.wait(self.every)

    def stop(self) -> None:
        from engine.queries.health import RECEIVER, mark_stopped

        self._stop.set()
        self._thread.join(timeout=5)
        if self.url is not None:
            try:
                mark_stopped(self.store, RECEIVER)
            except Exception:  # noqa: BLE001
                pass


def serve(host: str = "127.0.0.1", port: int = 8787, engine_app=None) -> None:
    """Run the receiver until stopped; while it listens it leaves a heartbeat with its URL (component health,
    and `alpha verify` finds it on another port). ``GET /healthz`` answers {"ok": true} (HTTP 200) while the
    database is reachable and migrated, for supervisors. After engine.adapters.logs.configure_logging() uvicorn's own
    log
    lines go through the same structured handler."""
    import uvicorn

    from engine.adapters.logs import configured

    if engine_app is None:
        from engine.app import App

        engine_app = App()
        engine_app.store.check_ready()
    logging.getLogger("uvicorn.access").addFilter(RedactAccessLog())
    structured = configured()
    server = uvicorn.Server(uvicorn.Config(create_app(engine_app), host=host, port=port,
                                           log_level=None if structured else "info", proxy_headers=True,
                                           log_config=None if structured else uvicorn.config.LOGGING_CONFIG))
    import signal

    def _terminated(*_):  # uvicorn re-raises SIGTERM after its graceful shutdown: end here, heartbeat marked
        raise SystemExit(0)

    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread (embedded): leave signals alone
        previous = None
    hb = ReceiverHeartbeat(engine_app.store, server, host, port).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        hb.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not server.started:  # e.g. the port is taken: uvicorn said why; exit non-zero as uvicorn.run does
        import sys

        sys.exit(3)


def one_click_post(engine_app, path: str):
    """POST List-Unsubscribe=One-Click to the real receiver app of ``engine_app``, in process (no port needed): the
    receiver run_unsubscribe_test (engine/services/canary.py) is given, since a service cannot import it."""
    import httpx

    async def go():
        transport = httpx.ASGITransport(app=create_app(engine_app, keys=SignatureKeys()))
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.post(path, content="List-Unsubscribe=One-Click",
                                     headers={"content-type": "application/x-www-form-urlencoded"})

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no loop in this thread
        return asyncio.run(go())
    # a loop is already running in this thread (an async server, a sync Playwright session): use another thread
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()
