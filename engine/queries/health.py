"""Component health, measured: is the database reachable and migrated, is a worker running, is the webhook
receiver up, did the scheduler (`alpha daily run`) run lately?

Running components leave a heartbeat (table ``heartbeat``, one row per component and process): the worker from
its loop, the webhook receiver every ``RECEIVER_EVERY`` seconds while it serves, the scheduler once per daily run
with its summary. ``component_health`` reads them and answers, per component, ``{"ok", "state", "detail",
"seen_at"}``: ``state`` is one of ok, stale, down, not_configured, sandbox, unknown, warn, and only ``ok`` is ok.
The detail says what to do about it. Reading health never raises: an unreachable database is reported as down.

Where sends go is the worker's to say, not the reader's: each worker's heartbeat carries its own executor mode
(``App.executor_mode()``: LIVE GHL, the local GHL sandbox at a URL, or the sandbox executor), and
``sending_mode`` compares what the running workers report with each other and with the reading process's own
configuration (the console, `alpha status`).
"""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta
from typing import Callable, Mapping, Protocol

from sqlmodel import col, delete

from engine.adapters.executors import Executor
from engine.adapters.ports import Configured
from engine.core.clock import as_utc, duration_text, iso, system_clock

OK, STALE, DOWN, NOT_CONFIGURED, SANDBOX, UNKNOWN = "ok", "stale", "down", "not_configured", "sandbox", "unknown"
WARN = "warn"  # look at the detail: e.g. the running workers do not send where this process would
STATES = (OK, STALE, DOWN, NOT_CONFIGURED, SANDBOX, UNKNOWN, WARN)

WORKER, RECEIVER, SCHEDULER = "worker", "webhook_receiver", "scheduler"
COMPONENTS = (WORKER, RECEIVER, SCHEDULER)

WORKER_INTERVAL = 5.0        # `alpha worker --interval` default: the worker beats about once per interval
WORKER_SLACK = timedelta(seconds=60)  # one long pass over the queue is not a dead worker
RECEIVER_EVERY = 10.0        # the receiver beats this often while it serves
RECEIVER_FRESH = timedelta(seconds=45)
DAILY_FRESH = timedelta(hours=26)  # a daily run a day (and a bit) ago is on schedule
FORGET_AFTER = timedelta(days=7)   # heartbeat rows of processes silent this long are deleted
# A sign of life dated further ahead than this (a host whose clock runs ahead, a row written by hand) is no
# evidence that anything runs now: its "age" is negative, so it would look fresh until that time came.
FUTURE_SKEW = timedelta(seconds=30)


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(store, component: str, info: dict | None = None, now: datetime | None = None) -> None:
    """Record a sign of life of ``component`` from this process (upsert of heartbeat(component, instance))."""
    from engine.adapters.models import Heartbeat

    now = as_utc(now or system_clock())
    inst = instance_id()
    with store.write_plain() as s:
        row = s.get(Heartbeat, (component, inst))
        if row is None:  # a process's first beat: forget processes of this component silent for a week
            s.exec(delete(Heartbeat).where(col(Heartbeat.component) == component,
                                           col(Heartbeat.beat_at) < now - FORGET_AFTER))
            s.add(Heartbeat(component=component, instance=inst, started_at=now, beat_at=now, info=info or {}))
        else:
            row.beat_at = now
            row.info = dict(info or {})
            s.add(row)


def mark_stopped(store, component: str, now: datetime | None = None) -> None:
    """This process's ``component`` stopped cleanly: keep its last beat, note when it stopped."""
    from engine.adapters.models import Heartbeat

    now = as_utc(now or system_clock())
    with store.write_plain() as s:
        row = s.get(Heartbeat, (component, instance_id()))
        if row is not None:
            row.info = {**(row.info or {}), "stopped_at": iso(now)}
            s.add(row)


