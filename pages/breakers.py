"""Circuit breakers (ops, admin): a live card per external API, the state timeline from the audit trail, and
force open / force close with a required reason behind a confirmation dialog."""
from __future__ import annotations

import html
from datetime import datetime, timedelta

import plotly.graph_objects as go
import streamlit as st

from console.auth import still_signed_in
from console.runtime import get_app, md_escape, reason_and_confirm, require_role
from console.widgets import browser_zone, clock_time, local_rows, local_time
from engine.queries import audit_log
from engine.core.clock import as_utc, parse_iso

require_role("ops", "admin")
app = get_app()

EVENTS = ("breaker.transition", "breaker.forced")
STATES = ("CLOSED", "HALF_OPEN", "OPEN")
COLORS = {"CLOSED": "#2e7d32", "HALF_OPEN": "#f9a825", "OPEN": "#c62828"}
BADGE = {"CLOSED": ":green-background[CLOSED]", "HALF_OPEN": ":orange-background[**HALF OPEN**]",
         "OPEN": ":red-background[**OPEN**]"}
WINDOWS = {"last 24 hours": timedelta(hours=24), "last 7 days": timedelta(days=7), "last 30 days": timedelta(days=30)}
TIMELINE_LIMIT = 500

st.title("Circuit breakers")
st.caption("One breaker per external API. CLOSED lets calls through; OPEN refuses them (sends defer with "
           "`BREAKER_OPEN`) until the recovery timeout, then HALF OPEN lets one trial call through. A forced OPEN "
           "stays open until a person closes it. Cards refresh every 5 seconds.")


def _when(dt: datetime | None, now: datetime) -> str:
    """Local readable time and how far away: ``Sun 6 Dec 14:05:03 CET (3 min ago)`` or ``(in 40 s)``."""
    if dt is None:
        return "-"
    dt = as_utc(dt)
    secs = int((dt - now).total_seconds())
    ago = abs(secs)
    span = f"{ago // 86400} d" if ago >= 86400 else f"{ago // 3600} h" if ago >= 3600 else \
        f"{ago // 60} min" if ago >= 60 else f"{ago} s"
    return f"{local_time(dt, with_seconds=True)} ({'in ' + span if secs > 0 else span + ' ago'})"


def _local(dt: datetime) -> datetime:
    """A UTC time as the viewer's wall-clock time, for plotly (which draws a datetime's wall clock as it is)."""
    return as_utc(dt).astimezone(browser_zone()).replace(tzinfo=None)


def _ask(name: str, target: str) -> None:
    st.session_state["breaker_pending"] = {"name": name, "state": target}
    st.session_state.pop("breaker_reason", None)


@st.fragment(run_every=5)
def cards() -> None:
    if not still_signed_in():  # a tab whose session has ended shows the login page, not live cards
        return
    now = app.clock()
    rows = app.breakers.list()
    cols = st.columns(3)
    for i, b in enumerate(rows):
        cfg = app.breakers.cfg(b.name)
        with cols[i % 3].container(border=True):
            st.markdown(f"#### {md_escape(b.name)} {BADGE.get(b.state, b.state)}"
                        + (" :orange-badge[forced]" if b.forced else ""))
            m1, m2 = st.columns(2)
            m1.metric("Consecutive failures", b.consecutive_failures, help=f"opens at {cfg.failure_threshold}")
            m2.metric("Recovery timeout", f"{cfg.recovery_timeout_seconds} s",
                      help=f"closes again after {cfg.success_threshold} successful trial call(s)")
            if b.state == "OPEN" and b.forced:
                retry = "never by itself: forced open, a person must close it"
            elif b.state == "OPEN":
                retry = _when(b.retry_at, now)
            else:
                retry = "-"
            st.markdown(f"**Opened at:** {_when(b.opened_at, now) if b.state != 'CLOSED' else '-'}  \n"
                        f"**Retry at:** {retry}  \n"
                        f"**Last failure:** {_when(b.last_failure_at, now)}  \n"
                        f"**Last success:** {_when(b.last_success_at, now)}")
            if b.last_error:
                st.caption("Last error")
                st.code(b.last_error, language=None, wrap_lines=True)  # provider text: shown as text only
            else:
                st.caption("Last error: none recorded")
            c1, c2 = st.columns(2)
            if c1.button("Force open", key=f"force_open_{b.name}", disabled=b.state == "OPEN" and b.forced,
                         width="stretch", help="Refuse every call to this API until a person closes it"):
                _ask(b.name, "OPEN")
                st.rerun()  # the whole page: the confirmation dialog lives outside this fragment
            if c2.button("Force close", key=f"force_close_{b.name}", disabled=b.state == "CLOSED",
                         width="stretch", help="Let calls through again"):
                _ask(b.name, "CLOSED")
                st.rerun()
    st.caption(f"Checked {clock_time(now)} (refreshes every 5 s).")


def _clear() -> None:
    st.session_state.pop("breaker_pending", None)
    st.session_state.pop("breaker_reason", None)


