"""Local fakes of the vendors' HTTP APIs, speaking their wire formats, for tests that must never leave 127.0.0.1.

Each fake is a ``ThreadingHTTPServer`` on port 0 in a daemon thread: ``with SlackWebhookFake() as slack: ...``
(or ``start()`` / ``stop()``). Every request is recorded (method, path, lower-cased headers, body, arrival time);
responses are scripted with ``queue(...)`` (consumed in order) or ``always(...)`` (sticky), and otherwise the
fake answers like the real service does on success. ``latency`` delays every answer; ``max_in_flight`` shows
the most requests that were being served at once.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Union[bytes, str, dict, list, None] = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (on top of the server's latency)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body or b"", "application/octet-stream"


Script = Union[Reply, Callable[[Recorded], Reply]]


class FakeServer:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: deque[Script] = deque()
        self._always: Script | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeServer":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                fake._serve(self)

            do_GET = do_PUT = do_DELETE = do_POST  # noqa: N815

            def log_message(self, *a):  # keep test output clean
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that timed out and hung up
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ scripting
    def queue(self, *replies: Script) -> "FakeServer":
        with self._lock:
            self._script.extend(replies)
        return self

    def always(self, reply: Script | None) -> "FakeServer":
        self._always = reply
        return self

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._always = None
            self.max_in_flight = 0

    @property
    def count(self) -> int:
        return len(self.requests)

    def default(self, req: Recorded) -> Reply:  # subclasses answer like the real service
        return Reply(200, "ok")

    # ------------------------------------------------------------------ serving
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Recorded(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body, time.monotonic())
        with self._lock:
            self.requests.append(req)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            script = self._script.popleft() if self._script else self._always
        try:
            if script is None:
                reply = self.default(req)
            elif callable(script):
                reply = script(req)
            else:
                reply = script
            wait = self.latency + reply.delay
            if wait > 0:
                self._stopping.wait(wait)
            data, ctype = reply.encoded()
            h.send_response(reply.status)
            headers = {"content-type": ctype, **{k.lower(): v for k, v in reply.headers.items()}}
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self._in_flight -= 1


# ---------------------------------------------------------------------------------------------- Slack

class SlackWebhookFake(FakeServer):
    """A Slack incoming webhook: POST JSON to /services/T.../B.../<secret>; 200 "ok" on success."""

    def __init__(self, latency: float = 0.0, token: str = "xoxfake0secret0token0123456789"):
        super().__init__(latency)
        self.path = f"/services/T0FAKE000/B0FAKE000/{token}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def payloads(self) -> list[dict]:
        return [r.json for r in self.requests]

    def default(self, req: Recorded) -> Reply:
        if req.method != "POST" or req.path != self.path:
            return Reply(404, "no_service", {"content-type": "text/html"})
        try:
            body = req.json
        except ValueError:
            return Reply(400, "invalid_payload", {"content-type": "text/html"})
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return Reply(400, "no_text", {"content-type": "text/html"})
        return self.ok()

    @staticmethod
    def ok() -> Reply:
        return Reply(200, "ok", {"content-type": "text/html"})

    @staticmethod
    def rate_limited(retry_after: str | int | None = "1") -> Reply:
        headers = {"content-type": "text/html"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return Reply(429, "rate_limited", headers)

    @staticmethod
    def error(status: int = 500, text: str = "internal_error") -> Reply:
        return Reply(status, text, {"content-type": "text/html"})

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        r = cls.ok()
        r.delay = seconds
        return r


# ---------------------------------------------------------------------------------------------- LLM APIs

def _words(s: str | None) -> int:
    return len((s or "").split())


class _LLMFake(FakeServer):
    PATH = ""

    def __init__(self, api_key: str, latency: float = 0.0, reply: Callable[[str], str] | None = None):
        super().__init__(latency)
        self.api_key = api_key
        self.reply_text = reply or (lambda prompt: f"{self.label} draft: {prompt[:60]}")

    label = "fake"

    def ok(self, text: str | None = None, input_tokens: int | None = None,
           output_tokens: int | None = None) -> Callable[[Recorded], Reply]:
        """A scripted success (the request is still validated like the real API does)."""
        return lambda req: self.check(req) or self.success(req, text, input_tokens, output_tokens)

    def default(self, req: Recorded) -> Reply:
        problem = self.check(req)
        return problem if problem is not None else self.success(req)

    def slow(self, seconds: float, then: Script | None = None) -> Callable[[Recorded], Reply]:
        """Answer after ``seconds`` (with ``then``, or the normal answer)."""
        def f(req: Recorded) -> Reply:
            r = then(req) if callable(then) else (then or self.default(req))
            return Reply(r.status, r.body, dict(r.headers), r.delay + seconds)
        return f

    def check(self, req: Recorded) -> Reply | None:
        raise NotImplementedError

    def success(self, req: Recorded, text=None, input_tokens=None, output_tokens=None) -> Reply:
        raise NotImplementedError


class AnthropicFake(_LLMFake):
    """POST /v1/messages with x-api-key and anthropic-version, as the Messages API."""

    PATH = "/v1/messages"
    label = "anthropic"

    def __init__(self, api_key: str = "sk-ant-fake-key-0123456789", latency: float = 0.0, reply=None):
        super().__init__(api_key, latency, reply)

    @staticmethod
    def _error(status: int, etype: str, message: str, headers: dict | None = None) -> Reply:
        return Reply(status, {"type": "error", "error": {"type": etype, "message": message},
                              "request_id": f"req_{uuid.uuid4().hex[:16]}"}, headers or {})

    def check(self, req: Recorded) -> Reply | None:
        if req.method != "POST" or req.path != self.PATH:
            return self._error(404, "not_found_error", f"Not found: {req.path}")
        if req.headers.get("x-api-key") != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not req.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        try:
            body = req.json
        except ValueError:
            return self._error(400, "invalid_request_error", "request body is not valid JSON")
        for f in ("model", "max_tokens", "messages"):
            if f not in body:
                return self._error(400, "invalid_request_error", f"{f}: Field required")
        return None

    def success(self, req, text=None, input_tokens=None, output_tokens=None) -> Reply:
        body = req.json
        prompt = body["messages"][-1]["content"]
        text = text if text is not None else self.reply_text(prompt)
        return Reply(200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": input_tokens if input_tokens is not None
                      else _words(body.get("system")) + _words(prompt) + 3,
                      "output_tokens": output_tokens if output_tokens is not None else _words(text)},
        }, {"request-id": f"req_{uuid.uuid4().hex[:16]}"})

    @classmethod
    def rate_limited(cls, retry_after: str | int | None = "1") -> Reply:
        h = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls._error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate "
                                                   "limit", h)

    @classmethod
    def overloaded(cls, retry_after: str | int | None = None) -> Reply:
        h = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls._error(529, "overloaded_error", "Overloaded", h)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls._error(status, "api_error", "Internal server error")


class OpenAIFake(_LLMFake):
    """POST /v1/chat/completions with a Bearer key, as the Chat Completions API."""

    PATH = "/v1/chat/completions"
    label = "openai"

    def __init__(self, api_key: str = "sk-proj-fake-key-0123456789", latency: float = 0.0, reply=None):
        super().__init__(api_key, latency, reply)

    @staticmethod
    def _error(status: int, etype: str, message: str, code: str | None = None, headers: dict | None = None) -> Reply:
        return Reply(status, {"error": {"message": message, "type": etype, "param": None, "code": code}},
                     headers or {})

    def check(self, req: Recorded) -> Reply | None:
        if req.method != "POST" or req.path != self.PATH:
            return self._error(404, "invalid_request_error", f"Invalid URL (POST {req.path})")
        auth = req.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            # the real API masks most of the key; this fake echoes it whole, to prove callers scrub it
            return self._error(401, "invalid_request_error", f"Incorrect API key provided: {given}.",
                               "invalid_api_key")
        try:
            body = req.json
        except ValueError:
            return self._error(400, "invalid_request_error", "We could not parse the JSON body of your request.")
        for f in ("model", "messages"):
            if f not in body:
                return self._error(400, "invalid_request_error", f"Missing required parameter: '{f}'.")
        return None

    def success(self, req, text=None, input_tokens=None, output_tokens=None) -> Reply:
        body = req.json
        prompt = body["messages"][-1]["content"]
        text = text if text is not None else self.reply_text(prompt)
        pt = input_tokens if input_tokens is not None else sum(_words(m["content"]) for m in body["messages"]) + 7
        ct = output_tokens if output_tokens is not None else _words(text)
        return Reply(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }, {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"})

    @classmethod
    def rate_limited(cls, retry_after: str | int | None = "1") -> Reply:
        h = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls._error(429, "requests", "Rate limit reached for requests", "rate_limit_exceeded", h)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls._error(status, "server_error", "The server had an error while processing your request.")