class Beater:
    """Beat at most once per ``every`` seconds; errors are swallowed (health reporting never stops the work).
    ``__call__`` is cheap enough to run on every loop iteration."""

    def __init__(self, store, component: str, every: float, info: dict | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store, self.component, self.every, self.info = store, component, every, dict(info or {})
        self._mono = monotonic
        self._last: float | None = None
        self.error: str | None = None

    def __call__(self, force: bool = False) -> bool:
        t = self._mono()
        if not force and self._last is not None and t - self._last < self.every:
            return False
        self._last = t  # a failed beat is retried at the next interval, not on every iteration
        try:
            beat(self.store, self.component, self.info)
            self.error = None
            return True
        except Exception as e:  # noqa: BLE001 - a database outage is the worker's to handle, not the beat's
            self.error = f"{type(e).__name__}: {e}"
            return False


def _latest_heartbeats(s, component: str) -> list:
    from sqlmodel import select

    from engine.adapters.models import Heartbeat

    return list(s.exec(select(Heartbeat).where(Heartbeat.component == component)
                       .order_by(col(Heartbeat.beat_at).desc())).all())


_ago = duration_text


def _entry(state: str, detail: str, seen: datetime | None = None, **extra) -> dict:
    return {"ok": state == OK, "state": state, "detail": detail, "seen_at": iso(seen), **extra}


def _split_future(rows: list, now: datetime) -> tuple[list, list]:
    """(rows whose last beat is not in the future, rows dated more than FUTURE_SKEW ahead of ``now``)."""
    future = [r for r in rows if as_utc(r.beat_at) - now > FUTURE_SKEW]
    return [r for r in rows if r not in future], future


def _future(what: str, row_or_at, now: datetime, fix: str, **extra) -> dict:
    """Not ok: the newest sign of life of ``what`` is dated in the future, so it proves nothing."""
    at = as_utc(row_or_at if isinstance(row_or_at, datetime) else row_or_at.beat_at)
    where = "" if isinstance(row_or_at, datetime) else f" by {row_or_at.instance}"
    return _entry(UNKNOWN, f"{what} is dated {_ago(at - now)} in the future (written{where} with a clock ahead of "
                           f"this one): no evidence that it runs now; fix the clock (NTP), then {fix}", at, **extra)


def latest_receiver_url(store) -> str | None:
    """The URL of the most recent webhook receiver heartbeat (None when no receiver ever ran here)."""
    try:
        with store.read() as s:
            rows = _latest_heartbeats(s, RECEIVER)
    except Exception:  # noqa: BLE001 - no heartbeat table yet, or no database: the caller uses its default
        return None
    for r in rows:
        url = (r.info or {}).get("url")
        if url:
            return str(url)
    return None


def _worker(rows: list, now: datetime) -> dict:
    rows, future = _split_future(rows, now)
    out = _worker_now(rows, now)
    if future and not out["ok"]:
        return _future("the last worker heartbeat", future[0], now, "restart `alpha worker`",
                       instance=future[0].instance)
    return out


def _worker_now(rows: list, now: datetime) -> dict:
    if not rows:
        return _entry(DOWN, "no worker has run: start `alpha worker` (approved and queued sends wait until one "
                            "runs)")
    live = [r for r in rows if not (r.info or {}).get("stopped_at")]
    best = live[0] if live else rows[0]
    seen = as_utc(best.beat_at)
    age = now - seen
    interval = float((best.info or {}).get("interval") or WORKER_INTERVAL)
    limit = timedelta(seconds=3 * interval) + WORKER_SLACK
    fresh = [r for r in live if now - as_utc(r.beat_at) <= limit]
    n = len(fresh)
    if live and age <= limit:
        return _entry(OK, f"{n} worker{'s' if n != 1 else ''} running (last heartbeat {_ago(age)} ago, "
                          f"every {interval:g} s)", seen, instance=best.instance, workers=n,
                      running=[_reported_mode(r) for r in fresh])
    if not live:
        return _entry(DOWN, f"the worker stopped {_ago(age)} ago ({best.instance}): start `alpha worker`", seen,
                      instance=best.instance)
    return _entry(STALE, f"no worker heartbeat for {_ago(age)} (expected every {interval:g} s): the worker on "
                         f"{best.instance} is stuck or gone; restart `alpha worker`", seen, instance=best.instance)


def _reported_mode(row) -> dict:
    """What a running worker's heartbeat says it sends through (``info["sending"]``, App.executor_mode)."""
    sent = (row.info or {}).get("sending")
    if isinstance(sent, dict) and sent.get("mode") in ("LIVE", "SANDBOX"):
        return {"instance": row.instance, "mode": str(sent["mode"]), "executor": sent.get("executor"),
                "ghl_url": sent.get("ghl_url"), "label": str(sent.get("label") or sent["mode"])}
    return {"instance": row.instance, "mode": UNKNOWN.upper(), "executor": None, "ghl_url": None,
            "label": "UNKNOWN (the worker does not report where it sends: an older version? restart it)"}


def _mode_key(m: Mapping) -> tuple:
    return (m.get("mode"), m.get("executor"), m.get("ghl_url"))


def sending_mode(configured: Mapping, worker: Mapping) -> dict:
    """Where sends go: what the running workers report (``worker``: the worker entry of component_health),
    against ``configured``, this process's own App.executor_mode(). Answers {"mode", "state", "label", "detail",
    "live", "configured", "workers"}; ``state``:

    - ``ok``: every running worker sends where this process would; ``mode`` is that mode;
    - ``differs``: the workers disagree with each other or with this process; ``mode`` is the workers' mode when
      they share one, else MIXED;
    - ``not_running``: no worker runs (nothing is sent): ``mode`` is the configured one, marked as not running;
    - ``unknown``: whether a worker runs cannot be read.

    ``live``: whether a send may reach a real inbox (a running worker is LIVE; with none, the configured mode)."""
    conf = {k: configured.get(k) for k in ("mode", "executor", "ghl_url", "label")}
    here = str(conf.get("label") or conf.get("mode"))
    cmode = str(conf.get("mode") or UNKNOWN.upper())
    workers = [dict(w) for w in (worker.get("running") or [])]
    base = {"configured": conf, "workers": workers}
    if not workers:
        if worker.get("state") == UNKNOWN:
            return {**base, "mode": cmode, "state": UNKNOWN, "live": cmode == "LIVE",
                    "label": f"{cmode}, workers unknown",
                    "detail": f"configured here: {here}; whether a worker runs, and where it sends, is unknown "
                              f"({worker.get('detail') or 'no worker health'})"}
        return {**base, "mode": cmode, "state": "not_running", "live": cmode == "LIVE",
                "label": f"{cmode}, not running",
                "detail": f"configured here: {here}; no worker is running, so nothing is sent (start `alpha "
                          "worker`; it reports where it sends)"}
    live = any(w.get("mode") == "LIVE" for w in workers)
    groups: dict[tuple, list[dict]] = {}
    for w in workers:
        groups.setdefault(_mode_key(w), []).append(w)
    n = len(workers)
    if len(groups) == 1 and _mode_key(conf) in groups:
        return {**base, "mode": cmode, "state": OK, "live": live, "label": cmode,
                "detail": f"{here}: {n} running worker{'s' if n != 1 else ''} send{'' if n != 1 else 's'} there, "
                          "as configured here"}
    modes = {w["mode"] for w in workers}
    mode = modes.pop() if len(modes) == 1 else "MIXED"
    said = "; ".join(f"{ws[0]['label']} ({', '.join(w['instance'] for w in ws)})" for ws in groups.values())
    if len(groups) == 1:
        label = f"{mode} by the worker{'s' if n != 1 else ''}, {cmode} here"
        detail = (f"the running worker{'s' if n != 1 else ''} send{'' if n != 1 else 's'} through {said}, but this "
                  f"process is configured for {here}: check GHL_API_KEY, GHL_LOCATION_ID and GHL_BASE_URL of both")
    else:
        label = f"{mode}: the workers differ"
        detail = (f"the running workers do not send to the same place: {said}; configured here: {here}. Give every "
                  "worker the same GHL_API_KEY, GHL_LOCATION_ID and GHL_BASE_URL")
    return {**base, "mode": mode, "state": "differs", "live": live, "label": label, "detail": detail}


def _receiver(rows: list, now: datetime) -> dict:
    rows, future = _split_future(rows, now)
    out = _receiver_now(rows, now)
    if future and not out["ok"]:
        return _future("the last webhook receiver heartbeat", future[0], now, "restart `alpha webhooks serve`",
                       url=(future[0].info or {}).get("url") or "unknown address")
    return out


def _receiver_now(rows: list, now: datetime) -> dict:
    if not rows:
        return _entry(DOWN, "no webhook receiver has run: start it with `alpha webhooks serve` (or `alpha up`); "
                            "replies, bounces and unsubscribes are not received meanwhile")
    live = [r for r in rows if not (r.info or {}).get("stopped_at")]
    best = live[0] if live else rows[0]
    seen = as_utc(best.beat_at)
    age = now - seen
    url = (best.info or {}).get("url") or "unknown address"
    if live and age <= RECEIVER_FRESH:
        return _entry(OK, f"receiving at {url} (last heartbeat {_ago(age)} ago)", seen, url=url)
    if not live:
        return _entry(DOWN, f"the webhook receiver at {url} stopped {_ago(age)} ago: start `alpha webhooks serve`",
                      seen, url=url)
    return _entry(DOWN, f"no heartbeat from the webhook receiver at {url} for {_ago(age)}: it is stopped or "
                        "stuck; restart `alpha webhooks serve`", seen, url=url)


def _scheduler(s, rows: list, now: datetime) -> dict:
    from sqlmodel import select

    from engine.adapters.models import CheckRun

    last, summary = None, None
    if rows:
        last, summary = as_utc(rows[0].beat_at), rows[0].info or {}
    run = s.exec(select(CheckRun).where(CheckRun.kind == "daily")
                 .order_by(col(CheckRun.at).desc(), col(CheckRun.id).desc())).first()
    if run is not None and run.at is not None and (last is None or as_utc(run.at) > last):
        last, summary = as_utc(run.at), ((run.results or [{}])[0] or {})
    if last is None:
        return _entry(UNKNOWN, "no daily run recorded: run `alpha daily run` (schedule it once a day, e.g. cron)")
    age = now - last
    if -age > FUTURE_SKEW:
        return _future("the last daily run", last, now, "run `alpha daily run`")
    what = ""
    if isinstance(summary, dict) and summary.get("leads") is not None:
        what = f": {summary.get('leads')} leads"
    if age <= DAILY_FRESH:
        return _entry(OK, f"last daily run {_ago(age)} ago{what}", last)
    return _entry(STALE, f"the last daily run was {_ago(age)} ago{what}: is the daily schedule (cron) running "
                         "`alpha daily run`?", last)


_HEADS: dict[str, str] = {}


def _head_revision(store) -> str:
    """The code's newest migration (read from disk once per process: it does not change while running)."""
    from engine.adapters.db import MIGRATIONS_DIR

    key = str(MIGRATIONS_DIR)
    if key not in _HEADS:
        _HEADS[key] = store.head_revision()
    return _HEADS[key]


class Observed(Configured, Protocol):
    """What the health view reads of the engine (engine.app.App): store, settings and clock, the executors and
    where this process would send (executor_mode: LIVE or SANDBOX, executor, GHL URL)."""

    @property
    def executors(self) -> Mapping[str, Executor]: ...

    def executor_mode(self) -> dict: ...


def component_health(app: Observed, now: datetime | None = None) -> dict[str, dict]:
    """Every component's measured health: database, schema, worker, webhook_receiver, scheduler (and the
    configuration and the sending executor). Never raises."""
    now = as_utc(now or app.clock())
    store = app.store
    out: dict[str, dict] = {}
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
    except Exception as e:  # noqa: BLE001 - unreachable is an answer, not an error
        first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        out["database"] = _entry(DOWN, f"cannot reach the database {store.display_url}: {first}",
                                 url=store.display_url, dialect=store.dialect)
        why = "unknown while the database is unreachable"
        out["schema"] = _entry(UNKNOWN, why)
        for c in COMPONENTS:
            out[c] = _entry(UNKNOWN, why)
        _static(app, out)
        return out
    out["database"] = _entry(OK, f"reachable ({store.dialect}) at {store.display_url}", now,
                             url=store.display_url, dialect=store.dialect)
    try:
        current, head = store.current_revision(), _head_revision(store)
        if current is None:
            out["schema"] = _entry(DOWN, "the database is not initialised: run `alpha init`", current=None,
                                   head=head)
        elif current != head:
            out["schema"] = _entry(STALE, f"the schema is at {current}, the code needs {head}: run `alpha init`",
                                   current=current, head=head)
        else:
            out["schema"] = _entry(OK, f"migrated (revision {current})", now, current=current, head=head)
    except Exception as e:  # noqa: BLE001
        out["schema"] = _entry(UNKNOWN, f"cannot read the schema revision: {type(e).__name__}: {e}")
    try:
        with store.read() as s:
            out[WORKER] = _worker(_latest_heartbeats(s, WORKER), now)
            out[RECEIVER] = _receiver(_latest_heartbeats(s, RECEIVER), now)
            out[SCHEDULER] = _scheduler(s, _latest_heartbeats(s, SCHEDULER), now)
    except Exception as e:  # noqa: BLE001 - e.g. a schema without the heartbeat table
        why = f"cannot read heartbeats ({type(e).__name__}): run `alpha init`"
        for c in COMPONENTS:
            out.setdefault(c, _entry(UNKNOWN, why))
    _static(app, out)
    return out


def _static(app: Observed, out: dict) -> None:
    """The configuration (loaded, or the engine would not exist) and where sends go."""
    out["config"] = _entry(OK, f"loaded from {app.settings.config_dir}", dir=str(app.settings.config_dir))
    try:
        executor = app.executors["email"]
        sending = sending_mode(app.executor_mode(), out.get(WORKER) or {})
    except Exception as e:  # noqa: BLE001
        out["executor"] = _entry(UNKNOWN, f"cannot tell where sends go: {e}")
        return
    extra = {"name": executor.name, "live": sending["live"], "mode": sending["mode"]}
    if sending["state"] == "differs":
        out["executor"] = _entry(WARN, sending["detail"], **extra)
    elif sending["state"] != OK:  # nothing is sent, or whether anything is cannot be told
        out["executor"] = _entry(SANDBOX if sending["mode"] == "SANDBOX" else UNKNOWN, sending["detail"], **extra)
    elif sending["mode"] == "LIVE":
        out["executor"] = _entry(OK, f"sends go to {sending['configured']['label']}, by every running worker",
                                 **extra)
    else:
        out["executor"] = _entry(SANDBOX, f"sends go to {sending['configured']['label']}: nothing reaches a real "
                                          "inbox", **extra)
