"""One definition of each concept, on the database (SQLite and PostgreSQL): every path that suppresses an address,
decides a send is in doubt, counts usage or finds the users file gives the same answer."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from engine.adapters.models import AuditEntry, OutboxItem, Suppression
from engine.core.errors import InvalidRequest
from engine.queries.outbox import global_usage, is_in_doubt, month_day_counts
from engine.services.events import EventService
from tests.conftest import LIVE


@pytest.fixture
def app(app_factory):
    return app_factory(LIVE)


def _suppressions(app) -> list[tuple]:
    with app.store.read() as s:
        return [(r.email, r.address_key, r.reason) for r in s.exec(select(Suppression).order_by(Suppression.email))]


def _added_audits(app) -> list[dict]:
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.event == "suppression.add").order_by(AuditEntry.seq)).all()
        return [json.loads(r.data) for r in rows]


# ------------------------------------------------------------------------------------------ suppressions

def _dnd(app, email: str) -> str:
    event = {"type": "ContactDndUpdate", "id": f"c-{email}", "email": email, "dnd": True}
    return EventService(app).ghl(event, json.dumps(event).encode()).detail


@pytest.mark.parametrize("first,second", [("manual", "webhook"), ("webhook", "manual"), ("manual", "one-click"),
                                          ("one-click", "manual")])
def test_every_path_suppresses_one_mailbox_once_with_its_canonical_key(app, first, second):
    add = {
        "manual": lambda email: app.suppress(email, "manual", "ops"),
        "webhook": lambda email: "already" not in _dnd(app, email),
        "one-click": lambda email: EventService(app).unsubscribe(email),
    }
    assert add[first]("Ana.Lopez+news@Acme.io") is True
    assert add[second]("ana.lopez@acme.io") is False   # the same mailbox, spelled otherwise: already suppressed
    assert add[second]("Ana <ana.lopez+x@acme.io>") is False
    [(email, key, _)] = _suppressions(app)
    assert (email, key) == ("ana.lopez+news@acme.io", "ana.lopez@acme.io")
    [data] = _added_audits(app)
    assert set(data) == {"source", "detail", "address_key"} and data["address_key"] == key


def test_a_manual_suppression_is_stored_like_a_webhooks(app):
    """Canonical key, and the detail cut to 500 characters as the webhooks cut it."""
    assert app.suppress("Bo+promo@Beta.io", "unsubscribed", "ops", detail="x" * 900) is True
    with app.store.read() as s:
        row = s.get(Suppression, "bo+promo@beta.io")
    assert row.address_key == "bo@beta.io" and len(row.detail) == 500


def test_a_persons_bad_request_is_refused_naming_it(app):
    with pytest.raises(InvalidRequest, match="reason must be one of"):
        app.suppress("ana@acme.io", "because", "ops")
    with pytest.raises(InvalidRequest, match="not an email address"):
        app.suppress("not-an-address", "manual", "ops")
    assert _suppressions(app) == []


# ------------------------------------------------------------------------------------------ sends in doubt

def _row(app, n: int, status: str, reserved_ago: timedelta | None) -> int:
    now = app.clock()
    with app.store.write() as s:
        row = OutboxItem(idempotency_key=f"k{n}", payload_hash="h", agent="t", action="send_email", channel="email",
                         to_email=f"p{n}@d{n}.io", to_domain=f"d{n}.io", to_key=f"p{n}@d{n}.io", status=status,
                         from_email="me@ours.io", reserved_at=None if reserved_ago is None else now - reserved_ago,
                         created_at=now)
        s.add(row)
        s.flush()
        return row.id


def test_the_listed_sends_in_doubt_are_exactly_the_ones_a_person_may_resolve(app):
    stale = timedelta(seconds=app.settings.production.reconciliation.sending_stale_seconds)
    ids = {
        "reconcile": _row(app, 1, "reconcile", timedelta(seconds=1)),
        "sending, exactly stale": _row(app, 2, "sending", stale),
        "sending, stale": _row(app, 3, "sending", stale + timedelta(seconds=1)),
        "sending, fresh": _row(app, 4, "sending", stale - timedelta(seconds=1)),
        "sending, never reserved": _row(app, 5, "sending", None),
        "sent": _row(app, 6, "sent", stale * 2),
    }
    listed = {r.id for r in app.reconciliation()}
    now = app.clock()
    with app.store.read() as s:
        doubt = {i for i in ids.values() if is_in_doubt(s.get(OutboxItem, i), app.settings, now)}
    assert listed == doubt == {ids["reconcile"], ids["sending, exactly stale"], ids["sending, stale"]}
    for i in ids.values():
        if i in listed:
            assert app.resolve(i, "failed", "checked the provider", "ops").status == "failed"
        else:
            with pytest.raises(InvalidRequest, match="not awaiting reconciliation"):
                app.resolve(i, "failed", "checked the provider", "ops")


# ------------------------------------------------------------------------------------------ usage

def test_the_usage_shown_is_the_usage_the_limits_count(app):
    for n, (status, ago) in enumerate([("sent", 5), ("sending", 30), ("reconcile", 50), ("sent", 90),
                                       ("failed", 10), ("denied", 10), ("deferred", 10)]):
        _row(app, n, status, timedelta(minutes=ago))
    now = app.clock()
    shown = app.usage()
    with app.store.read() as s:
        month, day, hour_times = global_usage(s, app.settings, now)
        assert (month, day) == month_day_counts(s, app.settings, now)
    assert (shown["monthly"]["used"], shown["daily"]["used"], shown["hourly"]["used"]) == (month, day,
                                                                                          len(hour_times))
    assert (month, len(hour_times)) == (4, 3)


# ------------------------------------------------------------------------------------------ users file

@pytest.mark.parametrize("env", [{}, {"ALPHA_USERS_FILE": "{tmp}/prod-users.yaml"}, {"ALPHA_DEMO": "1"},
                                 {"ALPHA_DEMO": "yes", "ALPHA_USERS_FILE": "{tmp}/prod-users.yaml"},
                                 {"ALPHA_USERS_FILE": "   "}])
def test_the_approvals_read_the_users_file_the_console_reads(app, monkeypatch, tmp_path, env):
    from engine.adapters.users import users_file

    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert app.approvals.users_path() == users_file(config_dir=app.settings.config_dir)
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    assert app.approvals.users_path() == users_file()
