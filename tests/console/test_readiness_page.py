"""Readiness page: the score, categories, go/no-go with evidence and age, what to do next; and readiness() staying
fast on a long audit trail (it walks the whole chain once, then only the rows added since)."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlmodel import select

from console.widgets import local_time
from engine.adapters import audit
from engine.core.clock import system_clock
from engine.adapters.models import AuditEntry, AuditHead, CheckRun
from engine.services.readiness import AUDIT_KIND, readiness, verify_audit_chain
from tests.console.conftest import _ESCAPED, no_exception, text

PAGE = "pages/readiness.py"


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


_BADGE = re.compile(r"^:[a-z]+-badge\[(.*)\]$")


def plain(value) -> str:
    """A table cell as a person reads it: a status mark's word, markdown escapes removed."""
    v = str(value)
    m = _BADGE.match(v)
    return _ESCAPED.sub(r"\1", m.group(1) if m else v)


def table(at, column: str):
    """The table that has ``column`` (AppTest does not expose a table's key), its cells as read."""
    return next(d.value for d in [*at.table, *at.dataframe] if column in d.value.columns).map(plain)


def go_no_go(at) -> dict[str, dict]:
    return {row["criterion"]: row for row in table(at, "criterion").to_dict("records")}


@pytest.fixture
def synced(ctx):
    """ctx.app's clock at the wall-clock time the console's own engine uses, so both see the same evidence."""
    ctx.app.clock.now = system_clock()
    return ctx


def _exec(app, sql: str, **params):
    with app.store.engine.begin() as c:
        c.execute(sa.text(sql), params)


def _chain_runs(app) -> list[CheckRun]:
    with app.store.read() as s:
        return list(s.exec(select(CheckRun).where(CheckRun.kind == AUDIT_KIND).order_by(CheckRun.id)).all())


# ------------------------------------------------------------------------------------------ roles

def test_ae_is_refused_and_approver_ops_admin_see_it(ctx):
    at = no_exception(ctx.page(PAGE, "ae"))
    assert "Access refused: this page needs the role approver or ops or admin" in text(at.error)
    assert not at.title and not at.get("plotly_chart") and not at.dataframe and not at.table
    for username in ("approver", "ops", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert [t.value for t in at.title] == ["Readiness"], username
        assert len(charts(at)) == 2 and go_no_go(at)
    assert "not signed in" in text(no_exception(ctx.page(PAGE, None)).error)


def test_engine_down_is_a_message_not_a_traceback(ctx, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'never-initialised.db'}")
    at = no_exception(ctx.page(PAGE, "ops"))
    assert "The engine cannot start" in text(at.error)
    assert not at.title


# ------------------------------------------------------------------------------------------ what it shows

def test_page_shows_the_engines_score_categories_and_go_no_go(synced):
    ctx = synced
    at = no_exception(ctx.page(PAGE, "approver"))
    r = readiness(ctx.app)
    gauge, bars = charts(at)
    assert gauge["data"][0]["value"] == r["score"]
    score_bar = bars["data"][1]
    shown = dict(zip(score_bar["y"], score_bar["x"]))
    assert shown == {c["name"]: c["score"] for c in r["categories"]}
    assert dict(zip(bars["data"][0]["y"], bars["data"][0]["x"])) == {c["name"]: c["max"] for c in r["categories"]}

    gng = go_no_go(at)
    assert set(gng) == {g["criterion"] for g in r["go_no_go"]}
    for g in r["go_no_go"]:
        row = gng[g["criterion"]]
        assert row["status"] == g["status"].upper()
        assert row["evidence"] == g["evidence"] or g["criterion"] == "audit chain verifies"  # its age moved on
        assert row["required for parallel"] == ("yes" if g["required"] else "")
        assert bool(row["recorded"]) == bool(g["at"])
    assert gng["canary passing"]["age"] == "never" and gng["canary passing"]["status"] == "FAIL"
    assert gng["breakers closed"]["age"].endswith(" s ago")
    # the chain was walked in full by the page; ctx.app's readiness reuses that walk: same time
    assert gng["audit chain verifies"]["recorded"] == local_time(next(
        g["at"] for g in r["go_no_go"] if g["criterion"] == "audit chain verifies"), with_seconds=True)
    assert re.fullmatch(r"\w{3} \d{1,2} \w{3}( \d{4})? \d\d:\d\d:\d\d \w+", gng["audit chain verifies"]["recorded"])
    assert "gate for **parallel** is closed" in text(at.warning)

    # what to do next: each failing check with the command that fixes it
    codes = [c.value for c in at.code]
    for cmd in ("alpha canary", "alpha unsubscribe-test", "alpha verify", "alpha compare generate 60",
                "alpha shadow run --contacts 50"):
        assert cmd in codes, codes
    assert "Kill switch & rollout page" in text(at.markdown)
    failing = {c["name"] for cat in r["categories"] for c in cat["checks"] if not c["passed"]}
    steps = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]
    assert set(steps) == failing
    assert steps[0] == "shadow validation complete"  # the one required for parallel comes first


