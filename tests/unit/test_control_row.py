"""The control_state row (id 1) is read through one function that says what is wrong when it is missing.

Every reader used ``s.get(ControlState, 1)`` and then its fields: on a database where the row is missing (not set
up by `alpha init`, or deleted) that was an AttributeError on None deep inside a phase change or the kill switch."""
from __future__ import annotations

import pytest
from sqlmodel import Session, SQLModel, create_engine

from engine.adapters.db import control_row
from engine.adapters.models import ControlState, table_of
from engine.core.errors import DatabaseNotReady


def test_a_missing_control_row_is_database_not_ready_naming_the_fix(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'control.db'}")
    SQLModel.metadata.create_all(engine, tables=[table_of(ControlState)])
    with Session(engine) as s:
        with pytest.raises(DatabaseNotReady, match=r"control_state row \(id 1\) is missing.*alpha init"):
            control_row(s)
        s.add(ControlState(id=1, phase="assisted"))
        s.commit()
        assert control_row(s).phase == "assisted"
    engine.dispose()
