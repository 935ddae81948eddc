"""The engine's services wired together: what the CLI, the console and workers use."""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlmodel import col, func, select

from engine.adapters import audit
from engine.core import identity
from engine.adapters.breakers import Breakers
from engine.core.clock import Clock, iso, system_clock
from engine.core.config import EXTERNAL_APIS, Settings, database_url, load_settings
from engine.core.envfile import data_dir, load_env_file
from engine.services.approvals import ApprovalService
from engine.services.control import ControlPlane, EnvKillSwitch, kill_state, live_sending_allowed
from engine.adapters.db import Store
from engine.core.envcheck import require_valid_env
from engine.core.errors import InvalidRequest
from engine.adapters.executors import Executor, SandboxExecutor
from engine.services.gateway import Gateway
from engine.rules.guardrails.domain_health import next_cooling
from engine.adapters.models import AuditHead, BreakerState, ControlState, DomainHealth, OutboxItem, Suppression
from engine.queries.outbox import is_in_doubt, reconciliation_items, status_counts, usage_summary
from engine.services.permissions import Permissions
from engine.services.readiness import PHASE_GATES, evidence
from engine.services.events import EventService
from engine.services.suppressions import SUPPRESSION_REASONS, checked_request
from engine.adapters.keyfile import load_secret, require_shared_secret

__all__ = ["App", "AlertDispatcher", "SUPPRESSION_REASONS", "data_dir", "default_executors", "load_env_file"]


def default_executors(app: "App") -> dict[str, Executor]:
    """GHL when GHL_API_KEY and GHL_LOCATION_ID are set (pointing GHL_BASE_URL at `alpha sandbox ghl` keeps it
    in SANDBOX); otherwise the sandbox executor, which records every message locally."""
    if os.environ.get("GHL_API_KEY") and os.environ.get("GHL_LOCATION_ID"):
        from engine.adapters.ghl import GHLClient
        from engine.adapters.ghl_executor import GHLExecutor, suppress_on_dnd

        ex: Executor = GHLExecutor(GHLClient.from_env(), on_dnd=suppress_on_dnd(app))
    else:
        ex = SandboxExecutor(app.store, app.clock)
    return {"email": ex, "crm": ex}


class AlertDispatcher:
    """Delivers alerts on one background thread so a slow Slack never blocks a send; flushed at exit."""

    def __init__(self, alerter_factory: Callable[[], Any]):
        self._factory = alerter_factory
        self._q: "queue.Queue[dict | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, alert: dict) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._q.put(alert)

    def _run(self) -> None:
        while True:
            a = self._q.get()
            try:
                if a is not None:
                    self._factory().alert(a.get("kind", "alert"), a.get("title", ""), a.get("text", ""),
                                          a.get("fields"), a.get("url"))
            except Exception:  # noqa: BLE001 - never let an alert break anything
                logging.getLogger("alpha.alerts").exception("alert delivery failed")
            finally:
                self._q.task_done()

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)