def test_go_no_go_lists_failures_first_with_the_whole_evidence(synced, monkeypatch):
    """Issue 13: the gate's reasons were cut off in a narrow cell and failures were not first."""
    import engine.services.readiness as rd

    real = rd.readiness
    long = "the canary failed at step 4 of 6: " + "the webhook receiver did not answer in time, " * 6 + "end."

    def patched(app):
        r = real(app)
        for g in r["go_no_go"]:
            if g["criterion"] == "canary passing":
                g["evidence"], g["required"] = long, False  # a failure that is not required still comes before passes
        return r

    monkeypatch.setattr(rd, "readiness", patched)
    at = no_exception(synced.page(PAGE, "ops"))
    rows = table(at, "criterion").to_dict("records")
    statuses = [r["status"] for r in rows]
    assert "PASS" in statuses and "FAIL" in statuses
    assert statuses == sorted(statuses, key=lambda s: s == "PASS"), statuses  # every FAIL before every PASS
    required = "required for parallel"
    fails = [r for r in rows if r["status"] == "FAIL"]
    assert [r[required] for r in fails] == sorted((r[required] for r in fails), reverse=True)  # required first
    assert next(r for r in rows if r["criterion"] == "canary passing")["evidence"] == long  # in full
    assert not [d for d in at.dataframe if "criterion" in d.value.columns]  # a wrapping table, not a grid


def test_an_old_piece_of_evidence_shows_its_age(synced):
    ctx = synced
    ctx.app.clock.advance(hours=-3)  # the kill switch drill was three hours ago
    ctx.app.control.set_kill(True, "weekly drill", "ops")
    ctx.app.control.set_kill(False, "drill over", "ops")
    at = no_exception(ctx.page(PAGE, "ops"))
    row = go_no_go(at)["kill switch tested"]
    assert row["status"] == "PASS" and row["age"] == "3 h ago" and "last flipped on by ops" in row["evidence"]
    detail = {r["check"]: r for e in at.expander for df in e.table for r in df.value.map(plain).to_dict("records")}
    assert detail["kill switch tested"]["age"] == "3 h ago" and detail["kill switch tested"]["result"] == "PASS"
    assert not any(c.value.startswith("alpha kill on") for c in at.code)  # a passing check has no next step


def test_breaking_and_fixing_a_check_moves_the_score_and_the_steps(synced):
    ctx = synced
    at = no_exception(ctx.page(PAGE, "ops"))
    before = charts(at)[0]["data"][0]["value"]
    assert not any("alpha breakers close" in c.value for c in at.code)
    ctx.app.breakers.force("ghl", "OPEN", "GHL returns 500s", "ops")  # done elsewhere: the page follows
    at = no_exception(at.run())
    broken = charts(at)[0]["data"][0]["value"]
    assert broken == readiness(ctx.app)["score"] < before
    assert go_no_go(at)["breakers closed"]["evidence"] == "not closed: ghl"
    assert any("alpha breakers close" in c.value for c in at.code)
    ctx.app.breakers.force("ghl", "CLOSED", "GHL healthy again", "ops")
    at = no_exception(at.run())
    assert charts(at)[0]["data"][0]["value"] == before
    assert not any("alpha breakers close" in c.value for c in at.code)


# ------------------------------------------------------------------------------------------ the audit chain

