"""Tables. The schema itself is owned by Alembic migrations (engine/adapters/migrations); `alpha init` applies them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional, Protocol

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel

from engine.core.clock import UTC

GENESIS_HASH = "0" * 64


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (naive UTC on SQLite, timestamptz on PostgreSQL)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def ts(**kw) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


def js(default=None) -> Any:
    return Field(default=default, sa_column=Column(JSON, nullable=True))


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core ``Table`` of a table model, for bulk Core statements. SQLAlchemy's declarative mapping sets
    ``__table__`` on the class when it is created, but SQLModel does not declare it, so a type checker cannot see
    it: this is the one place that says so."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]  # set at class creation, not declared
    return table


class _Stored(Protocol):
    id: Optional[int]


def stored_id(row: _Stored) -> int:
    """The primary key of a row read from the database (or flushed to it). Table models declare ``id`` Optional
    because it is None until the row is first stored; reaching here without one is a bug, said plainly."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id: it has not been stored yet")
    return row.id


class ControlState(SQLModel, table=True):
    __tablename__ = "control_state"

    id: int = Field(default=1, primary_key=True)
    kill_switch: bool = False
    kill_reason: Optional[str] = None
    kill_actor: Optional[str] = None
    kill_changed_at: Optional[datetime] = ts()
    maintenance: bool = False
    maintenance_reason: Optional[str] = None
    maintenance_actor: Optional[str] = None
    maintenance_changed_at: Optional[datetime] = ts()
    phase: str = "shadow"
    phase_reason: Optional[str] = None
    phase_actor: Optional[str] = None
    phase_changed_at: Optional[datetime] = ts()
    phase_seeded: bool = False
    warmup_phase: int = 1
    warmup_phase_started_at: Optional[datetime] = ts()
    address_rules_fp: Optional[str] = Field(default=None, max_length=64)  # the rules the address keys were made by


