"""Actions: what an agent asks the gateway to do, parsed and validated.

``ACTIONS`` is the fail-closed action map: an action not listed here is UNMAPPED_ACTION.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


@dataclass(frozen=True)
class ActionSpec:
    name: str
    platform: str
    kind: Literal["email", "crm", "read", "internal"]
    crm_write: bool = False
    high_risk: bool = False

    @property
    def outbound(self) -> bool:
        """Goes through the gateway to an executor (leaves the building)."""
        return self.kind in ("email", "crm") and (self.kind == "email" or self.crm_write)


ACTIONS: dict[str, ActionSpec] = {
    s.name: s
    for s in [
        ActionSpec("send_email", "ghl", "email"),
        ActionSpec("send_campaign_email", "ghl", "email", high_risk=True),
        ActionSpec("crm_upsert_contact", "ghl", "crm", crm_write=True),
        ActionSpec("crm_add_tag", "ghl", "crm", crm_write=True),
        ActionSpec("crm_remove_tag", "ghl", "crm", crm_write=True),
        ActionSpec("crm_delete_contact", "ghl", "crm", crm_write=True, high_risk=True),
        ActionSpec("crm_read_contact", "ghl", "read"),
        ActionSpec("read_linkedin_profile", "linkedin", "read"),
        ActionSpec("search_sales_navigator", "sales_navigator", "read"),
        ActionSpec("enrich_lead", "clay", "read"),
        ActionSpec("score_lead", "internal", "internal"),
        ActionSpec("draft_email", "internal", "internal"),
        ActionSpec("llm_complete", "llm", "internal"),
        ActionSpec("approve_campaign", "ghl", "internal"),
        ActionSpec("reject_campaign", "ghl", "internal"),
    ]
}


class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=1)
    retrieved_at: str
    claim: str | None = None


class _ActionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agent: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)
    idempotency_key: str = Field(min_length=1, max_length=200)
    to: str | None = Field(default=None, max_length=320)
    from_: str | None = Field(default=None, alias="from", max_length=320)
    subject: str | None = Field(default=None, max_length=998)
    html: str | None = Field(default=None, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)
    lead_id: str | int | None = None
    evidence: list[Evidence] | Evidence | None = None
    tier: int | None = Field(default=None, ge=1, le=3)
    timezone: str | None = None
    company: str | None = Field(default=None, max_length=300)
    first_touch: bool | None = None
    approval_id: int | None = Field(default=None, ge=1, le=2_147_483_647)  # a database id
    tags: list[str] | None = None
    fields: dict[str, Any] | None = None

    @field_validator("to", "from_")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v

    @field_validator("lead_id")
    @classmethod
    def _lead_id(cls, v):
        if v is not None and len(str(v)) > 64:
            raise ValueError("at most 64 characters")
        return v


@dataclass(frozen=True)
class Action:
    agent: str
    action: str
    idempotency_key: str
    to: str | None
    from_: str | None
    subject: str | None
    html: str | None
    text: str | None
    lead_id: str | None
    evidence: tuple[dict, ...]
    tier: int | None
    timezone: str | None
    company: str | None
    first_touch: bool | None
    approval_id: int | None
    tags: tuple[str, ...]
    fields: dict | None
    payload_hash: str

    @property
    def spec(self) -> ActionSpec | None:
        return ACTIONS.get(self.action)

    @property
    def recipient_domain(self) -> str | None:
        if self.to and "@" in self.to:
            return self.to.rsplit("@", 1)[1]
        return None

    @property
    def sender_domain(self) -> str | None:
        if self.from_ and "@" in self.from_:
            return self.from_.rsplit("@", 1)[1]
        return None

    def to_record(self) -> dict:
        """The action as submitted (canonical field names), for storage and replay."""
        d = {
            "agent": self.agent,
            "action": self.action,
            "idempotency_key": self.idempotency_key,
            "to": self.to,
            "from": self.from_,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "lead_id": self.lead_id,
            "evidence": list(self.evidence) or None,
            "tier": self.tier,
            "timezone": self.timezone,
            "company": self.company,
            "first_touch": self.first_touch,
            "tags": list(self.tags) or None,
            "fields": self.fields,
        }
        return {k: v for k, v in d.items() if v is not None}


class InvalidAction(ValueError):
    """Why an action was refused. ``problems`` name each bad field; they, ``idempotency_key``, ``agent`` and
    ``action`` are safe to store and print (a NUL character or a lone surrogate in the submitted text is shown
    escaped, never passed on: PostgreSQL cannot store the first, no UTF-8 encoder the second)."""

    def __init__(self, problems: list[str], idempotency_key: str | None = None, raw: Any = None):
        self.problems = [safe_text(p) for p in problems]
        self.idempotency_key = safe_text(idempotency_key) if isinstance(idempotency_key, str) else None

        def field(k: str) -> str | None:
            return safe_text(raw[k])[:64] if isinstance(raw, dict) and isinstance(raw.get(k), str) else None

        self.agent = field("agent")
        self.action = field("action")
        super().__init__("; ".join(self.problems))


def _unstorable_char(text: str) -> str | None:
    """What in ``text`` no database can hold: a NUL character or a lone UTF-16 surrogate."""
    if "\x00" in text:
        return "a NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a lone surrogate (U+{ord(text[e.start]):04X}), which is not valid Unicode text"
    return None


def safe_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as escapes (\\x00, \\ud800): storable, printable."""
    if _unstorable_char(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


# pydantic names the member of a union it tried ("evidence.list[Evidence].0.source", "lead_id.constrained-str"):
# the path shown to a person leaves those out ("evidence.0.source", "lead_id").
_UNION_MEMBER = re.compile(r"^(constrained-)?(str|int|bool|float|dict|list)$|^(list|dict)\[|^Evidence$|^function-")


def _path(parts, union_tags: bool = False) -> str:
    if union_tags:
        parts = [p for p in parts if not (isinstance(p, str) and _UNION_MEMBER.match(p))]
    return ".".join(safe_text(str(p)) for p in parts) or "(action)"


MAX_DEPTH = 20  # nesting of the free-form parts (fields, evidence): deeper is a mistake, and deep JSON is a hazard


def _storage_problems(raw: dict) -> list[str]:
    """Values no database or JSON column can hold, anywhere in the action (keys included), naming each one's
    path: NUL characters and lone surrogates in text, NaN and infinite numbers, nesting deeper than MAX_DEPTH."""
    problems: list[str] = []
    stack: list[tuple[tuple, Any]] = [((k,), v) for k, v in raw.items()]
    for k in raw:
        if isinstance(k, str) and _unstorable_char(k):
            problems.append(f"field '{_path((k,))}': the name contains {_unstorable_char(k)}")
    while stack and len(problems) < 20:
        path, v = stack.pop()
        if isinstance(v, str):
            why = _unstorable_char(v)
            if why:
                problems.append(f"field '{_path(path)}' contains {why}")
        elif isinstance(v, float) and not math.isfinite(v):
            problems.append(f"field '{_path(path)}' = {v}: not a finite number (JSON has no NaN or Infinity)")
        elif isinstance(v, (dict, list)):
            if len(path) > MAX_DEPTH:
                problems.append(f"field '{_path(path[:MAX_DEPTH])}' is nested more than {MAX_DEPTH} levels deep")
                continue
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in items:
                if isinstance(k, str) and _unstorable_char(k):
                    problems.append(f"field '{_path(path + (k,))}': the name contains {_unstorable_char(k)}")
                stack.append((path + (k,), item))
    return sorted(set(problems))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_hash(record: dict) -> str:
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


def parse_action(raw: Any) -> Action:
    """Validate one submitted action; raise InvalidAction naming each bad field."""
    if not isinstance(raw, dict):
        raise InvalidAction([f"an action must be a JSON object, found {type(raw).__name__}"])
    key = raw.get("idempotency_key") if isinstance(raw.get("idempotency_key"), str) else None
    stored = _storage_problems(raw)
    if stored:
        raise InvalidAction(stored, key, raw)
    try:
        m = _ActionModel.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            field = _path(err["loc"], union_tags=True)
            if err["type"] == "missing":
                problems.append(f"field '{field}' is required")
            elif err["type"] == "extra_forbidden":
                problems.append(f"field '{field}' is not a known action field")
            else:
                problems.append(f"field '{field}': {err['msg'].removeprefix('Value error, ')}")
        raise InvalidAction(problems, key, raw) from None
    problems = []
    spec = ACTIONS.get(m.action)
    if spec is not None and spec.kind == "email":
        for name, value in (("to", m.to), ("from", m.from_), ("subject", m.subject)):
            if not value:
                problems.append(f"field '{name}' is required for {m.action}")
        if not (m.html or m.text):
            problems.append(f"one of fields 'html' or 'text' is required for {m.action}")
    if spec is not None and spec.kind == "crm" and not m.to:
        problems.append(f"field 'to' (the contact's email) is required for {m.action}")
    if m.action in ("crm_add_tag", "crm_remove_tag") and not m.tags:
        problems.append(f"field 'tags' is required for {m.action}")
    if m.timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(m.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
            problems.append(f"field 'timezone': {m.timezone[:60]!r} is not an IANA time zone name")
    if problems:
        raise InvalidAction(problems, m.idempotency_key, raw)
    ev = m.evidence
    evidence = tuple(e.model_dump(exclude_none=True) for e in (ev if isinstance(ev, list) else [ev] if ev else []))
    draft = Action(
        agent=m.agent,
        action=m.action,
        idempotency_key=m.idempotency_key,
        to=m.to,
        from_=m.from_,
        subject=m.subject,
        html=m.html,
        text=m.text,
        lead_id=str(m.lead_id) if m.lead_id is not None else None,
        evidence=evidence,
        tier=m.tier,
        timezone=m.timezone,
        company=m.company,
        first_touch=m.first_touch,
        approval_id=m.approval_id,
        tags=tuple(m.tags or ()),
        fields=m.fields,
        payload_hash="",
    )
    return replace(draft, payload_hash=payload_hash(draft.to_record()))
