"""The lead router: which sequence a lead belongs in, and when its next step is due. Pure (no I/O, no clock).

``route(lead, now, cfg)`` reads any object or mapping with the ``Lead`` attributes (a row, a dict from an import)
and the router settings (``Pack.routing``, a ``RouterConfig``, the pack itself, or a mapping with
``warm_window_days`` and ``ghost_after_days``). Rules, in order:

stopped
    ``status`` is one of ``engine.core.statuses.STOP_LEAD_STATUSES`` (hot, replied, unsubscribed, bounced,
    complained: the gateway stops on the same list); or ``sequence_stopped_at`` is set (a reply marks a lead hot
    *and* stops it; the recorded ``stop_reason`` is given); or the lead is disqualified
    (``disqualified_reason``). A stopped lead gets no further step.
warm
    the latest engagement signal (``last_reply_at``, ``last_click_at``, ``last_open_at``, ``last_visit_at``,
    ``last_engaged_at``) is within ``warm_window_days``; or, with no dated signal at all, an identified website
    visitor (``status`` warm, or ``website_visits`` > 0). A lead whose last signal is older than the warm
    window but not yet ``ghost_after_days`` old stays warm (the reason says so).
ghost
    engaged at least once, and the latest signal is more than ``ghost_after_days`` old (dated signals decide: a
    status of warm left over from an old open does not keep a lead warm).
cold
    no engagement recorded.

Datetimes without a time zone are taken as UTC; ISO-8601 strings are accepted; a signal in the future counts as
now. ``next_step`` gives the next step of a sequence and when it is due: the first step at once, each later step
``delay_days`` after the previous step was sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from engine.core.clock import as_utc, iso, parse_iso
from engine.core.statuses import LeadStatus, stops_sequence

SEQUENCES = ("cold", "warm", "ghost")
STOPPED = "stopped"
SIGNALS = (  # (attribute, what it is called in a reason); on equal times the first wins
    ("last_reply_at", "replied"),
    ("last_click_at", "clicked"),
    ("last_open_at", "opened"),
    ("last_visit_at", "visited the website"),
    ("last_engaged_at", "engaged"),
)


@dataclass(frozen=True)
class Route:
    sequence: str                    # cold | warm | ghost | stopped
    reason: str
    signal: str | None = None        # the attribute that decided (last_click_at, status, ...)
    last_engaged_at: datetime | None = None

    @property
    def stopped(self) -> bool:
        return self.sequence == STOPPED


@dataclass(frozen=True)
class NextStep:
    sequence: str
    step: int
    kind: str                        # first_touch | follow_up
    delay_days: int
    due_at: datetime
    due: bool                        # due_at <= now


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        v = obj.get(name, default)
    else:
        v = getattr(obj, name, default)
    return default if v is None else v


def _when(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return as_utc(v)
    if isinstance(v, str):
        try:
            return parse_iso(v)
        except ValueError:
            return None
    return None


def _days(td: timedelta) -> str:
    d = td.days
    if d <= 0:
        return "today"
    return "1 day ago" if d == 1 else f"{d} days ago"


def _stop(lead: Any) -> tuple[str, str] | None:
    raw = _get(lead, "sequence_stopped_at")  # a recorded stop first: it says why and when
    if raw not in (None, ""):
        stopped_at = _when(raw)
        why = _get(lead, "stop_reason") or "no reason recorded"
        at = f" at {iso(stopped_at)}" if stopped_at else ""
        return f"sequence stopped ({why}){at}", "sequence_stopped_at"
    status = str(_get(lead, "status", "") or "").strip().lower()
    if stops_sequence(status):
        return f"status is '{status}'", "status"
    dq = _get(lead, "disqualified_reason")
    if dq:
        return f"disqualified: {dq}", "disqualified_reason"
    return None


def stop_reason(lead: Any) -> str | None:
    """Why a lead must get no further step, or None."""
    hit = _stop(lead)
    return hit[0] if hit else None


def _routing(cfg: Any) -> tuple[int, int]:
    inner = _get(cfg, "routing")  # a Pack, or a mapping holding pack.json's "routing"
    if inner is not None:
        cfg = inner
    warm = _get(cfg, "warm_window_days")
    ghost = _get(cfg, "ghost_after_days")
    if not isinstance(warm, int) or not isinstance(ghost, int) or warm < 1 or ghost < warm:
        raise ValueError(f"router settings need warm_window_days >= 1 and ghost_after_days >= warm_window_days, "
                         f"got {warm!r} and {ghost!r}")
    return warm, ghost


def route(lead: Any, now: datetime, cfg: Any) -> Route:
    """The sequence for a lead at ``now`` (see the module docstring for the rules)."""
    warm_days, ghost_days = _routing(cfg)
    now = as_utc(now)
    stop = _stop(lead)
    if stop:
        return Route(STOPPED, stop[0], stop[1])

    latest: tuple[datetime, str, str] | None = None
    for attr, label in SIGNALS:
        at = _when(_get(lead, attr))
        if at is not None and (latest is None or at > latest[0]):
            latest = (at, attr, label)

    if latest is not None:
        at, attr, label = latest
        age = max(now - at, timedelta(0))
        if age <= timedelta(days=warm_days):
            return Route("warm", f"{label} {_days(age)} (within the {warm_days}-day warm window)", attr, at)
        if age > timedelta(days=ghost_days):
            return Route("ghost", f"engaged before ({label} {_days(age)}) but silent for more than {ghost_days} "
                                  f"days", attr, at)
        return Route("warm", f"{label} {_days(age)}: outside the {warm_days}-day warm window but not yet silent "
                             f"for {ghost_days} days", attr, at)

    status = str(_get(lead, "status", "") or "").strip().lower()
    if status == LeadStatus.WARM:  # (a hot lead is stopped above)
        return Route("warm", f"identified website visitor (status '{status}')", "status")
    visits = _get(lead, "website_visits", 0)
    if isinstance(visits, int) and not isinstance(visits, bool) and visits > 0:
        return Route("warm", f"identified website visitor ({visits} visit{'s' if visits != 1 else ''})",
                     "website_visits")
    return Route("cold", "no engagement recorded")


def next_step(lead: Any, sequence_cfg: Any, last_step: int, last_sent_at: datetime | None,
              now: datetime) -> NextStep | None:
    """The step after ``last_step`` (0: nothing sent yet) and when it is due, or None when the lead is stopped or
    the sequence is finished.

    ``sequence_cfg`` is a ``SequenceConfig`` (``pack.sequence("cold")``) or anything with ``name`` and ``steps``
    (each with ``step``, ``kind``, ``delay_days``). The first step is due at ``now``; a later one ``delay_days``
    after ``last_sent_at`` (required once a step was sent). ``lead`` may be None to skip the stop check.
    """
    if lead is not None and stop_reason(lead):
        return None
    now = as_utc(now)
    name = str(_get(sequence_cfg, "name", ""))
    steps = sorted(_get(sequence_cfg, "steps", ()) or (), key=lambda s: _get(s, "step", 0))
    if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < 0:
        raise ValueError(f"last_step must be a whole number >= 0, got {last_step!r}")
    nxt = next((s for s in steps if _get(s, "step", 0) > last_step), None)
    if nxt is None:
        return None
    delay = int(_get(nxt, "delay_days", 0))
    if last_step == 0:
        due_at = now + timedelta(days=delay)
    else:
        sent = _when(last_sent_at)
        if sent is None:
            raise ValueError(f"last_sent_at is required after step {last_step} of sequence '{name}'")
        due_at = sent + timedelta(days=delay)
    return NextStep(name, int(_get(nxt, "step")), str(_get(nxt, "kind", "")), delay, due_at, due_at <= now)
