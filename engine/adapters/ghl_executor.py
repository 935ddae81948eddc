"""The GoHighLevel executor: what the gateway calls to make an email (or a CRM write) leave through GHL.

For an email: find the contact by email (upsert it when absent; GHL may answer 422 yet create it, so a 422
is followed by a second look-up), refuse it when GHL marks email DND (the address is reported through
``on_dnd`` so the engine suppresses it), then ``POST /conversations/messages`` (type Email).

Outcome mapping (the gateway turns these into outbox states):

- GHLAmbiguousSend (timeout, dropped connection or any 5xx on the send)  -> AmbiguousFailure: 'reconcile'
- GHLValidationError, GHLNotFound, other 4xx, DND                         -> DefiniteFailure(counts=False):
  this message is wrong for GHL, GHL itself is healthy: final 'failed'
- GHLServerError (5xx on a look-up), GHLTransportError, GHLRateLimited  -> DefiniteFailure(counts=True):
  certainly not sent, retried later with backoff, counted by the ``ghl`` breaker
- GHLAuthError (401/403)                                                  -> DefiniteFailure(counts=True):
  a revoked/expired token or missing scope breaks every call, not this message. Counting it opens the
  breaker and keeps the queue deferred (nothing is lost) instead of failing every queued message for good.

The gateway admits the ``ghl`` breaker before calling ``execute``; the client given here must not be built
with ``breakers=`` (each send would be counted twice).

GHL's SendMessageBodyDto has no field for custom email headers, so the gateway's List-Unsubscribe /
List-Unsubscribe-Post headers cannot be passed; the Delivery's detail says so.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from engine.adapters.ports import Suppressing
from engine.adapters.executors import AmbiguousFailure, DefiniteFailure, Delivery, Message
from engine.adapters.ghl import (GHLAmbiguousSend, GHLAuthError, GHLClient, GHLError, GHLNotFound, GHLRateLimited,
GHLServerError,
                  GHLTransportError, GHLValidationError, email_dnd_active)

log = logging.getLogger("alpha.ghl.executor")

EMAIL_ACTIONS = ("send_email", "send_campaign_email")
HEADERS_NOTE = "custom headers (List-Unsubscribe) not passed: GHL's send API has no field for them"


class ContactDnd(Exception):
    def __init__(self, email: str, detail: str):
        super().__init__(detail)
        self.email, self.detail = email, detail


def dnd_detail(contact: dict) -> str:
    if contact.get("dnd") is True:
        return f"GHL contact {contact.get('id')}: dnd is true"
    email = (contact.get("dndSettings") or {}).get("Email") or {}
    extra = "; ".join(f"{k}={email[k]}" for k in ("message", "code") if email.get(k))
    return f"GHL contact {contact.get('id')}: dndSettings.Email.status={email.get('status')}" + \
        (f" ({extra})" if extra else "")


def suppress_on_dnd(app: Suppressing, actor: str = "executor:ghl") -> Callable[[str, str], Any]:
    """An ``on_dnd`` callback that adds the address to the engine's suppression list (reason 'dnd')."""

    def on_dnd(email: str, detail: str) -> None:
        app.suppress(email, "dnd", actor, source="ghl", detail=detail)

    return on_dnd