class AuditHead(SQLModel, table=True):
    """The chain's head; locking this row serializes every writer (the gate lock on PostgreSQL)."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    last_seq: int = 0
    last_hash: str = GENESIS_HASH


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained. Times are fixed-width ISO text so the hash never depends on a driver."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: str = Field(index=True, max_length=32)
    actor: str = Field(index=True, max_length=200)
    agent: Optional[str] = Field(default=None, index=True, max_length=64)
    event: str = Field(index=True, max_length=64)
    action: Optional[str] = Field(default=None, max_length=64)
    status: Optional[str] = Field(default=None, index=True, max_length=32)
    ref: Optional[str] = Field(default=None, index=True, max_length=200)
    outbox_id: Optional[int] = Field(default=None, index=True)
    reasons: str = Field(default="[]", sa_type=sa.Text)
    data: str = Field(default="{}", sa_type=sa.Text)
    prev_hash: str = Field(max_length=64)
    row_hash: str = Field(max_length=64)


class OutboxItem(SQLModel, table=True):
    """Every outbound action the gateway decided on, with its full decision. Nothing is lost."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_status_reserved", "status", "reserved_at"),
        sa.Index("ix_outbox_domain_reserved", "to_domain", "reserved_at"),
        sa.Index("ix_outbox_from_reserved", "from_email", "reserved_at"),
        sa.Index("ix_outbox_to_status", "to_email", "status"),
        sa.Index("ix_outbox_status_not_before", "status", "not_before"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    payload_hash: str = Field(max_length=64)
    agent: str = Field(max_length=64)
    action: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    to_email: Optional[str] = Field(default=None, max_length=320)
    to_domain: Optional[str] = Field(default=None, max_length=255)   # canonical (IDNA ASCII, lower case)
    to_key: Optional[str] = Field(default=None, max_length=320, index=True)
    # canonical recipient (engine/core/identity)
    from_email: Optional[str] = Field(default=None, max_length=320)
    subject: Optional[str] = Field(default=None, sa_type=sa.Text)
    html: Optional[str] = Field(default=None, sa_type=sa.Text)
    text: Optional[str] = Field(default=None, sa_type=sa.Text)
    lead_id: Optional[str] = Field(default=None, max_length=64, index=True)
    tier: Optional[int] = None
    record: Optional[dict] = js()
    headers: Optional[dict] = js()
    status: str = Field(max_length=32, index=True)
    reasons: Optional[list] = js()
    decision: Optional[dict] = js()
    not_before: Optional[datetime] = ts()
    created_at: Optional[datetime] = ts()
    updated_at: Optional[datetime] = ts()
    reserved_at: Optional[datetime] = ts()
    sent_at: Optional[datetime] = ts()
    provider: Optional[str] = Field(default=None, max_length=32)
    provider_message_id: Optional[str] = Field(default=None, max_length=200)
    attempts: int = 0
    last_error: Optional[str] = Field(default=None, sa_type=sa.Text)
    approval_id: Optional[int] = None
    claimed_by: Optional[str] = Field(default=None, max_length=64)   # the worker holding it (a lease)
    claimed_until: Optional[datetime] = ts()


class Approval(SQLModel, table=True):
    __tablename__ = "approval"

    id: Optional[int] = Field(default=None, primary_key=True)
    # send: a gated outbound action waiting for a person (outbox_id set); approving it queues the execution.
    # hot_lead: a reply or an ICP-fit visit to act on within the SLA (lead_id set, no outbox row); approving
    # it means "I take it", rejecting means "dismissed" (reason required).
    kind: str = Field(default="send", max_length=16, index=True)
    outbox_id: Optional[int] = Field(default=None, foreign_key="outbox.id", index=True)
    lead_id: Optional[int] = Field(default=None, foreign_key="lead.id", index=True)
    summary: Optional[str] = Field(default=None, sa_type=sa.Text)  # hot_lead: what happened, for the queue
    status: str = Field(default="pending", max_length=16, index=True)  # pending|approved|rejected|expired
    risk: str = Field(default="normal", max_length=16)
    requested_by: str = Field(max_length=64)
    requested_at: Optional[datetime] = ts()
    decided_by: Optional[str] = Field(default=None, max_length=200)
    decided_at: Optional[datetime] = ts()
    reason: Optional[str] = Field(default=None, sa_type=sa.Text)
    action_type: Optional[str] = Field(default=None, max_length=32, index=True)  # the roster's key
    sla_due_at: Optional[datetime] = ts()
    expires_at: Optional[datetime] = ts()
    escalated_at: Optional[datetime] = ts()
    escalated_to: Optional[str] = Field(default=None, max_length=200)
    edited_by: Optional[str] = Field(default=None, max_length=200)
    edited_at: Optional[datetime] = ts()


class Suppression(SQLModel, table=True):
    __tablename__ = "suppression"

    email: str = Field(primary_key=True, max_length=320)
    reason: str = Field(max_length=32)  # unsubscribed|bounced|complained|dnd|manual
    address_key: Optional[str] = Field(default=None, max_length=320, index=True)  # canonical (engine/core/identity)
    source: Optional[str] = Field(default=None, max_length=200)
    detail: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: Optional[datetime] = ts()


class DomainHealth(SQLModel, table=True):
    __tablename__ = "domain_health"

    domain: str = Field(primary_key=True, max_length=255)
    score: float = 100.0
    cooling: bool = False
    reason: Optional[str] = Field(default=None, sa_type=sa.Text)
    updated_at: Optional[datetime] = ts()


class BreakerState(SQLModel, table=True):
    __tablename__ = "breaker"

    name: str = Field(primary_key=True, max_length=32)
    state: str = Field(default="CLOSED", max_length=16)
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    opened_at: Optional[datetime] = ts()
    retry_at: Optional[datetime] = ts()
    trial_started_at: Optional[datetime] = ts()
    last_error: Optional[str] = Field(default=None, sa_type=sa.Text)
    last_failure_at: Optional[datetime] = ts()
    last_success_at: Optional[datetime] = ts()
    forced: bool = False
    updated_at: Optional[datetime] = ts()


class AgentActivity(SQLModel, table=True):
    __tablename__ = "agent_activity"
    __table_args__ = (sa.Index("ix_agent_activity_agent_at", "agent", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    agent: str = Field(max_length=64)
    action: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)


class SandboxMessage(SQLModel, table=True):
    """What the sandbox executor "sent": recorded locally, never delivered."""

    __tablename__ = "sandbox_message"

    id: Optional[int] = Field(default=None, primary_key=True)
    outbox_id: Optional[int] = Field(default=None, index=True)
    action: str = Field(max_length=64)
    to_email: Optional[str] = Field(default=None, max_length=320)
    from_email: Optional[str] = Field(default=None, max_length=320)
    subject: Optional[str] = Field(default=None, sa_type=sa.Text)
    html: Optional[str] = Field(default=None, sa_type=sa.Text)
    text: Optional[str] = Field(default=None, sa_type=sa.Text)
    headers: Optional[dict] = js()
    payload: Optional[dict] = js()
    created_at: Optional[datetime] = ts()


class Lead(SQLModel, table=True):
    """A prospect. The pipeline (import, scoring, routing) fills most fields; webhooks update status."""

    __tablename__ = "lead"

    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, sa_column_kwargs={"unique": True})
    email_key: Optional[str] = Field(default=None, max_length=320, index=True)  # canonical (engine/core/identity)
    first_name: Optional[str] = Field(default=None, max_length=200)
    last_name: Optional[str] = Field(default=None, max_length=200)
    title: Optional[str] = Field(default=None, max_length=300)
    company: Optional[str] = Field(default=None, max_length=300)
    company_domain: Optional[str] = Field(default=None, max_length=255, index=True)
    employee_count: Optional[int] = None
    industry: Optional[str] = Field(default=None, max_length=200)
    country: Optional[str] = Field(default=None, max_length=100)
    timezone: Optional[str] = Field(default=None, max_length=64)
    linkedin_url: Optional[str] = Field(default=None, max_length=500)
    source: Optional[str] = Field(default=None, max_length=100)
    tier: Optional[int] = None
    status: str = Field(default="new", max_length=32, index=True)  # new|cold|warm|hot|replied|unsubscribed|bounced
    sequence: Optional[str] = Field(default=None, max_length=16)    # cold|warm|ghost
    sequence_step: int = 0
    sequence_stopped_at: Optional[datetime] = ts()
    stop_reason: Optional[str] = Field(default=None, max_length=200)
    ghl_contact_id: Optional[str] = Field(default=None, max_length=64, index=True)
    last_engaged_at: Optional[datetime] = ts()
    region: Optional[str] = Field(default=None, max_length=100)
    last_open_at: Optional[datetime] = ts()
    last_click_at: Optional[datetime] = ts()
    last_reply_at: Optional[datetime] = ts()
    last_visit_at: Optional[datetime] = ts()
    website_visits: int = 0
    reply_class: Optional[str] = Field(default=None, max_length=32)  # the last reply's class (engine/rules/replies)
    paused_until: Optional[datetime] = ts()  # out of office: no step goes out before the return date
    score: Optional[int] = None
    icp: Optional[dict] = js()               # per-criterion breakdown and one-line explanation
    disqualified_reason: Optional[str] = Field(default=None, max_length=300)
    route: Optional[str] = Field(default=None, max_length=16)  # cold|warm|ghost (the router's decision)
    created_at: Optional[datetime] = ts()
    updated_at: Optional[datetime] = ts()
    data: Optional[dict] = js()


class WebhookEvent(SQLModel, table=True):
    """Every webhook accepted once (replays are recognised by id)."""

    __tablename__ = "webhook_event"

    id: str = Field(primary_key=True, max_length=300)  # "<source>:<webhook id>"
    source: str = Field(max_length=32)
    event_type: str = Field(max_length=64, index=True)
    received_at: Optional[datetime] = ts()
    outcome: str = Field(default="processed", max_length=200)
    payload: Optional[dict] = js()


class LLMCache(SQLModel, table=True):
    __tablename__ = "llm_cache"

    key: str = Field(primary_key=True, max_length=64)  # sha256 of (provider, model, prompt, params)
    provider: str = Field(max_length=32)
    model: str = Field(max_length=100)
    response: str = Field(sa_type=sa.Text)
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: Optional[datetime] = ts()


class LLMUsage(SQLModel, table=True):
    __tablename__ = "llm_usage"

    id: Optional[int] = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    model: str = Field(max_length=100)
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    latency_ms: int = 0
    at: Optional[datetime] = ts()


class AlertLog(SQLModel, table=True):
    __tablename__ = "alert_log"

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64, index=True)
    text: str = Field(sa_type=sa.Text)
    status: str = Field(max_length=16)  # sent|failed|not_configured
    error: Optional[str] = Field(default=None, sa_type=sa.Text)
    payload: Optional[dict] = js()
    at: Optional[datetime] = ts()


