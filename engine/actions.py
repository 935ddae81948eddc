"""Actions: what an agent asks the gateway to do, parsed and validated.

``ACTIONS`` is the fail-closed action map: an action not listed here is UNMAPPED_ACTION.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
    approval_id: int | None = None
    tags: list[str] | None = None
    fields: dict[str, Any] | None = None

    @field_validator("to", "from_")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v


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
    def __init__(self, problems: list[str], idempotency_key: str | None = None):
        self.problems = problems
        self.idempotency_key = idempotency_key
        super().__init__("; ".join(problems))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_hash(record: dict) -> str:
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


def parse_action(raw: Any) -> Action:
    """Validate one submitted action; raise InvalidAction naming each bad field."""
    if not isinstance(raw, dict):
        raise InvalidAction([f"an action must be a JSON object, found {type(raw).__name__}"])
    key = raw.get("idempotency_key") if isinstance(raw.get("idempotency_key"), str) else None
    try:
        m = _ActionModel.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "(action)"
            if err["type"] == "missing":
                problems.append(f"field '{field}' is required")
            elif err["type"] == "extra_forbidden":
                problems.append(f"field '{field}' is not a known action field")
            else:
                problems.append(f"field '{field}': {err['msg'].removeprefix('Value error, ')}")
        raise InvalidAction(problems, key) from None
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
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"field 'timezone': '{m.timezone}' is not an IANA time zone name")
    if problems:
        raise InvalidAction(problems, m.idempotency_key)
    ev = m.evidence
    evidence = tuple(e.model_dump(exclude_none=True) for e in (ev if isinstance(ev, list) else [ev] if ev else []))
    record_fields = dict(
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
    )
    draft = Action(**record_fields, payload_hash="")
    return Action(**record_fields, payload_hash=payload_hash(draft.to_record()))