@st.dialog("Confirm circuit breaker change", dismissible=False)
def _confirm(name: str, target: str) -> None:
    cfg = app.breakers.cfg(name)
    if target == "OPEN":
        st.markdown(f"Force **{name}** OPEN? Every call to {name} is refused (sends defer with `BREAKER_OPEN`) "
                    "until a person closes it again.")
    else:
        st.markdown(f"Force **{name}** CLOSED? Calls to {name} go through again; {cfg.failure_threshold} "
                    "failures in a row open it again.")
    outcome = reason_and_confirm(f"Force {target.lower()}", "breaker", app.breakers.force, name, target)
    if outcome:
        _clear()
        if outcome == "done":
            st.session_state["breaker_flash"] = f"{name} forced {target}."
        st.rerun()


cards()
pending = st.session_state.get("breaker_pending")
if pending:
    _confirm(pending["name"], pending["state"])
if st.session_state.get("breaker_flash"):
    st.success(st.session_state.pop("breaker_flash"))

# ------------------------------------------------------------------------------------------ timeline

st.divider()
st.subheader("State timeline")
span_label = st.selectbox("Window", list(WINDOWS), key="timeline_window")
now = app.clock()
since = now - WINDOWS[span_label]
flt = audit_log.AuditFilter.of(events=EVENTS, since=since)
page = audit_log.search(app, flt, limit=TIMELINE_LIMIT)
events = list(reversed(page["rows"]))  # oldest first
if page["next_before_seq"] is not None:
    st.warning(f"More than {TIMELINE_LIMIT} breaker changes in the {span_label}: the timeline starts at the oldest "
               f"of the newest {TIMELINE_LIMIT} ({local_time(events[0]['at'])}). The Audit log page lists them all.")


def _segments(current: dict[str, str]) -> list[dict]:
    """Per breaker: (state, start, end, what started it) from the changes, oldest first."""
    out = []
    for name, state_now in current.items():
        mine = [e for e in events if e["ref"] == name]
        start = parse_iso(mine[0]["at"]) if page["next_before_seq"] is not None and mine else since
        state = (mine[0]["data"].get("before") if mine else None) or state_now
        why = "state at the start of the window"
        for e in mine:
            at = parse_iso(e["at"])
            if at > start:
                out.append({"breaker": name, "state": state, "start": start, "end": at, "why": why})
            d = e["data"]
            state, start = d.get("after") or e["status"] or state, max(at, start)
            forced = "forced by " if e["event"] == "breaker.forced" else "by "
            why = f"{forced}{e['actor']}: {d.get('reason') or d.get('last_error') or ''}"
        out.append({"breaker": name, "state": state, "start": start, "end": now, "why": why})
    return out


current = {b.name: b.state for b in app.breakers.list()}
segs = _segments(current)
fig = go.Figure()
for state in STATES:
    mine = [s for s in segs if s["state"] == state]
    if not mine:
        continue
    fig.add_trace(go.Bar(
        name=state, orientation="h", y=[s["breaker"] for s in mine],
        base=[_local(s["start"]) for s in mine],
        x=[(s["end"] - s["start"]).total_seconds() * 1000 for s in mine],
        marker_color=COLORS[state],
        customdata=[[local_time(s["start"]), local_time(s["end"]), html.escape(s["why"][:200])] for s in mine],
        hovertemplate="%{y}: " + state + "<br>%{customdata[0]} to %{customdata[1]}<br>%{customdata[2]}"
                      "<extra></extra>"))
if events:  # a marker per change, so an OPEN of a few minutes still shows in a week-long window
    fig.add_trace(go.Scatter(
        name="change", mode="markers", y=[e["ref"] for e in events], x=[_local(parse_iso(e["at"])) for e in events],
        marker={"symbol": "diamond", "size": 10, "line": {"width": 1, "color": "#000"},
                "color": [COLORS.get(e["data"].get("after") or e["status"], "#777") for e in events]},
        customdata=[[e["data"].get("before") or "?", e["data"].get("after") or e["status"],
                     ("forced by " if e["event"] == "breaker.forced" else "by ") + e["actor"],
                     html.escape(str(e["data"].get("reason") or ""))[:200]] for e in events],
        hovertemplate="%{y}: %{customdata[0]} -> %{customdata[1]} at %{x|%a %-d %b %H:%M:%S}<br>"
                      "%{customdata[2]}<br>%{customdata[3]}<extra></extra>"))
fig.update_layout(barmode="overlay", xaxis={"type": "date", "range": [_local(since), _local(now)],
                                            "title": f"time ({local_time(now).rsplit(' ', 1)[-1]})"},
                  height=60 + 40 * len(current),
                  margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h", "y": -0.25},
                  yaxis={"categoryorder": "array", "categoryarray": list(reversed(current))})
st.plotly_chart(fig, key="breaker_timeline")

if events:
    st.dataframe(local_rows(({"at": e["at"], "breaker": e["ref"], "from": e["data"].get("before"),
                   "to": e["data"].get("after") or e["status"],
                   "how": "forced" if e["event"] == "breaker.forced" else "automatic", "by": e["actor"],
                   "reason": e["data"].get("reason") or "", "last error": e["data"].get("last_error") or ""}
                             for e in reversed(events)), "at"), hide_index=True, width="stretch", key="breaker_changes")
else:
    st.info(f"No breaker changes in the {span_label}: every breaker kept its state. A breaker opens by itself "
            "after repeated failures of its API; `alpha breakers open NAME --reason ...` (or the buttons above) "
            "forces one.")
