"""Editing, deleting or reordering one audit row is detected and the row is named."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.adapters import audit
from tests.conftest import LIVE, deep_merge
from tests.helpers import email


@pytest.fixture
def app(app_factory):
    a = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}}),
                    warmup={"enabled": False})
    for i in range(6):
        a.gateway.submit(email(f"k{i}", to=f"u{i}@d{i}.io"))
    with a.store.read() as s:
        assert audit.verify(s).ok
    return a


def _exec(app, sql: str, **params):
    with app.store.engine.begin() as c:
        c.execute(sa.text(sql), params)


def _verify(app):
    with app.store.read() as s:
        return audit.verify(s)


def test_intact_chain_verifies(app):
    r = _verify(app)
    assert r.ok and r.rows == r.head_seq >= 13


def test_edited_row_is_named(app):
    _exec(app, "UPDATE audit_log SET status = 'tampered' WHERE seq = 5")
    r = _verify(app)
    assert not r.ok and r.first_bad_seq == 5 and "row 5 was edited" in r.problem


def test_edited_row_with_recomputed_own_hash_breaks_the_next_link(app):
    from sqlmodel import select

    from engine.adapters.models import AuditEntry

    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4"))
    with app.store.read() as s:
        e = s.exec(select(AuditEntry).where(AuditEntry.seq == 4)).one()
        new_hash = audit.row_digest(e)
    _exec(app, "UPDATE audit_log SET row_hash = :h WHERE seq = 4", h=new_hash)
    r = _verify(app)
    assert not r.ok and r.first_bad_seq == 5 and "out of order or was replaced" in r.problem


def test_deleted_row_is_named(app):
    _exec(app, "DELETE FROM audit_log WHERE seq = 7")
    r = _verify(app)
    assert not r.ok and r.first_bad_seq == 7 and "row 7 deleted" in r.problem


def test_deleted_tail_is_detected(app):
    head = _verify(app).head_seq
    _exec(app, "DELETE FROM audit_log WHERE seq = :s", s=head)
    r = _verify(app)
    assert not r.ok and f"rows after {head - 1} deleted" in r.problem


def test_reordered_rows_are_named(app):
    # swap the contents of rows 3 and 4 (keep their positions)
    _exec(app, "UPDATE audit_log SET seq = -3 WHERE seq = 3")
    _exec(app, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    _exec(app, "UPDATE audit_log SET seq = 4 WHERE seq = -3")
    r = _verify(app)
    assert not r.ok and r.first_bad_seq == 3