def test_walk_button_catches_an_old_edit_that_the_quick_check_cannot(synced):
    ctx = synced
    ctx.app.control.set_maintenance(True, "window", "ops")  # a few rows: row 1 is then well behind the head
    ctx.app.control.set_maintenance(False, "window over", "ops")
    at = no_exception(ctx.page(PAGE, "admin"))
    runs = _chain_runs(ctx.app)
    assert len(runs) == 1 and runs[0].ok  # the first render walked the chain in full and recorded it
    assert go_no_go(at)["audit chain verifies"]["status"] == "PASS"
    _exec(ctx.app, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    at = no_exception(at.run())
    assert go_no_go(at)["audit chain verifies"]["status"] == "PASS"  # only rows after the checkpoint are walked
    at.button(key="walk_chain").click()
    at = no_exception(at.run())
    assert "The audit chain is BROKEN: row 1 was edited" in text(at.info)
    row = go_no_go(at)["audit chain verifies"]
    assert row["status"] == "FAIL" and "row 1 was edited" in row["evidence"]
    assert _chain_runs(ctx.app)[-1].ok is False
    assert "alpha audit verify" in [c.value for c in at.code]


def test_readiness_walks_only_the_rows_added_since_the_last_full_walk(app_factory, monkeypatch):
    import engine.services.readiness as rd

    app = app_factory()
    walks = []
    real = audit.verify
    monkeypatch.setattr(audit, "verify", lambda s, *a, **k: walks.append(1) or real(s, *a, **k))

    def chain():
        return next(g for g in readiness(app)["go_no_go"] if g["criterion"] == "audit chain verifies")

    assert chain()["status"] == "pass" and len(walks) == 1
    first_at = chain()["at"]
    assert len(walks) == 1  # the second call walked nothing in full
    app.clock.advance(minutes=30)
    for i in range(3):
        app.control.set_kill(i % 2 == 0, f"toggle {i}", "ops")
    c = chain()
    assert c["status"] == "pass" and len(walks) == 1 and c["at"] == first_at
    assert "walked in full 30 min ago; the 3 rows added since verified now" in c["evidence"]

    monkeypatch.setattr(rd, "CHECKPOINT_EVERY", 3)  # the checkpoint moves forward past many new rows
    n_runs = len(_chain_runs(app))
    chain()
    assert len(_chain_runs(app)) == n_runs + 1 and len(walks) == 1
    assert "; none added since" in chain()["evidence"] and chain()["at"] == first_at

    with app.store.read() as s:
        head = s.get(AuditHead, 1).last_seq
    _exec(app, "UPDATE audit_log SET status = 'tampered' WHERE seq = :seq", seq=head)  # a new row edited
    c = chain()
    assert c["status"] == "fail" and f"row {head} was edited" in c["evidence"] and len(walks) == 2
    _exec(app, "UPDATE audit_log SET status = 'on' WHERE seq = :seq", seq=head)  # (set_kill i=2 was on)
    assert chain()["status"] == "pass" and len(walks) == 3  # after a failed walk the next one is full again
    app.clock.advance(hours=25)
    chain()
    assert len(walks) == 4  # a full walk older than 24 h is done again
    chain()
    assert len(walks) == 4
    _exec(app, "DELETE FROM audit_log WHERE seq = :seq", seq=head)  # the tail truncated
    c = chain()
    assert c["status"] == "fail" and f"rows after {head - 1} deleted" in c["evidence"] and len(walks) == 5


def _seed_audit(app, n: int) -> None:
    """n more valid audit rows in one bulk insert (hashes chained like audit.append)."""
    with app.store.read() as s:
        head = s.get(AuditHead, 1)
        seq, prev = head.last_seq, head.last_hash
    rows = []
    for i in range(n):
        seq += 1
        e = SimpleNamespace(seq=seq, at="2026-11-20T10:00:00.000000Z", actor="bench", agent="CRAFTER",
                            event="gateway.decision", action="send_email", status="shadowed", ref=f"r{i}",
                            outbox_id=None, reasons="[]", data=f'{{"i":{i}}}', prev_hash=prev)
        e.row_hash = audit.row_digest(e)
        prev = e.row_hash
        rows.append(vars(e))
    with app.store.engine.begin() as c:
        c.execute(AuditEntry.__table__.insert(), rows)
        c.execute(sa.update(AuditHead.__table__).where(AuditHead.__table__.c.id == 1)
                  .values(last_seq=seq, last_hash=prev))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # seeding 100,000 rows twice would double the time
def test_readiness_verifies_only_the_rows_added_since_the_last_full_walk(app_factory):
    """With 100,000 audit rows, readiness walks only what was added since the last full walk. How long the page
    takes is measured by `make bench` (the Readiness page at 100,000 audit rows), not timed here."""
    app = app_factory()
    with app.store.read() as s:
        rows_before = s.get(AuditHead, 1).last_seq
    _seed_audit(app, 100_000)
    ok, why, _ = verify_audit_chain(app)  # the full walk (done once a day, or on demand)
    assert ok and why.startswith(f"{100_000 + rows_before} rows"), why
    app.control.set_kill(True, "drill", "ops")
    app.control.set_kill(False, "drill over", "ops")
    r = readiness(app)
    chain = next(g for g in r["go_no_go"] if g["criterion"] == "audit chain verifies")
    assert chain["status"] == "pass" and "the 2 rows added since" in chain["evidence"]