class GHLExecutor:
    name = "ghl"
    api = "ghl"
    live = True

    def __init__(self, client: GHLClient, on_dnd: Callable[[str, str], Any] | None = None,
                 source: str = "alpha-swarm"):
        if getattr(client, "breakers", None) is not None:
            raise ValueError("the gateway already guards GHL with the 'ghl' breaker: build the executor's "
                             "GHLClient without breakers=")
        self.client = client
        self.on_dnd = on_dnd  # may be set after the App exists: executor.on_dnd = suppress_on_dnd(app)
        self.source = source

    # ------------------------------------------------------------------------------- Executor protocol

    def execute(self, msg: Message) -> Delivery:
        try:
            return self._dispatch(msg)
        except ContactDnd as e:
            self._report_dnd(e.email, e.detail)
            raise DefiniteFailure(f"not sent: {e.detail}; the address is suppressed",
                                  counts_against_breaker=False) from None
        except GHLAmbiguousSend as e:
            raise AmbiguousFailure(str(e)) from e
        except (GHLServerError, GHLTransportError, GHLRateLimited, GHLAuthError) as e:
            raise DefiniteFailure(str(e), counts_against_breaker=True) from e
        except (GHLValidationError, GHLNotFound, GHLError) as e:
            raise DefiniteFailure(str(e), counts_against_breaker=False) from e

    # ------------------------------------------------------------------------------- actions

    def _dispatch(self, msg: Message) -> Delivery:
        if msg.action in EMAIL_ACTIONS:
            return self._send_email(msg)
        if msg.action == "crm_upsert_contact":
            return self._upsert(msg)
        if msg.action in ("crm_add_tag", "crm_remove_tag"):
            return self._tags(msg)
        raise DefiniteFailure(f"the GHL executor does not perform {msg.action}", counts_against_breaker=False)

    def _send_email(self, msg: Message) -> Delivery:
        if not msg.to:
            raise DefiniteFailure("an email needs a recipient", counts_against_breaker=False)
        contact = self._find_or_create(msg.to, msg.record)
        self._check_dnd(msg.to, contact)
        try:
            resp = self.client.send_email(contact["id"], msg.subject or "", msg.html, msg.from_, text=msg.text,
                                          email_to=msg.to)
        except GHLValidationError as e:
            if "dnd" in (e.message or "").lower():  # GHL refused it for DND we could not see
                raise ContactDnd(msg.to, f"GHL refused the send: {e.message}") from e
            raise
        detail = f"GHL conversation {resp.get('conversationId')}, status {resp.get('status')}"
        if msg.headers:
            detail += f"; {HEADERS_NOTE}"
        return Delivery(self.name, resp.get("messageId"), detail)

    def _upsert(self, msg: Message) -> Delivery:
        if not msg.to:
            raise DefiniteFailure("a CRM write needs the contact's email ('to')", counts_against_breaker=False)
        fields = dict(msg.record.get("fields") or {})
        fields.pop("locationId", None)
        fields.pop("tags", None)  # upsert's tags replace all tags: added below instead
        payload = {"source": self.source, **self._extra(msg.record), **fields, "email": msg.to}
        contact = self._upsert_contact(msg.to, payload)
        tags = list(msg.record.get("tags") or [])
        if tags:
            self.client.add_tags(contact["id"], tags)
        return Delivery(self.name, contact.get("id"), "contact upserted in GHL")

    def _tags(self, msg: Message) -> Delivery:
        if not msg.to:
            raise DefiniteFailure("a CRM write needs the contact's email ('to')", counts_against_breaker=False)
        tags = list(msg.record.get("tags") or [])
        if msg.action == "crm_add_tag":
            contact = self._find_or_create(msg.to, msg.record)
            now = self.client.add_tags(contact["id"], tags)
            return Delivery(self.name, contact["id"], f"tags now: {', '.join(now)}")
        found = self.client.find_contact_by_email(msg.to)
        if found is None:
            return Delivery(self.name, None, "no GHL contact with that email: nothing to remove")
        now = self.client.remove_tags(found["id"], tags)
        return Delivery(self.name, found["id"], f"tags now: {', '.join(now) or '(none)'}")

    # ------------------------------------------------------------------------------- helpers

    def _extra(self, record: dict) -> dict:
        return {"companyName": record["company"]} if record.get("company") else {}

    def _find_or_create(self, email: str, record: dict) -> dict:
        """The GHL contact of ``email``, created (from the action's record) when GHL has none."""
        contact = self.client.find_contact_by_email(email)
        if contact is None:
            contact = self._upsert_contact(email, {"email": email, "source": self.source, **self._extra(record)})
        return contact

    def _upsert_contact(self, email: str, payload: dict) -> dict:
        try:
            contact = (self.client.upsert_contact(payload) or {}).get("contact")
        except GHLValidationError as e:
            # Known GHL quirk: 422 although the contact was created. Look again before giving up.
            contact = self.client.find_contact_by_email(email)
            if contact is None:
                raise
            log.warning("GHL answered %s to the upsert of a contact but created it (id %s)", e.status,
                        contact.get("id"))
        if not contact or not contact.get("id"):
            contact = self.client.find_contact_by_email(email)
        if not contact or not contact.get("id"):
            raise GHLValidationError("GHL returned no contact for the upsert", method="POST", path="/contacts/upsert")
        return contact

    def _check_dnd(self, email: str, contact: dict) -> None:
        if "dndSettings" not in contact:  # search results may omit it: read the full record
            contact = self.client.get_contact(contact["id"]) or contact
        if email_dnd_active(contact):
            raise ContactDnd(email, dnd_detail(contact))

    def _report_dnd(self, email: str, detail: str) -> None:
        if self.on_dnd is None:
            log.warning("GHL DND for %s but no on_dnd callback is set: %s", email, detail)
            return
        try:
            self.on_dnd(email, detail)
        except Exception:  # noqa: BLE001 - the send is refused either way
            log.exception("on_dnd callback failed for %s", email)