class VerifyRun(SQLModel, table=True):
    __tablename__ = "verify_run"

    id: Optional[int] = Field(default=None, primary_key=True)
    at: Optional[datetime] = ts()
    ok: bool = False
    results: Optional[list] = js()


class Draft(SQLModel, table=True):
    """One drafted email for a lead and sequence step, with where every part came from."""

    __tablename__ = "draft"
    __table_args__ = (sa.UniqueConstraint("lead_id", "sequence", "step", name="uq_draft_lead_step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    sequence: str = Field(max_length=16)
    step: int = 0
    template_id: str = Field(max_length=100)
    template_version: str = Field(max_length=32)
    subject: str = Field(sa_type=sa.Text)
    html: str = Field(sa_type=sa.Text)
    text: Optional[str] = Field(default=None, sa_type=sa.Text)
    provider: str = Field(default="template", max_length=32)
    provenance: Optional[dict] = js()        # lead facts used, template, LLM provider/model
    flags: Optional[list] = js()             # unsupported claims and content findings
    status: str = Field(default="draft", max_length=16, index=True)  # draft|approved|queued|sent|rejected
    created_at: Optional[datetime] = ts()


class ShadowRun(SQLModel, table=True):
    __tablename__ = "shadow_run"

    id: Optional[int] = Field(default=None, primary_key=True)
    started_at: Optional[datetime] = ts()
    finished_at: Optional[datetime] = ts()
    contacts: int = 0
    summary: Optional[dict] = js()


class Envelope(SQLModel, table=True):
    """The typed context one pipeline stage handed the next, stored with the lead for audit."""

    __tablename__ = "envelope"

    id: Optional[int] = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    stage: str = Field(max_length=32)
    envelope: Optional[dict] = js()
    created_at: Optional[datetime] = ts()


class CheckRun(SQLModel, table=True):
    """Results of canary and unsubscribe tests (evidence for the readiness score)."""

    __tablename__ = "check_run"

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # canary|unsubscribe_test
    at: Optional[datetime] = ts()
    ok: bool = False
    results: Optional[list] = js()


class ReviewItem(SQLModel, table=True):
    """One lead in a blind AI-vs-human review set. ``ai_label`` never leaves the engine's analysis."""

    __tablename__ = "review_item"
    __table_args__ = (sa.UniqueConstraint("set_id", "lead_id", name="uq_review_set_lead"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    set_id: int = Field(index=True)
    position: int = 0
    lead_id: int = Field(foreign_key="lead.id")
    ai_label: str = Field(max_length=16)            # "1" | "2" | "3" | "disqualified"
    human_label: Optional[str] = Field(default=None, max_length=16)
    note: Optional[str] = Field(default=None, sa_type=sa.Text)
    labeled_by: Optional[str] = Field(default=None, max_length=200)
    labeled_at: Optional[datetime] = ts()
    created_at: Optional[datetime] = ts()


class Reply(SQLModel, table=True):
    """One inbound reply, classified (engine/rules/replies.py): what it means for the lead's sequence."""

    __tablename__ = "reply"

    id: Optional[int] = Field(default=None, primary_key=True)
    lead_id: Optional[int] = Field(default=None, foreign_key="lead.id", index=True)
    email: Optional[str] = Field(default=None, max_length=320)
    received_at: Optional[datetime] = ts()
    label: str = Field(max_length=32, index=True)
    confidence: float = 0.0
    return_date: Optional[datetime] = ts()
    referral: Optional[str] = Field(default=None, max_length=320)
    subject: Optional[str] = Field(default=None, sa_type=sa.Text)
    excerpt: Optional[str] = Field(default=None, sa_type=sa.Text)
    source: Optional[str] = Field(default=None, max_length=300)  # the webhook event id
    second_opinion: Optional[str] = Field(default=None, max_length=32)  # the LLM's class, when asked
    cancelled: int = 0  # queued steps of the lead this reply cancelled or paused



class ConsoleSession(SQLModel, table=True):
    """A console login, kept on the server: the browser holds only a random token whose SHA-256 is stored here.
    Revoked on logout, on a password change (``password_stamp`` no longer matches) or when the user is removed."""

    __tablename__ = "console_session"

    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    username: str = Field(max_length=64, index=True)
    password_stamp: str = Field(max_length=64)  # a fingerprint of the user's password hash at login
    created_at: Optional[datetime] = ts()
    last_seen_at: Optional[datetime] = ts()
    expires_at: Optional[datetime] = ts()
    revoked_at: Optional[datetime] = ts()
    revoked_reason: Optional[str] = Field(default=None, max_length=64)
    client: Optional[str] = Field(default=None, max_length=200)


class LoginAttempt(SQLModel, table=True):
    """Failed console logins per key (``user:<name>`` for any name typed, known or not): a growing lockout."""

    __tablename__ = "login_attempt"

    key: str = Field(max_length=200, primary_key=True)
    failures: int = 0
    first_failed_at: Optional[datetime] = ts()
    last_failed_at: Optional[datetime] = ts()
    locked_until: Optional[datetime] = ts()


class Heartbeat(SQLModel, table=True):
    """The last sign of life of each running component (worker, webhook receiver, scheduler, console)."""

    __tablename__ = "heartbeat"

    component: str = Field(max_length=64, primary_key=True)
    instance: str = Field(max_length=200, primary_key=True)  # host:pid
    started_at: Optional[datetime] = ts()
    beat_at: Optional[datetime] = ts()
    info: Optional[dict] = js()


@sa.event.listens_for(Lead, "before_insert")
@sa.event.listens_for(Lead, "before_update")
def _lead_key(_mapper, _conn, lead: Lead) -> None:
    """Every lead written through the ORM carries its canonical address (bulk inserts set it themselves)."""
    from engine.core.identity import canonical_address

    key = canonical_address(lead.email)[:320] or None
    if lead.email_key != key:
        lead.email_key = key


@sa.event.listens_for(Suppression, "before_insert")
@sa.event.listens_for(Suppression, "before_update")
def _suppression_key(_mapper, _conn, row: Suppression) -> None:
    """A suppression matches every spelling of its address (engine/core/identity): the key is set on every write."""
    from engine.core.identity import canonical_address

    row.address_key = canonical_address(row.email)[:320] or None
