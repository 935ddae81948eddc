"""audit.append on a database without the audit_head row says so (DatabaseNotReady), not AttributeError.

Store.write() already refuses to open without the head; append can also be reached from a session opened
elsewhere (write_plain, a script), where the missing row used to surface as "'NoneType' object has no
attribute 'last_seq'"."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.adapters import audit
from engine.core.errors import DatabaseNotReady
from tests.conftest import WORK_TIME


def test_append_without_head_row_names_the_missing_row(app_factory):
    app = app_factory()
    with app.store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_head"))
    with pytest.raises(DatabaseNotReady, match="audit_head row"):
        with app.store.write_plain() as s:
            audit.append(s, event="test.event", actor="tester", now=WORK_TIME)
