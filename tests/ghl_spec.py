"""GHL's official OpenAPI specs as a test oracle: validate every request the GHL client builds and every
response the GHL sandbox returns.

The specs (GoHighLevel/highlevel-api-docs, vendored read-only) are loaded with openapi-core, adjusted in
memory only for the two quirks their README names and for the way they are laid out:

- ``securitySchemes`` carry extra keys strict OpenAPI validation rejects: loaded with
  ``Config(spec_validator_cls=None)`` (openapi-core 0.19+ API; 0.23 installed).
- ``SendMessageBodyDto`` lists ``subType`` and ``status`` as required although clients send neither: both
  are removed from ``required``.
- The error bodies are ``$ref``'d as ``../common/common-schemas.json#...``, a path that does not exist in
  the vendored copy: the three shared schemas are merged into each spec's components and the refs pointed
  at them.

Statuses a spec does not document for an operation (403, 404, 429, 5xx) are checked against GHL's common
error shape ``{statusCode, message, error?}`` instead, and the 200 of ``GET /contacts/search/duplicate``
(documented without a body schema) against ``{contact: GetContectByIdSchema | null}``.

Use ``SpecRecorder.hooks()`` as httpx ``event_hooks``: it validates and records, and ``assert_clean()``
fails the test with every problem found.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from werkzeug.datastructures import Headers, ImmutableMultiDict

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = {"contacts": "contacts.json", "conversations": "conversations.json", "locations": "locations.json"}
SPEC_HOST = "https://services.leadconnectorhq.com"  # the specs' server; requests are validated as if sent there
_COMMON_REF = "../common/common-schemas.json#/components/schemas/"

GHL_ERROR_SCHEMA = {
    "type": "object",
    "required": ["statusCode", "message"],
    "properties": {
        "statusCode": {"type": "number"},
        "message": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "error": {"type": "string"},
    },
}


def spec_dir() -> Path | None:
    """GHL_OPENAPI_DIR, else vendor/ghl-openapi in the repository (CC0, copied unchanged)."""
    for cand in (os.environ.get("GHL_OPENAPI_DIR"), ROOT / "vendor" / "ghl-openapi"):
        if cand and (Path(cand) / "contacts.json").is_file():
            return Path(cand)
    return None


def spec_dict(name: str) -> dict:
    """One spec as a dict, with the shared error schemas merged in and the two quirks applied (a copy)."""
    return copy.deepcopy(_spec_data(name))


@functools.lru_cache(maxsize=None)
def _spec_data(name: str) -> dict:
    d = spec_dir()
    if d is None:
        raise FileNotFoundError("GHL OpenAPI specs not found: set GHL_OPENAPI_DIR to the folder holding contacts.json")
    common = json.loads((d / "common-schemas.json").read_text())["components"]["schemas"]
    data = json.loads((d / SPEC_FILES[name]).read_text().replace(_COMMON_REF, "#/components/schemas/"))
    schemas = data["components"]["schemas"]
    for key, value in common.items():
        if key in schemas and schemas[key] != value:
            raise ValueError(f"{name}: shared schema {key} collides with a local one")
        schemas[key] = copy.deepcopy(value)
    send = schemas.get("SendMessageBodyDto")
    if send is not None:
        send["required"] = [r for r in send.get("required", []) if r not in ("subType", "status")]
    return data


@functools.lru_cache(maxsize=None)
def openapi(name: str):
    from openapi_core import Config, OpenAPI

    return OpenAPI.from_dict(spec_dict(name), config=Config(spec_validator_cls=None))


def spec_name_for(path: str) -> str:
    first = path.lstrip("/").split("/", 1)[0]
    if first not in SPEC_FILES:
        raise ValueError(f"no GHL spec covers {path}")
    return first


def component_schema(spec: str, name: str) -> dict:
    """A component schema with its local $refs resolvable (the whole spec rides along as the root)."""
    data = _spec_data(spec)
    return {**data["components"]["schemas"][name], "components": data["components"]}


# ------------------------------------------------------------------------------------- adapters

class _Req:
    """httpx.Request -> openapi-core Request protocol."""

    def __init__(self, request: httpx.Request):
        self._r = request
        self.parameters = _params(request)

    host_url = SPEC_HOST

    @property
    def path(self) -> str:
        return self._r.url.path

    @property
    def method(self) -> str:
        return self._r.method.lower()

    @property
    def body(self) -> bytes | None:
        content = self._r.content
        return content if content else None

    @property
    def content_type(self) -> str:
        return self._r.headers.get("content-type", "")


def _params(request: httpx.Request):
    from openapi_core.datatypes import RequestParameters

    query = parse_qs(request.url.query.decode() if isinstance(request.url.query, bytes) else request.url.query,
                     keep_blank_values=True)
    return RequestParameters(query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
                             header=Headers(list(request.headers.items())), cookie=ImmutableMultiDict())


class _Resp:
    def __init__(self, response: httpx.Response):
        self._r = response

    @property
    def status_code(self) -> int:
        return self._r.status_code

    @property
    def content_type(self) -> str:
        return self._r.headers.get("content-type", "")

    @property
    def headers(self):
        return Headers(list(self._r.headers.items()))

    @property
    def data(self) -> bytes:
        return self._r.content


# ------------------------------------------------------------------------------------- validation

def request_problems(request: httpx.Request) -> list[str]:
    """Problems with a request the client built, against its operation in GHL's spec ([] when valid)."""
    try:
        app = openapi(spec_name_for(request.url.path))
    except ValueError as e:
        return [str(e)]
    result = app.unmarshal_request(_Req(request))
    return [_describe(e) for e in result.errors]


