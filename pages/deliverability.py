"""Deliverability (ops, admin): sends per day against the effective daily cap and the warm-up plan, bounce and
complaint rates against the domain-health thresholds, health per sending domain, cooling and pause events."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from console.runtime import get_app, require_role, run_action
from console.widgets import local_rows, local_time, stamp
from engine.queries import deliverability as dv

require_role("ops", "admin")
app = get_app()

st.title("Deliverability")

# Colours carry meaning: green healthy, orange near the cooling threshold, red only below it (cooling).
HEALTHY, NEAR, DANGER, NEUTRAL = "#15803d", "#d97706", "#b91c1c", "#374151"
NEAR_MARGIN = 10  # points above the recovery threshold that still count as "near the threshold"


def health_band(d: dict) -> tuple[str, str]:
    """(word, colour) of a domain's health score against its thresholds."""
    if d["cooling"] or d["score"] < d["cooling_threshold"]:
        return "below the threshold: cooling", DANGER
    if d["score"] < d["recovery_threshold"] + NEAR_MARGIN:
        return "near the threshold", NEAR
    return "healthy", HEALTHY


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}%}"


# ------------------------------------------------------------------------------------------ window

default = dv.window(app)
c1, c2 = st.columns([2, 3])
picked = c1.date_input("Days (in the limits' time zone)", value=(default.start, default.end),
                       max_value=default.end, key="dv_window", help=f"Default: the last {dv.DEFAULT_DAYS} days. "
                       f"At most {dv.MAX_DAYS} days at a time.")
if isinstance(picked, (tuple, list)) and len(picked) == 2:
    start, end = picked
elif isinstance(picked, (tuple, list)) and len(picked) == 1:  # the second date is not picked yet
    start = end = picked[0]
else:
    start, end = default.start, default.end
ok, rep = run_action(dv.report, app, start=start, end=end)
if not ok:
    st.stop()
stamp(what="Figures")
daily, rates, doms = rep["daily"], rep["rates"], rep["domains"]
wu = rep["warmup"]
c2.caption(f"{rep['window']['start']} to {rep['window']['end']} ({rep['window']['days']} days, "
           f"{rep['window']['tz']}). Sends count what the daily cap counts (sending, sent, awaiting "
           "reconciliation); rates are bounces and complaints over messages sent in the window.")

# ------------------------------------------------------------------------------------------ headline

today = daily[-1]
total = rates["total"]
cooling = [d["domain"] for d in doms if d["cooling"]]
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Sent in window", total["sent"], border=True)
m2.metric(f"Last day ({today['day']})", f"{today['counted']} / {today['cap']}", border=True,
          help=f"binding cap: {today['binding']} (warm-up phase {today['warmup_phase']})")
m3.metric("Bounce rate", _pct(total["bounce_rate"]), border=True,
          delta=("over " if total["bounce_over"] else "within ") + _pct(rates["max_bounce_rate"]),
          delta_color="inverse" if total["bounce_over"] else "off", delta_arrow="off")
m4.metric("Complaint rate", _pct(total["complaint_rate"], 3), border=True,
          delta=("over " if total["complaint_over"] else "within ") + _pct(rates["max_complaint_rate"], 3),
          delta_color="inverse" if total["complaint_over"] else "off", delta_arrow="off")
m5.metric("Cooling domains", len(cooling), border=True, help=", ".join(cooling) or "none")
if cooling:
    st.error("Sending paused for cooling domain(s): " + ", ".join(cooling) + ". Their sends defer with "
             "`DOMAIN_COOLING` until the health score is back at the recovery threshold.")

# ------------------------------------------------------------------------------------------ sends vs cap

st.subheader("Sends per day against the cap")
days = [r["day"] for r in daily]
if total["sent"] == 0 and not any(r["counted"] for r in daily):
    st.info("No e-mail was sent in this window. Sends happen only in the assisted and autonomous phases with "
            "`email_behavior` set for live sending (`alpha phase show`); `alpha outbox process` sends what is due. "
            "Shadow runs (`alpha shadow run`) record would-be sends and send nothing.")
