"""Prometheus metrics (engine/queries/metrics.py): the exposition text parses back under the 0.0.4 rules (HELP and TYPE
before each family's samples, escaped label values, cumulative histogram buckets) and every figure matches a
seeded database, on SQLite and PostgreSQL.

Seen before (issue 14): there were no metrics at all: decisions by status and reason, queue depth, breaker states
and send latency could only be read by hand from `alpha status` or SQL."""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from engine.adapters import audit
from engine.queries.health import WORKER, beat
from engine.queries.metrics import CALL_BUCKETS, CONTENT_TYPE, LATENCY_BUCKETS, Family, collect, metrics_text, render
from engine.adapters.models import Approval, AuditEntry, BreakerState, OutboxItem
from tests.conftest import WORK_TIME

# ------------------------------------------------------------------------------------- a strict 0.0.4 parser

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def _unescape(v: str) -> str:
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _labels(text: str) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        assert m, f"bad label syntax at {pos} in {{{text}}}"
        assert m.group(1) not in out, f"label {m.group(1)} twice"
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return out


def parse_exposition(text: str) -> dict[str, dict]:
    """{family: {"help", "type", "samples": [(sample name, labels, value)]}}; asserts every format rule."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, dict] = {}
    current, seen_series, closed = None, set(), set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        assert line and line == line.strip(), f"line {n}: empty or padded: {line!r}"
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({_NAME}) (.*)$", line)
            assert m, f"line {n}: a comment that is neither HELP nor TYPE: {line!r}"
            kind, name, rest = m.groups()
            fam = families.setdefault(name, {"help": None, "type": None, "samples": []})
            assert name not in closed and not fam["samples"], f"line {n}: {kind} of {name} after its samples"
            if current is not None and current != name:
                closed.add(current)
            current = name
            key = kind.lower()
            assert fam[key] is None, f"line {n}: second {kind} for {name}"
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                fam["type"] = rest
            else:
                assert re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest), f"line {n}: bad escape in HELP"
                fam["help"] = re.sub(r"\\([\\n])", lambda m: "\n" if m.group(1) == "n" else "\\", rest)
            continue
        m = _SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        sname, _, ltext, value = m.groups()
        fam = families.get(current)
        assert fam is not None and fam["type"] and fam["help"] is not None, \
            f"line {n}: sample {sname} before its family's HELP and TYPE"
        allowed = [current + s for s in _SUFFIXES.get(fam["type"], ("",))]
        assert sname in allowed, f"line {n}: sample {sname} inside family {current}"
        labels = _labels(ltext or "")
        series = (sname, tuple(sorted(labels.items())))
        assert series not in seen_series, f"line {n}: duplicate series {series}"
        seen_series.add(series)
        v = float(value)  # accepts +Inf, -Inf, NaN
        assert value in ("+Inf", "-Inf", "NaN") or not math.isinf(v), line
        fam["samples"].append((sname, labels, v))
    for name, fam in families.items():
        assert fam["help"] and fam["type"], f"{name} lacks HELP or TYPE"
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name: str, samples: list) -> None:
    groups: dict[tuple, list] = {}
    sums, counts = {}, {}
    for sname, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        if sname.endswith("_bucket"):
            groups.setdefault(rest, []).append((float(labels["le"]), v))
        elif sname.endswith("_sum"):
            sums[rest] = v
        else:
            counts[rest] = v
    for rest, buckets in groups.items():
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), f"{name}: buckets out of order or no +Inf"
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{name}: buckets are not cumulative"
        assert values[-1] == counts[rest] and rest in sums, f"{name}: +Inf bucket != _count"


def value(fams: dict, name: str, **labels) -> float:
    hits = [v for s, lab, v in fams[name]["samples"] if s == name and lab == {k: str(x) for k, x in labels.items()}]
    assert len(hits) == 1, (name, labels, fams[name]["samples"])
    return hits[0]


def series(fams: dict, name: str) -> dict[tuple, float]:
    return {tuple(sorted(lab.items())): v for s, lab, v in fams.get(name, {"samples": []})["samples"] if s == name}


# ------------------------------------------------------------------------------------------ format alone

def test_escaping_round_trips_through_the_parser():
    f = Family("alpha_test_items", "gauge", 'a help with a backslash \\ and\na newline')
    f.add(1, {"reason": 'quote " backslash \\ newline \n end', "status": "ok"})
    f.add(2.5, {"reason": "plain", "status": "ok"})
    h = Family("alpha_test_seconds", "histogram", "h")
    h.histogram((0.5, 1.0), [1, 2], 1.75, 3)
    text = render([f, h])
    fams = parse_exposition(text)
    assert fams["alpha_test_items"]["help"] == 'a help with a backslash \\ and\na newline'
    assert value(fams, "alpha_test_items", reason='quote " backslash \\ newline \n end', status="ok") == 1
    assert value(fams, "alpha_test_items", reason="plain", status="ok") == 2.5
    assert [lab["le"] for s, lab, _ in fams["alpha_test_seconds"]["samples"] if s.endswith("_bucket")] == \
        ["0.5", "1.0", "+Inf"]
    assert len(text.splitlines()) == 2 + 2 + 2 + 3 + 2  # no escaped newline split a line
    with pytest.raises(ValueError):
        Family("bad name", "gauge", "x")
    with pytest.raises(ValueError):
        Family("alpha_x", "gauge", "x").add(1, {"bad-label": "v"})
    with pytest.raises(ValueError):
        render([Family("alpha_x", "gauge", "x"), Family("alpha_x", "gauge", "y")])
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


# ------------------------------------------------------------------------------------------ a seeded database

DECISIONS = [("sent", [])] * 3 + [("denied", ["SPAM_CONTENT"])] * 2 + \
    [("denied", ["SPAM_CONTENT", "MISSING_UNSUBSCRIBE"])] + [("deferred", ["OUTSIDE_WORKING_HOURS"])] * 4 + \
    [("shadowed", ["PHASE_BLOCKS_SEND"])] + [("denied", ['ODD"\\CODE\nX'])]
EXECUTIONS = [("sent", []), ("sent", []), ("failed", ["PROVIDER_REJECTED"])]
LATENCY = [0.5, 3.0, 45.0, 7200.0]      # created_at -> sent_at of the 4 sent rows
CALL = [0.03, 0.2, 0.7, 4.0]            # reserved_at -> sent_at
OTHER_ROWS = {"deferred": 3, "pending_approval": 2, "sending": 1, "denied": 1, "reconcile": 1}


def _row(i: int, status: str, **kw) -> OutboxItem:
    kw.setdefault("created_at", WORK_TIME)
    return OutboxItem(idempotency_key=f"k{i}", payload_hash="0" * 64, agent="GHL_MASTER", action="send_email",
                      channel="email", to_email=f"p{i}@acme.io", status=status, **kw)


def seed(app) -> None:
    now = WORK_TIME
    with app.store.write() as s:
        for i, (status, reasons) in enumerate(DECISIONS):
            audit.append(s, event="gateway.decision", actor="GHL_MASTER", agent="GHL_MASTER", action="send_email",
                         status=status, ref=f"d{i}", reasons=reasons, now=now)
        for i, (status, reasons) in enumerate(EXECUTIONS):
            audit.append(s, event="gateway.execution", actor="GHL_MASTER", agent="GHL_MASTER",
                         action="send_email", status=status, ref=f"e{i}", reasons=reasons, now=now)
        audit.append(s, event="approval.approved", actor="ann", status="approved", now=now)  # not a decision
    with app.store.write_plain() as s:
        i = 0
        for total, call in zip(LATENCY, CALL):
            sent = now - timedelta(minutes=10 + i)
            s.add(_row(i, "sent", sent_at=sent, created_at=sent - timedelta(seconds=total),
                       reserved_at=sent - timedelta(seconds=call)))
            i += 1
        for status, n in OTHER_ROWS.items():
            for j in range(n):
                nb = (now - timedelta(minutes=1)) if (status == "deferred" and j < 2) else now + timedelta(hours=1)
                s.add(_row(i, status, not_before=nb))
                i += 1
        s.flush()
        pending = s.exec(select(OutboxItem).where(OutboxItem.status == "pending_approval")).all()
        for row in pending:
            s.add(Approval(kind="send", outbox_id=row.id, requested_by="GHL_MASTER", status="pending"))
        s.add(Approval(kind="hot_lead", requested_by="events", status="pending", summary="replied"))
        s.add(Approval(kind="send", outbox_id=pending[0].id, requested_by="GHL_MASTER", status="approved"))
    app.breakers.force("ghl", "OPEN", "provider outage drill", "ops")
    with app.store.write_plain() as s:
        row = s.get(BreakerState, "slack") or BreakerState(name="slack")
        row.state, row.consecutive_failures = "HALF_OPEN", 2
        s.add(row)
    app.control.set_kill(True, "metrics test", "ops")
    beat(app.store, WORKER, {"interval": 5}, now=now - timedelta(seconds=2))


def test_every_figure_matches_the_seeded_database(app_factory):
    app = app_factory()
    seed(app)
    text = metrics_text(app)
    fams = parse_exposition(text)

    assert value(fams, "alpha_up") == 1
    # decisions by status, and by status and reason (a decision with two reasons counts under each)
    assert series(fams, "alpha_gateway_decisions_total") == {
        (("status", "deferred"),): 4, (("status", "denied"),): 4, (("status", "sent"),): 3,
        (("status", "shadowed"),): 1}
    assert series(fams, "alpha_gateway_decision_reasons_total") == {
        (("reason", "MISSING_UNSUBSCRIBE"), ("status", "denied")): 1,
        (("reason", 'ODD"\\CODE\nX'), ("status", "denied")): 1,
        (("reason", "OUTSIDE_WORKING_HOURS"), ("status", "deferred")): 4,
        (("reason", "PHASE_BLOCKS_SEND"), ("status", "shadowed")): 1,
        (("reason", "SPAM_CONTENT"), ("status", "denied")): 3}
    assert series(fams, "alpha_gateway_executions_total") == {(("status", "failed"),): 1, (("status", "sent"),): 2}
    # the same, counted independently from the audit rows themselves
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.event == "gateway.decision")).all()
    assert Counter(r.status for r in rows) == Counter(
        {dict(k)["status"]: v for k, v in series(fams, "alpha_gateway_decisions_total").items()})

    # queue depth: every known status present, zeros included
    outbox = {dict(k)["status"]: v for k, v in series(fams, "alpha_outbox_items").items()}
    assert outbox == {"sent": 4, **OTHER_ROWS, "failed": 0, "shadowed": 0, "cancelled": 0}
    assert value(fams, "alpha_outbox_due_items") == 2
    assert series(fams, "alpha_approvals_pending") == {(("kind", "hot_lead"),): 1, (("kind", "send"),): 2}

    # breakers: one state per breaker is 1
    states = series(fams, "alpha_breaker_state")
    assert states[(("breaker", "ghl"), ("state", "OPEN"))] == 1
    assert states[(("breaker", "ghl"), ("state", "CLOSED"))] == 0
    assert states[(("breaker", "slack"), ("state", "HALF_OPEN"))] == 1
    assert states[(("breaker", "llm"), ("state", "CLOSED"))] == 1
    per_breaker = Counter()
    for key, v in states.items():
        per_breaker[dict(key)["breaker"]] += v
    assert set(per_breaker.values()) == {1} and {"ghl", "slack", "llm"} <= set(per_breaker)
    assert value(fams, "alpha_breaker_consecutive_failures", breaker="slack") == 2

    # send latency: created_at -> sent_at, and the provider call reserved_at -> sent_at
    for name, observed, buckets in (("alpha_send_latency_seconds", LATENCY, LATENCY_BUCKETS),
                                    ("alpha_send_call_seconds", CALL, CALL_BUCKETS)):
        fam = fams[name]
        assert fam["type"] == "histogram"
        got = {lab["le"]: v for s, lab, v in fam["samples"] if s == name + "_bucket"}
        for b in buckets:
            assert got[repr(float(b))] == sum(1 for x in observed if x <= b), (name, b)
        assert got["+Inf"] == len(observed)
        total = next(v for s, _, v in fam["samples"] if s == name + "_sum")
        assert total == pytest.approx(sum(observed), abs=1e-3)

    # control plane and health
    assert value(fams, "alpha_kill_switch") == 1 and value(fams, "alpha_maintenance") == 0
    phases = series(fams, "alpha_rollout_phase")
    assert sum(phases.values()) == 1
    assert phases[(("phase", app.control.state().phase),)] == 1
    assert value(fams, "alpha_workers_running") == 1
    assert value(fams, "alpha_heartbeat_age_seconds", component="worker") == pytest.approx(2, abs=0.01)
    assert value(fams, "alpha_component_healthy", component="worker") == 1
    assert value(fams, "alpha_component_healthy", component="schema") == 1
    assert value(fams, "alpha_component_state", component="webhook_receiver", state="down") == 1


def test_an_empty_database_still_exposes_every_family(app_factory):
    fams = parse_exposition(metrics_text(app_factory()))
    for name in ("alpha_gateway_decisions_total", "alpha_gateway_decision_reasons_total", "alpha_outbox_items",
                 "alpha_breaker_state", "alpha_send_latency_seconds", "alpha_send_call_seconds",
                 "alpha_workers_running", "alpha_kill_switch"):
        assert name in fams, name
    assert series(fams, "alpha_gateway_decisions_total") == {}
    assert value(fams, "alpha_workers_running") == 0
    counts = [v for s, _, v in fams["alpha_send_latency_seconds"]["samples"] if s.endswith("_count")]
    assert counts == [0]


def test_an_uninitialised_database_answers_up_0_and_health_only(app_factory):
    app = app_factory(init=False)
    fams = parse_exposition(metrics_text(app))
    assert value(fams, "alpha_up") == 0
    assert value(fams, "alpha_component_healthy", component="database") == 1
    assert value(fams, "alpha_component_healthy", component="schema") == 0
    assert value(fams, "alpha_component_state", component="schema", state="down") == 1
    assert "alpha_outbox_items" not in fams and "alpha_gateway_decisions_total" not in fams


def test_an_unreachable_database_answers_up_0(settings):
    from engine.app import App
    from engine.core.clock import FixedClock
    from engine.adapters.db import Store

    app = App(settings=settings, store=Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=3"),
              clock=FixedClock(WORK_TIME))
    families = collect(app)
    fams = parse_exposition(render(families))
    assert value(fams, "alpha_up") == 0
    assert value(fams, "alpha_component_healthy", component="database") == 0
    assert value(fams, "alpha_component_state", component="database", state="down") == 1
    json.dumps([f.name for f in families])  # nothing unserialisable leaked into the family list
