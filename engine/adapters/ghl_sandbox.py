"""A local GoHighLevel sandbox that speaks GHL's wire format, for tests and for trying the engine end to end.

Serves exactly the endpoints ``GHLClient`` uses, from a small thread-safe in-memory store:

    GET    /contacts/search/duplicate?locationId=&email=   Version 2021-07-28
    GET    /contacts/{contactId}                           Version 2021-07-28
    POST   /contacts/upsert                                Version 2021-07-28
    POST   /contacts/{contactId}/tags                      Version 2021-07-28
    DELETE /contacts/{contactId}/tags                      Version 2021-07-28
    POST   /conversations/messages   (type Email)          Version 2021-04-15
    GET    /locations/{locationId}                         Version 2021-07-28

Every API call needs ``Authorization: Bearer <token>`` (any token, or the one given at start) and the
``Version`` its spec requires (400 with a GHL-style body otherwise). Every response carries
X-RateLimit-Max/-Remaining/-Interval-Milliseconds/-Limit-Daily/-Daily-Remaining, and the documented limits
are enforced (429 when exceeded). Bodies follow GHL's OpenAPI schemas (the tests check each one).

Control endpoints (no auth), for tests and demos:

    GET  /_sandbox/messages         every message "sent" (nothing is delivered anywhere)
    GET  /_sandbox/contacts         the store
    GET  /_sandbox/requests         every API request seen (method, path, headers without Authorization, status)
    POST /_sandbox/reset            empty everything; optional {"burst_max", "interval_ms", "daily_max"}
    POST /_sandbox/contacts         seed contacts: {"contacts": [{...}]} or one contact, e.g. with dndSettings
    POST /_sandbox/faults           {"fault": F, "count": N, "path": prefix, "method": M, ...}: the next N
                                    matching API requests get fault F:
        "429" (+ "retry_after": seconds or HTTP date, omitted = no Retry-After header),
        "500" / "502" / "503" / "504" / "400" / "401" / "403" / "404" / "422": that status,
        "slow" (+ "seconds"): wait, then answer normally,
        "timeout" (+ "seconds", default 2, at most 30; "process", default true): process the request (e.g.
            record the message) unless process is false, hold longer than the client waits, then close,
        "drop_before": read the request, close the connection without processing or answering,
        "drop_after": process the request (record the message), close without answering (the ambiguous case),
        "upsert_422_creates": GHL's known quirk: create/update the contact, answer 422 anyway.
    GET  /_sandbox/faults, DELETE /_sandbox/faults

Run it: ``python -m engine.adapters.ghl_sandbox --port 8765`` (or ``start_sandbox()`` in a test).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import secrets
import socket
import string
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

VERSION_CONTACTS = "2021-07-28"
VERSION_LOCATIONS = "2021-07-28"
VERSION_CONVERSATIONS = "2021-04-15"
DEFAULT_LOCATION = "sandboxLocation000001"
# The company every sandbox location belongs to: how an answer of GET /locations/{id} identifies this sandbox,
# wherever it is reached from (127.0.0.1, a LAN address with `alpha sandbox ghl --host 0.0.0.0`, a DNS name).
SANDBOX_COMPANY_ID = "sandboxCompany000001"
MESSAGE_TYPES = ("SMS", "RCS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat", "TIKTOK")
DND_STATUSES = ("active", "inactive", "permanent")
DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
STRING_FIELDS = ("firstName", "lastName", "name", "phone", "address1", "city", "state", "postalCode", "website",
                 "timezone", "companyName", "source", "country", "assignedTo", "dateOfBirth")
STATUS_FAULTS = ("400", "401", "403", "404", "422", "429", "500", "502", "503", "504")
FAULTS = STATUS_FAULTS + ("slow", "timeout", "drop_before", "drop_after", "upsert_422_creates")
MAX_HOLD_SECONDS = 30.0
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

_ALNUM = string.ascii_letters + string.digits


def _id() -> str:
    """A GHL-looking id (20 alphanumerics)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(20))


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def error_body(status: int, message: str | list[str]) -> dict:
    """GHL's error shape: 422 carries a list of messages (UnprocessableDTO), 401/403 an ``error`` too."""
    if status == 422 and isinstance(message, str):
        message = [message]
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if status in (401, 403, 422):
        body["error"] = REASONS[status]
    return body


class ApiError(Exception):
    def __init__(self, status: int, message: str | list[str]):
        super().__init__(message)
        self.status, self.message = status, message


