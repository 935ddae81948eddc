"""engine.queries.control_history.recent_changes: the audit tail behind the console's "Last changes" table."""
from __future__ import annotations

from engine.queries.control_history import recent_changes


def test_recent_changes_newest_first_filtered_and_limited(app_factory, monkeypatch):
    from engine.services import control, readiness

    monkeypatch.setitem(readiness.PHASE_GATES, "parallel", [control.gate_kill_switch_off])
    app = app_factory()
    app.control.set_kill(True, "incident 42", "alice")
    app.suppress("x@example.com", "manual", "bob")  # not a control change
    app.control.set_kill(False, "incident over", "alice")
    app.control.set_phase("parallel", "shadow reviewed", "carol")

    rows = recent_changes(app, ("control.kill_switch", "control.phase"), limit=10)
    assert [(r["event"], r["status"], r["actor"], r["reason"]) for r in rows] == [
        ("control.phase", "parallel", "carol", "shadow reviewed"),
        ("control.kill_switch", "off", "alice", "incident over"),
        ("control.kill_switch", "on", "alice", "incident 42"),
        ("control.phase", "shadow", "test", "seeded from config"),  # app.init seeds the phase
    ]
    assert rows[0]["before"] == {"phase": "shadow"} and rows[0]["after"] == {"phase": "parallel"}
    assert rows[0]["forced"] is False
    assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)

    assert len(recent_changes(app, ("control.kill_switch",), limit=1)) == 1
    assert {r["event"] for r in recent_changes(app, (), limit=50)} >= {"suppression.add", "control.phase"}