def _operation(spec: str, request: httpx.Request) -> dict | None:
    """The operation (as a dict) matching a request, found the way openapi-core finds it."""
    from openapi_core.templating.paths.finders import APICallPathFinder

    try:
        found = APICallPathFinder(openapi(spec).spec).find(request.method.lower(), SPEC_HOST + request.url.path)
    except Exception:  # noqa: BLE001 - the caller reports "no operation"
        return None
    op = _spec_data(spec)["paths"][found.path_result.pattern][request.method.lower()]
    return {"pattern": found.path_result.pattern, "responses": {str(k): v for k, v in op["responses"].items()}}


def response_problems(response: httpx.Response) -> list[str]:
    """Problems with a response the sandbox returned, against the spec of the request's operation."""
    request = response.request
    try:
        spec = spec_name_for(request.url.path)
    except ValueError as e:
        return [str(e)]
    op = _operation(spec, request)
    if op is None:
        return [f"{request.method} {request.url.path}: no operation in the {spec} spec"]
    status = str(response.status_code)
    if status not in op["responses"]:
        # Not documented for this operation: it must still be GHL's usual error body.
        return _json_problems(response, GHL_ERROR_SCHEMA, f"undocumented {status}")
    result = openapi(spec).unmarshal_response(_Req(request), _Resp(response))
    problems = [_describe(e) for e in result.errors]
    if (request.method, request.url.path, response.status_code) == ("GET", "/contacts/search/duplicate", 200):
        # documented without a body schema; GHL answers {"contact": <contact> | null}
        problems += _json_problems(response, {"type": "object", "required": ["contact"]}, "duplicate search")
        if not problems and response.json()["contact"] is not None:
            contact = {"$ref": "#/components/schemas/GetContectByIdSchema"}
            schema = {"type": "object", "properties": {"contact": contact},
                      "components": _spec_data("contacts")["components"]}
            problems += _json_problems(response, schema, "duplicate search")
    return problems


def _json_problems(response: httpx.Response, schema: dict, what: str) -> list[str]:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return [f"{what}: content-type {response.headers.get('content-type')!r} is not JSON"]
    try:
        body = response.json()
    except ValueError:
        return [f"{what}: body is not JSON: {response.content[:200]!r}"]
    from openapi_schema_validator import OAS30Validator

    errors = sorted(OAS30Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    return [f"{what}: {'/'.join(map(str, e.path)) or '(body)'}: {e.message}" for e in errors]


def _describe(e: Exception) -> str:
    parts = [f"{type(e).__name__}: {e}"]
    for inner in getattr(e, "schema_errors", None) or []:
        parts.append(f"  - {'/'.join(map(str, inner.path)) or '(root)'}: {inner.message}")
    cause = e.__cause__
    if cause is not None:
        parts.append(f"  caused by {type(cause).__name__}: {cause}")
        for inner in getattr(cause, "schema_errors", None) or []:
            parts.append(f"  - {'/'.join(map(str, inner.path)) or '(root)'}: {inner.message}")
    return "\n".join(parts)


class SpecRecorder:
    """httpx event hooks that validate every request and response and keep what they found."""

    def __init__(self):
        self.requests = 0
        self.responses = 0
        self.problems: list[str] = []
        self.seen: list[tuple[str, str, int | None]] = []
        self._lock = threading.Lock()

    def on_request(self, request: httpx.Request) -> None:
        problems = request_problems(request)
        with self._lock:
            self.requests += 1
            self.problems += [f"request {request.method} {request.url.path}: {p}" for p in problems]

    def on_response(self, response: httpx.Response) -> None:
        response.read()
        problems = response_problems(response)
        with self._lock:
            self.responses += 1
            self.seen.append((response.request.method, response.request.url.path, response.status_code))
            self.problems += [f"response {response.status_code} to {response.request.method} "
                              f"{response.request.url.path}: {p}" for p in problems]

    def hooks(self) -> dict:
        return {"request": [self.on_request], "response": [self.on_response]}

    def check_response(self, response: httpx.Response) -> None:
        """For responses obtained outside the hooks (raw requests built on purpose to be invalid)."""
        self.on_response(response)

    def assert_clean(self) -> None:
        assert not self.problems, "GHL spec violations:\n" + "\n".join(self.problems)


def validate_request(request: httpx.Request) -> None:
    problems = request_problems(request)
    assert not problems, "\n".join(problems)


def validate_response(response: httpx.Response) -> None:
    response.read()
    problems = response_problems(response)
    assert not problems, "\n".join(problems)


__all__ = ["SpecRecorder", "validate_request", "validate_response", "request_problems", "response_problems",
           "spec_dict", "openapi", "component_schema", "spec_dir", "GHL_ERROR_SCHEMA"]