# ------------------------------------------------------------------------------------- state

class SandboxState:
    """The sandbox's store, faults and counters. Every access holds ``lock``."""

    def __init__(self, location_id: str = DEFAULT_LOCATION, token: str | None = None, burst_max: int = 100,
                 interval_ms: int = 10_000, daily_max: int = 200_000):
        self.location_id, self.token = location_id, token
        self.lock = threading.RLock()
        self.closing = threading.Event()
        self.reset(burst_max, interval_ms, daily_max)

    def reset(self, burst_max: int = 100, interval_ms: int = 10_000, daily_max: int = 200_000) -> None:
        with self.lock:
            self.contacts: dict[str, dict] = {}
            self.messages: list[dict] = []
            self.requests: list[dict] = []
            self.faults: list[dict] = []
            self.conversations: dict[str, str] = {}
            self.burst_max, self.interval_ms, self.daily_max = burst_max, interval_ms, daily_max
            self.window: collections.deque[float] = collections.deque()
            self.daily_used = 0

    # --- rate limits
    def count_request(self) -> tuple[bool, dict]:
        """Count one API request; (allowed, rate-limit headers)."""
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - self.interval_ms / 1000:
                self.window.popleft()
            allowed = len(self.window) < self.burst_max and self.daily_used < self.daily_max
            if allowed:
                self.window.append(now)
                self.daily_used += 1
            return allowed, self.rate_headers()

    def rate_headers(self) -> dict:
        with self.lock:
            return {"X-RateLimit-Max": str(self.burst_max),
                    "X-RateLimit-Remaining": str(max(0, self.burst_max - len(self.window))),
                    "X-RateLimit-Interval-Milliseconds": str(self.interval_ms),
                    "X-RateLimit-Limit-Daily": str(self.daily_max),
                    "X-RateLimit-Daily-Remaining": str(max(0, self.daily_max - self.daily_used))}

    # --- faults
    def add_fault(self, spec: dict) -> dict:
        if not isinstance(spec, dict):
            raise ApiError(400, "a fault is a JSON object")
        name = str(spec.get("fault", ""))
        if name not in FAULTS:
            raise ApiError(400, f"unknown fault {name!r}; one of {', '.join(FAULTS)}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ApiError(400, "count must be a positive integer")
        seconds = spec.get("seconds", 2.0 if name == "timeout" else 1.0)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ApiError(400, "seconds must be a non-negative number")
        rule = {"fault": name, "count": count,
                "path": spec.get("path") or ("/contacts/upsert" if name == "upsert_422_creates" else None),
                "method": (spec.get("method") or "").upper() or None,
                "retry_after": spec.get("retry_after"),
                "seconds": min(float(seconds), MAX_HOLD_SECONDS),
                "process": bool(spec.get("process", True))}
        with self.lock:
            self.faults.append(rule)
        return dict(rule)

    def take_fault(self, method: str, path: str) -> dict | None:
        with self.lock:
            for rule in self.faults:
                if rule["count"] <= 0:
                    continue
                if rule["method"] and rule["method"] != method:
                    continue
                if rule["path"] and not path.startswith(rule["path"]):
                    continue
                rule["count"] -= 1
                taken = dict(rule)
                self.faults = [r for r in self.faults if r["count"] > 0]
                return taken
        return None

    # --- contacts
    def seed(self, contact: dict) -> dict:
        if not isinstance(contact, dict):
            raise ApiError(400, "a contact is a JSON object")
        with self.lock:
            cid = str(contact.get("id") or _id())
            c = self._apply({"id": cid, "locationId": self.location_id, "dateAdded": _now_iso(), "tags": []},
                            {k: v for k, v in contact.items() if k != "id"}, strict=False)
            self.contacts[cid] = c
            return dict(c)

    def find_by_email(self, email: str) -> dict | None:
        e = email.strip().lower()
        with self.lock:
            for c in self.contacts.values():
                if c.get("emailLowerCase") == e:
                    return c
        return None

    def _apply(self, contact: dict, data: dict, strict: bool = True) -> dict:
        """Copy the fields the sandbox keeps from an upsert (or seed) body onto a contact."""
        problems = []
        for k in STRING_FIELDS:
            if k in data and data[k] is not None:
                if isinstance(data[k], str):
                    contact[k] = data[k]
                else:
                    problems.append(f"{k} must be a string")
        if data.get("email") is not None:
            email = data["email"]
            if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email.strip()):
                problems.append("email must be an email")
            else:
                contact["email"], contact["emailLowerCase"] = email.strip(), email.strip().lower()
        if "dnd" in data:
            if isinstance(data["dnd"], bool):
                contact["dnd"] = data["dnd"]
            else:
                problems.append("dnd must be a boolean value")
        if "dndSettings" in data:
            ds = data["dndSettings"]
            if not isinstance(ds, dict):
                problems.append("dndSettings must be an object")
            else:
                clean = dict(contact.get("dndSettings") or {})
                for ch, setting in ds.items():
                    if ch not in DND_CHANNELS or not isinstance(setting, dict) or \
                            setting.get("status") not in DND_STATUSES:
                        problems.append(f"dndSettings.{ch}.status must be one of {', '.join(DND_STATUSES)}")
                        continue
                    clean[ch] = {k: str(v) for k, v in setting.items() if k in ("status", "message", "code")}
                contact["dndSettings"] = clean
        if "tags" in data:
            tags = data["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                problems.append("tags must be an array of strings")
            else:
                contact["tags"] = _dedupe(tags)
        if problems and strict:
            raise ApiError(422, problems)
        if contact.get("firstName") or contact.get("lastName"):
            contact.setdefault("name", " ".join(x for x in (contact.get("firstName"), contact.get("lastName")) if x))
        contact["dateUpdated"] = _now_iso()
        return contact


def _dedupe(tags: list[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        t = t.strip()
        if t and t.lower() not in (x.lower() for x in out):
            out.append(t)
    return out


# ------------------------------------------------------------------------------------- API handlers

def _contact_or_400(state: SandboxState, contact_id: str) -> dict:
    c = state.contacts.get(contact_id)
    if c is None:
        raise ApiError(400, "Contact not found")
    return c


def h_duplicate(state: SandboxState, req: "_Req") -> tuple[int, dict]:
    loc = req.query.get("locationId")
    if not loc:
        raise ApiError(400, "locationId is required")
    if loc != state.location_id:
        raise ApiError(403, "The token does not have access to this location.")
    email = req.query.get("email")
    if not email and not req.query.get("number"):
        raise ApiError(400, "email or number is required")
    with state.lock:
        c = state.find_by_email(email) if email else None
        return 200, {"contact": dict(c) if c else None}


def h_get_contact(state: SandboxState, req: "_Req", contact_id: str) -> tuple[int, dict]:
    with state.lock:
        return 200, {"contact": dict(_contact_or_400(state, contact_id))}


def h_upsert(state: SandboxState, req: "_Req") -> tuple[int, dict]:
    body = req.json_object()
    if body.get("locationId") in (None, ""):
        raise ApiError(422, "locationId should not be empty")
    if body["locationId"] != state.location_id:
        raise ApiError(403, "The token does not have access to this location.")
    if not body.get("email") and not body.get("phone"):
        raise ApiError(422, "email or phone is required to upsert a contact")
    with state.lock:
        existing = state.find_by_email(body["email"]) if isinstance(body.get("email"), str) else None
        if existing is not None:
            updated = state._apply(dict(existing), body)
            state.contacts[existing["id"]] = updated
            return 200, {"new": False, "contact": dict(updated), "traceId": str(uuid.uuid4())}
        now = _now_iso()
        c = state._apply({"id": _id(), "locationId": state.location_id, "type": "lead", "tags": [],
                          "dateAdded": now}, body)
        state.contacts[c["id"]] = c
        return 200, {"new": True, "contact": dict(c), "traceId": str(uuid.uuid4())}


def _tags_body(req: "_Req") -> list[str]:
    body = req.json_object()
    tags = body.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(422, "tags must be an array of strings")
    return tags


def h_add_tags(state: SandboxState, req: "_Req", contact_id: str) -> tuple[int, dict]:
    tags = _tags_body(req)
    with state.lock:
        c = _contact_or_400(state, contact_id)
        c["tags"] = _dedupe(list(c.get("tags") or []) + tags)
        c["dateUpdated"] = _now_iso()
        return 201, {"tags": list(c["tags"])}


def h_remove_tags(state: SandboxState, req: "_Req", contact_id: str) -> tuple[int, dict]:
    tags = {t.strip().lower() for t in _tags_body(req)}
    with state.lock:
        c = _contact_or_400(state, contact_id)
        c["tags"] = [t for t in c.get("tags") or [] if t.lower() not in tags]
        c["dateUpdated"] = _now_iso()
        return 200, {"tags": list(c["tags"])}


def h_send(state: SandboxState, req: "_Req") -> tuple[int, dict]:
    body = req.json_object(status=400)
    mtype = body.get("type")
    if mtype not in MESSAGE_TYPES:
        raise ApiError(400, f"type must be one of the following values: {', '.join(MESSAGE_TYPES)}")
    if mtype != "Email":
        raise ApiError(400, f"the GHL sandbox only sends Email messages, not {mtype}")
    if not isinstance(body.get("contactId"), str) or not body["contactId"]:
        raise ApiError(400, "contactId should not be empty")
    if not (isinstance(body.get("html"), str) and body["html"]) and \
            not (isinstance(body.get("message"), str) and body["message"]):
        raise ApiError(400, "html or message is required for an Email")
    for k in ("subject", "emailFrom", "emailTo", "html", "message", "threadId", "replyMessageId"):
        if k in body and not isinstance(body[k], str):
            raise ApiError(400, f"{k} must be a string")
    with state.lock:
        c = _contact_or_400(state, body["contactId"])
        if c.get("dnd") is True or (c.get("dndSettings") or {}).get("Email", {}).get("status") in ("active",
                                                                                                    "permanent"):
            raise ApiError(400, "Cannot send message as DND is active for Email.")
        to = body.get("emailTo") or c.get("email")
        if not to:
            raise ApiError(400, "The contact has no email address")
        if body.get("emailTo") and body["emailTo"].strip().lower() != c.get("emailLowerCase"):
            raise ApiError(400, "emailTo must be an email address of the contact")
        conversation = state.conversations.setdefault(c["id"], _id())
        msg = {"messageId": _id(), "conversationId": conversation, "emailMessageId": _id(), "contactId": c["id"],
               "type": "Email", "to": to, "from": body.get("emailFrom"), "subject": body.get("subject"),
               "html": body.get("html"), "message": body.get("message"), "emailCc": body.get("emailCc"),
               "emailBcc": body.get("emailBcc"), "sentAt": _now_iso(), "body": body,
               "request_headers": req.safe_headers()}
        state.messages.append(msg)
        return 200, {"conversationId": conversation, "emailMessageId": msg["emailMessageId"],
                     "messageId": msg["messageId"], "msg": "Email queued successfully.", "status": "pending"}


def h_location(state: SandboxState, req: "_Req", location_id: str) -> tuple[int, dict]:
    if location_id != state.location_id:
        raise ApiError(403, "The token does not have access to this location.")
    return 200, {"location": {"id": state.location_id, "companyId": SANDBOX_COMPANY_ID, "name": "GHL Sandbox",
                              "email": "sandbox@ghl-sandbox.invalid", "timezone": "UTC", "country": "US",
                              "settings": {"allowDuplicateContact": False, "allowDuplicateOpportunity": False,
                                           "allowFacebookNameMerge": False, "disableContactTimezone": False}}}


def is_sandbox_location(location: Any) -> bool:
    """Whether an answer of GET /locations/{id} (the body or its "location") comes from this sandbox: its
    companyId is SANDBOX_COMPANY_ID. No real GHL account has that company."""
    if isinstance(location, dict) and isinstance(location.get("location"), dict):
        location = location["location"]
    return isinstance(location, dict) and str(location.get("companyId") or "").strip() == SANDBOX_COMPANY_ID


Handler = Callable[..., tuple[int, Any]]  # (state, request, *path groups) -> (status, JSON payload)
ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    ("GET", re.compile(r"^/contacts/search/duplicate$"), VERSION_CONTACTS, h_duplicate),
    ("POST", re.compile(r"^/contacts/upsert$"), VERSION_CONTACTS, h_upsert),
    ("POST", re.compile(r"^/contacts/([^/]+)/tags$"), VERSION_CONTACTS, h_add_tags),
    ("DELETE", re.compile(r"^/contacts/([^/]+)/tags$"), VERSION_CONTACTS, h_remove_tags),
    ("GET", re.compile(r"^/contacts/([^/]+)$"), VERSION_CONTACTS, h_get_contact),
    ("POST", re.compile(r"^/conversations/messages$"), VERSION_CONVERSATIONS, h_send),
    ("GET", re.compile(r"^/locations/([^/]+)$"), VERSION_LOCATIONS, h_location),
]


# ------------------------------------------------------------------------------------- HTTP plumbing

class _Req:
    def __init__(self, method: str, path: str, query: dict, headers, body: bytes):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json_object(self, status: int = 422) -> dict:
        try:
            data = json.loads(self.body or b"null")
        except ValueError:
            raise ApiError(400, "Unexpected token in JSON body") from None
        if not isinstance(data, dict):
            raise ApiError(status, "the request body must be a JSON object")
        return data

    def safe_headers(self) -> dict:
        return {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "cookie")}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GHLSandbox/1.0"
    server: "GHLSandboxServer"

    def log_message(self, fmt: str, *args) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    # ---------------------------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, body: Any, extra: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status, REASONS.get(status))
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body()
        if path.startswith("/_sandbox/") or path == "/_sandbox":
            return self._control(state, path, body)
        req = _Req(self.command, path, query, self.headers, body)
        log_row: dict[str, Any] = {"method": self.command, "path": path, "query": query,
                                   "headers": req.safe_headers(),
                   "status": None, "fault": None, "at": _now_iso()}
        with state.lock:
            state.requests.append(log_row)

        allowed, rate = state.count_request()

        def answer(status: int, payload: Any, extra: dict | None = None) -> None:
            log_row["status"] = status
            self._send(status, payload, {**rate, **(extra or {})})

        if not allowed:
            return answer(429, error_body(429, "Too many requests. Please try again later."))

        route: tuple[str, Handler, list[str]] | None = None
        for method, pattern, version, handler in ROUTES:
            m = pattern.match(path)
            if m and method == self.command:
                route = (version, handler, [unquote(g) for g in m.groups()])
                break
        if route is None:
            return answer(404, error_body(404, f"Cannot {self.command} {path}"))
        version, handler, args = route

        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return answer(401, error_body(401, "Authorization header is missing or is not a Bearer token"))
        if state.token is not None and auth[7:].strip() != state.token:
            return answer(401, error_body(401, "Invalid JWT"))
        got = self.headers.get("Version")
        if got != version:
            what = "is missing" if not got else f"{got!r} is not supported by this endpoint"
            return answer(400, error_body(400, f"Version header {what}; expected Version: {version}"))

        fault = state.take_fault(self.command, path) or {}  # {}: no fault armed for this request
        name = fault["fault"] if fault else None
        log_row["fault"] = name
        if name == "drop_before":
            log_row["status"] = "dropped"
            return self._drop()
        if name in STATUS_FAULTS:
            status = int(name)
            extra = {}
            if status == 429 and fault.get("retry_after") is not None:
                extra["Retry-After"] = str(fault["retry_after"])
            return answer(status, error_body(status, REASONS[status]), extra)
        if name == "slow":
            state.closing.wait(fault["seconds"])
        if name == "timeout" and not fault["process"]:
            state.closing.wait(fault["seconds"])
            log_row["status"] = "timeout"
            return self._drop()

        try:
            status, payload = handler(state, req, *args)
        except ApiError as e:
            status, payload = e.status, error_body(e.status, e.message)

        if name == "timeout":
            state.closing.wait(fault["seconds"])
            log_row["status"] = f"timeout (processed: {status})"
            return self._drop()
        if name == "drop_after":
            log_row["status"] = f"dropped (processed: {status})"
            return self._drop()
        if name == "upsert_422_creates" and status < 300:
            return answer(422, error_body(422, ["email must be an email", "Unprocessable Entity"]))
        return answer(status, payload)

    def _control(self, state: SandboxState, path: str, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._send(400, error_body(400, "body is not JSON"))
        key = (self.command, path.rstrip("/"))
        try:
            if key == ("GET", "/_sandbox/messages"):
                with state.lock:
                    return self._send(200, {"messages": [dict(m) for m in state.messages]})
            if key == ("GET", "/_sandbox/contacts"):
                with state.lock:
                    return self._send(200, {"contacts": [dict(c) for c in state.contacts.values()]})
            if key == ("GET", "/_sandbox/requests"):
                with state.lock:
                    return self._send(200, {"requests": [dict(r) for r in state.requests]})
            if key == ("POST", "/_sandbox/reset"):
                state.reset(**{k: int(body[k]) for k in ("burst_max", "interval_ms", "daily_max") if k in body})
                return self._send(200, {"reset": True})
            if key == ("POST", "/_sandbox/contacts"):
                items = body.get("contacts") if isinstance(body, dict) and "contacts" in body else [body]
                if not isinstance(items, list):
                    raise ApiError(400, "contacts must be a list")
                return self._send(201, {"contacts": [state.seed(c) for c in items]})
            if key == ("POST", "/_sandbox/faults"):
                return self._send(201, {"fault": state.add_fault(body)})
            if key == ("GET", "/_sandbox/faults"):
                with state.lock:
                    return self._send(200, {"faults": [dict(f) for f in state.faults]})
            if key == ("DELETE", "/_sandbox/faults"):
                with state.lock:
                    state.faults = []
                return self._send(200, {"faults": []})
        except ApiError as e:
            return self._send(e.status, error_body(e.status, e.message))
        except (TypeError, ValueError) as e:
            return self._send(400, error_body(400, str(e)))
        return self._send(404, error_body(404, f"Cannot {self.command} {path}"))


def _host_port(address: tuple) -> tuple[str, int]:
    """(host, port) of a bound AF_INET/AF_INET6 address. The socket reports the host as str; typeshed also allows
    bytes, which would print as b'...' in a URL, so those are decoded."""
    host, port = address[0], address[1]
    return (host.decode() if isinstance(host, (bytes, bytearray)) else str(host)), int(port)


class GHLSandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState | None = None, verbose: bool = False):
        self.state = state or SandboxState()
        self.verbose = verbose
        self._serving = threading.Event()
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        host, port = _host_port(self.server_address)
        return f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    def shutdown(self) -> None:
        """Stop serving (from another thread), release held requests and close the socket."""
        self.state.closing.set()
        if self._serving.is_set():
            super().shutdown()
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return  # a client that went away: expected with timeouts and drops
        super().handle_error(request, client_address)


def start_sandbox(host: str = "127.0.0.1", port: int = 0, *, location_id: str = DEFAULT_LOCATION,
                  token: str | None = None, verbose: bool = False) -> tuple[GHLSandboxServer, str]:
    """Start a sandbox in a daemon thread: (server, base_url). Stop it with ``server.shutdown()``."""
    server = GHLSandboxServer((host, port), SandboxState(location_id=location_id, token=token), verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, name="ghl-sandbox", daemon=True)
    thread.start()
    server._serving.wait(5)
    return server, server.base_url


class SandboxControl:
    """A small client for the ``/_sandbox/`` control endpoints."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def _ok(self, r: httpx.Response) -> dict:
        r.raise_for_status()
        return r.json()

    def reset(self, **limits) -> None:
        self._ok(self.http.post("/_sandbox/reset", json=limits))

    def messages(self) -> list[dict]:
        return self._ok(self.http.get("/_sandbox/messages"))["messages"]

    def contacts(self) -> list[dict]:
        return self._ok(self.http.get("/_sandbox/contacts"))["contacts"]

    def requests(self) -> list[dict]:
        return self._ok(self.http.get("/_sandbox/requests"))["requests"]

    def seed(self, *contacts: dict) -> list[dict]:
        return self._ok(self.http.post("/_sandbox/contacts", json={"contacts": list(contacts)}))["contacts"]

    def fault(self, fault: str, count: int = 1, **kw) -> dict:
        return self._ok(self.http.post("/_sandbox/faults", json={"fault": fault, "count": count, **kw}))["fault"]

    def clear_faults(self) -> None:
        self._ok(self.http.delete("/_sandbox/faults"))

    def close(self) -> None:
        self.http.close()


def main(host: str = "127.0.0.1", port: int = 8765, *, location_id: str = DEFAULT_LOCATION,
         token: str | None = None, verbose: bool = True) -> None:
    """Serve until interrupted."""
    server = GHLSandboxServer((host, port), SandboxState(location_id=location_id, token=token), verbose=verbose)
    bound_host, bound_port = _host_port(server.server_address)
    print(f"GHL SANDBOX listening on http://{bound_host}:{bound_port}", flush=True)
    print(f"location id: {location_id}; {'any Bearer token' if token is None else 'the configured token'} "
          "is accepted; control endpoints under /_sandbox/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.state.closing.set()
        server.server_close()


if __name__ == "__main__":  # python -m engine.adapters.ghl_sandbox --port 8765
    ap = argparse.ArgumentParser(description="Local GoHighLevel API sandbox")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--location-id", default=DEFAULT_LOCATION)
    ap.add_argument("--token", default=None, help="accept only this Bearer token (default: any)")
    a = ap.parse_args()
    main(a.host, a.port, location_id=a.location_id, token=a.token)
