"""`alpha init` re-keys stored addresses only when the address rules changed (SQLite and PostgreSQL): a restart
with the same rules walks no table, only rows without a key get one; a change of production.json address_rules
recomputes every key."""
from __future__ import annotations

from sqlmodel import select

from engine.adapters.models import ControlState, Lead


def _key(app, lead_id: int) -> str | None:
    with app.store.read() as s:
        return s.get(Lead, lead_id).email_key


def _set_key(app, lead_id: int, value) -> None:
    with app.store.write_plain() as s:
        conn = s.connection()
        conn.execute(Lead.__table__.update().where(Lead.__table__.c.id == lead_id).values(email_key=value))


def _add(app, address: str) -> int:
    with app.store.write_plain() as s:
        lead = Lead(email=address, created_at=app.clock())
        s.add(lead)
        s.flush()
        return lead.id


def test_same_rules_touch_only_rows_without_a_key_and_a_rules_change_rekeys_all(app_factory):
    app = app_factory()
    tagged = _add(app, "Jane.Doe+promo@gmail.com")
    other = _add(app, "bob@example.com")
    assert _key(app, tagged) == "janedoe@gmail.com"
    with app.store.read() as s:
        assert s.exec(select(ControlState)).one().address_rules_fp  # init recorded the rules it keyed by

    _set_key(app, other, None)       # a row written without a key (a bulk path)
    _set_key(app, tagged, "stale")   # a key made by other rules would only be redone on a rules change
    assert app.init("restart")["addresses_rekeyed"] == 1
    assert _key(app, other) == "bob@example.com"
    assert _key(app, tagged) == "stale"
    assert app.rekey_addresses(full=True) == 1 and _key(app, tagged) == "janedoe@gmail.com"

    strict = app_factory(production={"address_rules": {"plus_tag_separators": [],
                                                       "dot_insensitive_domains": []}}, init=False)
    assert strict.init("rules changed")["addresses_rekeyed"] >= 1
    assert _key(strict, tagged) == "jane.doe+promo@gmail.com"
    assert strict.init("restart")["addresses_rekeyed"] == 0