class App:
    """The composition root: every service is built here, through its constructor, from the settings, the store
    and the clock. Lower layers never import this class; they take what they use of it as a parameter (typed by a
    Protocol of their own where they need it)."""

    settings: Settings
    store: Store
    clock: Clock
    env_kill: EnvKillSwitch
    alerts: AlertDispatcher
    breakers: Breakers
    control: ControlPlane
    permissions: Permissions
    secret: bytes
    executors: dict[str, Executor]
    approvals: ApprovalService
    gateway: Gateway

    def __init__(self, settings: Settings | None = None, store: Store | None = None, clock: Clock | None = None,
                 executors: dict[str, Executor] | None = None, env_file: str | Path | None = None, *,
                 secret: bytes | None = None, icp=None, quiet: bool = False):
        """``secret``: the unsubscribe secret (default: ALPHA_UNSUBSCRIBE_SECRET or the generated key file);
        ``icp``: the ideal customer profile (default: config/icp.json, loaded on first use); ``quiet``: control
        changes and breaker transitions raise no alerts (a scratch engine's planted drills are not news)."""
        load_env_file(env_file)
        # every bad environment variable listed (EnvError, exit code 2) before anything runs
        require_valid_env(env_file=env_file or os.environ.get("ALPHA_ENV_FILE") or Path.cwd() / ".env")
        self.settings = settings or load_settings()
        identity.use_rules(identity.Rules.from_settings(self.settings))
        self.store = store or Store(database_url())
        self.clock = clock or system_clock
        self.env_kill = EnvKillSwitch(env_file)
        self._alerter = None
        self._llm = None
        self._icp = icp
        self.alerts = AlertDispatcher(lambda: self.alerter)
        self.breakers = Breakers(self.store, self.settings, self.clock,
                                 on_transition=None if quiet else self._breaker_alert)
        self.control = ControlPlane(self.store, self.settings, self.clock, self.env_kill,
                                    on_change=None if quiet else self.alert_dict,
                                    gates=PHASE_GATES, evidence=lambda: evidence(self))
        self.permissions = Permissions(self.store, self.settings, self.clock)
        self.secret = load_secret(data_dir()) if secret is None else secret
        self.executors = default_executors(self) if executors is None else executors
        self.approvals = ApprovalService(self)
        self.gateway = Gateway(self.store, self.settings, self.clock, self.executors, self.env_kill,
                               self.permissions, self.breakers, self.secret, approval_fields=self.approvals.new_fields)

    def scratch(self, store: Store, clock: Clock, executors: dict[str, Executor]) -> App:
        """A quiet second engine with this one's settings, unsubscribe secret and ICP on another store, clock and
        executors: for drills (engine/services/canary.py) that must never touch this engine's state."""
        return App(settings=self.settings, store=store, clock=clock, executors=executors, secret=self.secret,
                   icp=self.icp, quiet=True)

    # ------------------------------------------------------------------------------------ integrations

    @property
    def alerter(self):
        """Slack alerts (SLACK_WEBHOOK_URL); without it alerts are recorded as not_configured."""
        if self._alerter is None:
            from engine.adapters.slack import SlackAlerter

            self._alerter = SlackAlerter.from_env(self.store, self.clock, self.breakers)
        return self._alerter

    @property
    def llm(self):
        """The LLM chain: Anthropic -> OpenAI -> the offline template renderer."""
        if self._llm is None:
            from engine.adapters.llm import LLMChain

            self._llm = LLMChain.from_env(self.store, self.clock, self.breakers)
        return self._llm

    @property
    def icp(self):
        """The ideal customer profile (config/icp.json), validated on first use."""
        if self._icp is None:
            from engine.rules.icp import load_icp

            self._icp = load_icp(self.settings.config_dir)
        return self._icp

    def score(self, lead):
        """ICP score, tier and one-line explanation for a lead (or any object with its fields)."""
        from engine.rules.icp import score_lead

        return score_lead(lead, self.icp, self.settings.customer_exclusions, self.settings.competitor_exclusions)

    def check_ready(self) -> None:
        """Refuse unless the database is reachable (DatabaseUnreachable) and at the current schema
        (DatabaseNotReady), and, on a multi-host database, ALPHA_UNSUBSCRIBE_SECRET is set (EnvError). For
        long-running processes: the console, the worker, the webhook receiver."""
        self.store.check_ready()
        self.require_shared_secret()

    def require_shared_secret(self, what: str = "this process") -> None:
        """EnvError unless the unsubscribe secret is shared: set explicitly, or the database is SQLite (one host)."""
        require_shared_secret(self.store.dialect, what)

    def import_leads(self, path, progress=None, parse_progress=None, workers=None, encoding: str | None = None) -> dict:
        """Upsert the leads of a CSV file (engine.adapters.leads_csv.import_leads on this engine's store and clock),
        storing
        the new and changed leads scored against the ICP. ``encoding`` names the file's encoding when detection
        refuses it."""
        from engine.adapters.leads_csv import import_leads

        return import_leads(self.store, path, self.clock, progress=progress, parse_progress=parse_progress,
                            scorer=self.scorer(), workers=workers, encoding=encoding)

    def scorer(self):
        """A picklable function of a lead (or a row) to its stored ICP fields (score, tier, icp,
        disqualified_reason), for work shared with other processes."""
        from functools import partial

        from engine.rules.icp import scored_fields

        return partial(scored_fields, icp=self.icp, customers=self.settings.customer_exclusions,
                       competitors=self.settings.competitor_exclusions)

    def rescore(self, lead):
        """Score a lead and record the result on it (score, tier, explanation, disqualification); returns it."""
        from engine.rules.icp import fit_fields

        fit = self.score(lead)
        for k, v in fit_fields(fit).items():
            setattr(lead, k, v)
        return fit

    def alert_dict(self, alert: dict) -> None:
        """Queue an alert ({kind, title, text, fields?}); delivered off the caller's path, never raises."""
        self.alerts.put(alert)

    def _breaker_alert(self, name: str, before: str, after: str, detail: str | None) -> None:
        kind = "breaker_opened" if after == "OPEN" else "breaker_closed" if after == "CLOSED" else None
        if kind:
            self.alert_dict({"kind": kind, "title": f"Circuit breaker {name}: {before} -> {after}",
                             "text": detail or "", "fields": {"breaker": name}})

    def executor_mode(self) -> dict:
        """Where THIS process's sends go, from its own environment: {"mode": LIVE or SANDBOX, "executor", "ghl_url"
        (without credentials; None for the sandbox executor), "label"}. The worker puts it into its heartbeat, so
        the console and `alpha status` show what the running workers send through (engine.queries.health
        .sending_mode), not what the console's own environment would."""
        ex = self.executors["email"]
        if not ex.live:
            return {"mode": "SANDBOX", "executor": ex.name, "ghl_url": None,
                    "label": "SANDBOX (the local sandbox executor: no GHL credentials)"}
        from urllib.parse import urlsplit

        from engine.services.verify import is_sandbox_url

        base = str(getattr(getattr(ex, "client", None), "base_url", "") or "")
        parts = urlsplit(base)  # shown and compared without user:password@, query or fragment
        shown = (f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" if parts.netloc
                 else base).rstrip("/") or None
        if base and is_sandbox_url(base):
            return {"mode": "SANDBOX", "executor": ex.name, "ghl_url": shown,
                    "label": f"SANDBOX (the local GHL sandbox at {shown})"}
        return {"mode": "LIVE", "executor": ex.name, "ghl_url": shown,
                "label": f"LIVE ({ex.name}" + (f" at {shown})" if shown else ")")}

    @property
    def mode(self) -> str:
        """LIVE or SANDBOX as THIS process is configured (executor_mode); status()["mode"] is what the running
        workers send through."""
        return self.executor_mode()["mode"]

    # ------------------------------------------------------------------------------------ setup

    def init(self, actor: str = "alpha init") -> dict:
        before, after = self.store.upgrade()
        seeded = self.control.seed_phase_from_config(actor)
        rekeyed = self.rekey_addresses()
        now = self.clock()
        with self.store.write() as s:
            for name in EXTERNAL_APIS:
                if s.get(BreakerState, name) is None:
                    s.add(BreakerState(name=name, updated_at=now))
        return {"database": self.store.display_url, "schema_before": before, "schema": after,
                "phase_seeded": seeded, "addresses_rekeyed": rekeyed}

    def rekey_addresses(self, full: bool = False) -> int:
        """Recompute the canonical address keys (outbox, suppressions, leads) under the configured address rules
        where they differ. Every row is walked only when the rules changed since the keys were made (their
        fingerprint is kept in control_state) or ``full``; otherwise only rows without a key get one, so a
        restart costs one indexed query per table. Returns how many rows changed."""
        import sqlalchemy as sa

        from engine.adapters.models import Lead, table_of

        fp = identity.rules_fingerprint()
        changed = 0
        with self.store.write() as s:
            ctl = s.get(ControlState, 1)
            walk_all = full or ctl is None or ctl.address_rules_fp != fp
            conn = s.connection()
            for table, pk, col, key in ((table_of(OutboxItem), "id", "to_email", "to_key"),
                                        (table_of(Suppression), "email", "email", "address_key"),
                                        (table_of(Lead), "id", "email", "email_key")):
                q = sa.select(table.c[pk], table.c[col], table.c[key]).where(table.c[col].is_not(None))
                if not walk_all:
                    q = q.where(table.c[key].is_(None))
                for ident, addr, old in conn.execute(q).all():
                    new = identity.canonical_address(addr)[:320] or None
                    if new != old:
                        conn.execute(table.update().where(table.c[pk] == ident).values({key: new}))
                        changed += 1
            if ctl is not None and ctl.address_rules_fp != fp:
                ctl.address_rules_fp = fp
                s.add(ctl)
        return changed

    # ------------------------------------------------------------------------------------ lists

    def suppress(self, email: str, reason: str, actor: str, source: str = "manual", detail: str = "") -> bool:
        """A person's suppression (console, CLI): the address suppressed (engine/services/suppressions.py) and,
        as on every other opt-out path, the lead's queued steps, their approvals and a hot-lead escalation cancelled
        at once, its sequence stopped (EventService.suppress_by_person)."""
        added, _ = EventService(self).suppress_by_person(checked_request(email, reason), reason, actor, source, detail)
        return added

    def unsuppress(self, email: str, reason: str, actor: str) -> bool:
        email = identity.normalise_address(email)
        if not reason.strip():
            raise InvalidRequest("a reason is required (--reason)")
        now = self.clock()
        with self.store.write() as s:
            row = s.get(Suppression, email)
            if row is None:
                return False
            before = {"reason": row.reason, "source": row.source}
            s.delete(row)
            audit.append(s, event="suppression.remove", actor=actor, now=now, ref=email, status="removed",
                         data={"reason": reason, "before": before})
            return True

    def suppressions(self, limit: int = 100) -> list[Suppression]:
        with self.store.read() as s:
            return list(s.exec(select(Suppression).order_by(col(Suppression.created_at).desc()).limit(limit)).all())

    def set_domain_health(self, domain: str, score: float, reason: str, actor: str) -> DomainHealth:
        if not 0 <= score <= 100:
            raise InvalidRequest(f"score must be between 0 and 100, not {score}")
        domain = domain.strip().lower()
        now = self.clock()
        cfg = self.settings.production.domain_health
        with self.store.write() as s:
            row = s.get(DomainHealth, domain) or DomainHealth(domain=domain)
            before = {"score": row.score, "cooling": row.cooling}
            row.score, row.reason, row.updated_at = score, reason, now
            row.cooling = next_cooling(score, row.cooling, cfg)
            s.add(row)
            audit.append(s, event="domain.health", actor=actor, now=now, ref=domain,
                         status="cooling" if row.cooling else "healthy",
                         data={"reason": reason, "before": before, "after": {"score": score, "cooling": row.cooling}})
            return row

    def domains(self) -> list[DomainHealth]:
        with self.store.read() as s:
            return list(s.exec(select(DomainHealth).order_by(DomainHealth.domain)).all())

    # ------------------------------------------------------------------------------------ status

    def usage(self, now: datetime | None = None) -> dict:
        now = now or self.clock()
        with self.store.read() as s:  # counted as the limits count (engine/queries/outbox.py)
            return usage_summary(s, self.settings, now, self.control.state(s).warmup_phase)

    def status(self) -> dict:
        from engine.queries.health import component_health, sending_mode

        now = self.clock()
        cfg_phase = self.settings.production.rollout_phase.current
        with self.store.read() as s:
            ctl = self.control.state(s)
            kill = kill_state(ctl, self.env_kill)
            breakers = {r.name: r for r in s.exec(select(BreakerState)).all()}
            counts = status_counts(s)
            recon = len(reconciliation_items(s, self.settings, now))
            head = s.get(AuditHead, 1)
            violations = s.exec(select(func.count()).select_from(audit.AuditEntry).where(
                audit.AuditEntry.event == "permission.violation")).one()
        executor = self.executors["email"]
        live = live_sending_allowed(ctl.phase, self.settings)
        components = component_health(self, now)
        # what the running workers send through (their heartbeats), not this process's environment
        sending = sending_mode(self.executor_mode(), components.get("worker") or {})
        return {
            "phase": ctl.phase,
            "phase_changed_at": iso(ctl.phase_changed_at),
            "phase_changed_by": ctl.phase_actor,
            "config_phase": cfg_phase,
            "config_phase_matches": cfg_phase == ctl.phase,
            "live_sending": live and sending["live"] and not kill.on,
            "mode": sending["mode"],
            "mode_here": sending["configured"]["mode"],
            "sending": sending,
            "executor": executor.name,
            "kill_switch": {"on": kill.on, "source": kill.source, "reason": kill.reason,
                            "changed_at": iso(ctl.kill_changed_at), "changed_by": ctl.kill_actor},
            "maintenance": {"on": ctl.maintenance, "reason": ctl.maintenance_reason,
                            "changed_at": iso(ctl.maintenance_changed_at)},
            "email_behavior": self.settings.production.email_behavior.model_dump(exclude_none=True),
            "block_production_writes": self.settings.production.block_production_writes,
            "breakers": [{"name": n, "state": (breakers[n].state if n in breakers else "CLOSED"),
                          "consecutive_failures": breakers[n].consecutive_failures if n in breakers else 0,
                          "retry_at": iso(breakers[n].retry_at) if n in breakers else None,
                          "forced": breakers[n].forced if n in breakers else False,
                          "last_error": breakers[n].last_error if n in breakers else None}
                         for n in EXTERNAL_APIS],
            "components": components,
            "usage": self.usage(now),
            "outbox": counts,
            "awaiting_reconciliation": recon,
            "audit": {"rows": head.last_seq if head else 0, "head_hash": head.last_hash if head else None},
            "permission_violations": int(violations),
            "checked_at": iso(now),
        }

    # ------------------------------------------------------------------------------------ reconciliation

    def reconciliation(self) -> list[OutboxItem]:
        with self.store.read() as s:
            return reconciliation_items(s, self.settings, self.clock())

    def resolve(self, outbox_id: int, outcome: str, reason: str, actor: str) -> OutboxItem:
        """A person checked the provider: record whether a send in doubt went out. Never re-sends."""
        if outcome not in ("sent", "failed"):
            raise InvalidRequest(f"--outcome {outcome!r}: must be 'sent' or 'failed'")
        if not reason.strip():
            raise InvalidRequest("a reason is required (--reason), e.g. what the provider's log shows")
        now = self.clock()
        with self.store.write() as s:
            row = s.get(OutboxItem, outbox_id)
            if row is None:
                raise InvalidRequest(f"outbox row {outbox_id} does not exist")
            if not is_in_doubt(row, self.settings, now):
                raise InvalidRequest(f"outbox row {outbox_id} is {row.status}, not awaiting reconciliation")
            before = row.status
            row.status, row.updated_at = outcome, now
            if outcome == "sent":
                row.sent_at = row.sent_at or now
            else:
                row.reserved_at = None
            s.add(row)
            audit.append(s, event="outbox.reconciled", actor=actor, now=now, ref=row.idempotency_key,
                         outbox_id=row.id, status=outcome, data={"reason": reason, "before": before})
            return row