fig = go.Figure()
for status, color in (("sent", "#1565c0"), ("reconcile", "#ef6c00"), ("sending", "#90caf9")):
    ys = [r[status] for r in daily]
    if any(ys) or status == "sent":
        fig.add_trace(go.Bar(name=status if status != "reconcile" else "awaiting reconciliation", x=days, y=ys,
                             marker_color=color))
fig.add_trace(go.Scatter(name="effective daily cap", x=days, y=[r["cap"] for r in daily], mode="lines",
                         line={"shape": "hv", "color": NEUTRAL, "width": 2, "dash": "dot"},
                         customdata=[[r["warmup_phase"], r["binding"]] for r in daily],
                         hovertemplate="cap %{y} (warm-up phase %{customdata[0]}, %{customdata[1]})<extra></extra>"))
over = [r for r in daily if r["over_cap"]]
if over:
    fig.add_trace(go.Scatter(name="over the cap", x=[r["day"] for r in over], y=[r["counted"] for r in over],
                             mode="markers", marker={"symbol": "x", "size": 11, "color": "#000"}))
fig.update_layout(barmode="stack", height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                  legend={"orientation": "h", "y": -0.2}, yaxis_title="messages", xaxis={"type": "date"})
st.plotly_chart(fig, key="dv_sends")
if over:
    listed = ", ".join(r["day"] for r in over[-5:]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
    st.warning(f"{len(over)} day(s) above the effective cap: {listed}. The cap line uses today's daily_limit and "
               "warm-up plan, so a limit lowered since then (or sends outside the gateway) shows here.")
held = sum(r["held_cooling"] for r in daily)
if held:
    st.caption(f"{held} send(s) held back by a cooling sending domain in this window.")

# ------------------------------------------------------------------------------------------ warm-up

with st.container(border=True):
    st.markdown(f"**Warm-up plan**: {'on' if wu['enabled'] else 'off (the cap is daily_limit)'} · phase "
                f"{wu['phase']} of {wu['phases']} since {local_time(wu['started_at'])} · effective daily cap "
                f"{wu['effective_daily_cap']} ({wu['binding']}; daily_limit {rep['daily_limit']})")
    left, right = st.columns([3, 2])
    left.dataframe([{"phase": p["phase"], "": "current" if p["phase"] == wu["phase"] else "",
                     "daily cap": p["daily_cap"], "min days": p["min_days"], "min sends": p["min_sends"],
                     "max bounce rate": _pct(p["max_bounce_rate"]),
                     "max complaint rate": _pct(p["max_complaint_rate"], 3)} for p in rep["warmup_plan"]],
                   hide_index=True, width="stretch", key="dv_plan")
    right.dataframe([{"to advance": c["name"], "ok": "yes" if c["passed"] else "no", "now": c["detail"]}
                     for c in wu["criteria"]], hide_index=True, width="stretch", key="dv_criteria")
    if wu["last_phase"]:
        right.caption("Last phase: nothing to advance to.")
    elif wu["can_advance"]:
        right.success(f"Phase {wu['phase']} criteria met: `alpha warmup set {wu['phase'] + 1} --reason ...`")

# ------------------------------------------------------------------------------------------ rates

st.subheader("Bounce and complaint rates")
rf = make_subplots(rows=1, cols=2, subplot_titles=("bounce rate", "complaint rate"))
for col, (key, limit, color) in enumerate((("bounce_rate", rates["max_bounce_rate"], "#6a1b9a"),
                                           ("complaint_rate", rates["max_complaint_rate"], "#0e7490")), 1):
    rf.add_trace(go.Scatter(name=key.replace("_", " "), x=days, y=[r[key] for r in daily], mode="lines+markers",
                            line={"color": color}, connectgaps=False, showlegend=False), row=1, col=col)
    rf.add_trace(go.Scatter(name="domain-health maximum", x=[days[0], days[-1]], y=[limit, limit], mode="lines",
                            line={"dash": "dash", "color": NEAR}, showlegend=col == 1), row=1, col=col)
    rf.update_yaxes(tickformat=".1%" if key == "bounce_rate" else ".2%", rangemode="tozero", row=1, col=col)
rf.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": -0.25})
rf.update_xaxes(type="date")
st.plotly_chart(rf, key="dv_rates")
st.caption(f"Domain-health thresholds (config/production.json `domain_health`): bounces at most "
           f"{_pct(rates['max_bounce_rate'])}, complaints at most {_pct(rates['max_complaint_rate'], 3)}. "
           "Days without sends have no rate.")
st.dataframe([{"sending domain": r["domain"], "sent": r["sent"], "bounced": r["bounced"],
               "complained": r["complained"], "bounce rate": _pct(r["bounce_rate"]),
               "complaint rate": _pct(r["complaint_rate"], 3),
               "over threshold": ", ".join(k for k, v in (("bounces", r["bounce_over"]),
                                                           ("complaints", r["complaint_over"])) if v) or "no"}
              for r in [total, *rates["domains"]]], hide_index=True, width="stretch", key="dv_rates_table")

# ------------------------------------------------------------------------------------------ domain health

st.subheader("Domain health")
if doms:
    bands = [health_band(d) for d in doms]
    hf = go.Figure(go.Bar(
        x=[d["score"] for d in doms], y=[d["domain"] for d in doms], orientation="h",
        marker_color=[c for _, c in bands], text=[f"{d['score']:.1f} ({w})" for d, (w, _) in zip(doms, bands)],
        textposition="auto", hovertemplate="%{y}: %{x:.1f}<extra></extra>"))
    for x, name in ((doms[0]["cooling_threshold"], "cools below"), (doms[0]["recovery_threshold"], "resumes at")):
        hf.add_vline(x=x, line={"dash": "dash", "color": NEUTRAL, "width": 1},
                     annotation_text=f"{name} {x:g}", annotation_position="top")
    hf.update_layout(height=80 + 40 * len(doms), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                     xaxis={"range": [0, 100], "title": "health score"}, yaxis={"autorange": "reversed"})
    st.plotly_chart(hf, key="dv_health")
st.dataframe(local_rows(({"domain": d["domain"], "score": d["score"], "state": d["state"],
                          "health": health_band(d)[0], "why": d["reason"] or "",
                          "updated": d["updated_at"] or "", "configured sender": d["configured"]} for d in doms),
                        "updated"),
             hide_index=True, width="stretch", key="dv_domains",
             column_config={"score": st.column_config.NumberColumn("score", format="%.1f")})
if doms:
    st.caption(f"A domain cools below {doms[0]['cooling_threshold']:g} and resumes at "
               f"{doms[0]['recovery_threshold']:g}; bounces and complaints from GHL recompute its score "
               "(`alpha domains set DOMAIN SCORE --reason ...` sets one by hand).")

# ------------------------------------------------------------------------------------------ events

st.subheader("Cooling and pause events")
if rep["events"]:
    st.dataframe(local_rows(({"at": e["at"], "what": e["what"], "domain": e["ref"] or "",
                              "score": "" if e["score"] is None else f"{e['score']:g}",
                              "by": e["actor"], "reason": e["reason"] or ""} for e in rep["events"]), "at"),
                 hide_index=True, width="stretch", key="dv_events")
else:
    st.info("No cooling, kill switch, maintenance or warm-up changes in this window.")

with st.expander("Numbers per day"):
    st.dataframe([{"day": r["day"], "counted": r["counted"], "sent": r["sent"], "awaiting reconciliation":
                   r["reconcile"], "sending": r["sending"], "cap": r["cap"], "warm-up phase": r["warmup_phase"],
                   "bounced": r["bounced"], "complained": r["complained"], "held (cooling)": r["held_cooling"]}
                  for r in reversed(daily)], hide_index=True, width="stretch", key="dv_daily")
