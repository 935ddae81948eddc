"""Schema upgrades keep existing data: each migration applied on a database that already holds rows."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from engine.adapters.db import Store


def test_upgrade_step_by_step_keeps_existing_leads(db_url):
    store = Store(db_url)
    cfg = store.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO lead (email, status, sequence_step) VALUES ('a@acme.io', 'cold', 0)"))
    before, after = store.upgrade()
    assert (before, after) == ("0002", store.head_revision())
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT email, website_visits FROM lead")).one()
    assert tuple(row) == ("a@acme.io", 0)
    store.check_ready()
    store.dispose()
