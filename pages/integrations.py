"""Integrations & settings (ops, admin): integration health (`alpha verify`), the effective sending limits, the
approver roster, the messaging templates and their approval status, and whether the configuration files on
disk are valid. Read-only: nothing here changes the configuration (edit the files and restart the engine)."""
from __future__ import annotations

import streamlit as st

from console.runtime import get_app, require_role, run_action
from console.widgets import age, local_time, stamp, word
from engine.services.approvals import load_roster
from engine.core.config import load_settings
from engine.core.errors import ConfigError
from engine.rules.messaging import load_pack
from engine.core.clock import parse_iso
from engine.services.readiness import CLOCK_SKEW, VERIFY_FRESH, last_verify_run
from engine.services.verify import run_verify

require_role("ops", "admin")
app = get_app()
cdir = app.settings.config_dir

st.title("Integrations & settings")
st.caption(f"Configuration folder {cdir}. This page only reads it: change the files, check them with "
           "`alpha config-check`, then restart the engine and the console.")
stamp(what="Page")


def problems(e: ConfigError, what: str) -> None:
    st.error(f"{what} is invalid ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}):")
    st.code("\n".join(e.problems), language=None)


# ------------------------------------------------------------------------------------------ integration health

st.header("Integration health")
if st.button("Run verify now", key="run_verify", type="primary",
             help="Checks GHL, Slack (without sending a test message), the LLM chain, the webhook receiver and "
                  "the circuit breakers, and stores the result (readiness evidence for 24 h)."):
    with st.spinner("Checking the integrations..."):
        run_action(run_verify, app, send_slack=False)
last = last_verify_run(app)
if last is None:
    st.info("`alpha verify` has never run: press **Run verify now** or run it from the command line.")
    st.code("alpha verify", language="bash")
else:
    shown = (f"Last verify {'passed' if last['ok'] else 'FAILED'} at {local_time(last['at'], with_seconds=True)} "
             f"({age(last['at'])})")
    at = parse_iso(last["at"]) if last["at"] else None
    if not last["ok"]:
        st.error(shown + ": fix the failing checks below and run it again.")
    elif at is None or not -CLOCK_SKEW <= app.clock() - at <= VERIFY_FRESH:
        # green only while readiness counts it: a pass older than 24 h (or dated ahead) is no evidence now
        why = ("dated ahead of this clock" if at is not None and at - app.clock() > CLOCK_SKEW else
               f"older than {VERIFY_FRESH.total_seconds() / 3600:g} h")
        st.warning(shown + f": {why}, so it is no longer readiness evidence; run `alpha verify` again.")
    else:
        st.success(shown)
    checks = sorted(last["checks"], key=lambda c: c["status"] == "pass")  # what needs work first
    st.dataframe([{"integration": c["name"], "status": word(c["status"]),
                   "detail": c["reason"], "seconds": c.get("seconds")} for c in checks], hide_index=True,
                 width="stretch", key="verify_checks",
                 column_config={"detail": st.column_config.TextColumn(width="large")})

# ------------------------------------------------------------------------------------------ limits

st.header("Effective limits")
lim = app.settings.limits
wh = app.settings.production.working_hours
eb = app.settings.production.email_behavior
warm = app.control.warmup_status()
warm_cap = (f"{warm['daily_cap']} per day (warm-up phase {warm['phase']} of {warm['phases']})" if warm["enabled"]
            else "warm-up disabled")
st.dataframe([
    {"setting": "monthly limit", "value": f"{lim.monthly_limit} sends per calendar month",
     "key": "email_limits.monthly_limit"},
    {"setting": "daily limit", "value": f"{lim.daily_limit} sends per calendar day", "key": "email_limits.daily_limit"},
    {"setting": "warm-up cap", "value": warm_cap, "key": "warmup_plan.json"},
    {"setting": "effective daily cap",
     "value": f"{warm['effective_daily_cap']} per day (binding: "
              f"{'warm-up cap' if warm['binding'] == 'WARMUP_CAP' else 'daily limit'})", "key": "-"},
    {"setting": "hourly limit", "value": f"{lim.hourly_limit} sends in any 60 minutes",
     "key": "email_limits.hourly_limit"},
    {"setting": "per-domain hourly limit", "value": f"{lim.per_domain_hourly_limit} per recipient domain in any 60 "
                                                    "minutes", "key": "email_limits.per_domain_hourly_limit"},
    {"setting": "minimum delay", "value": f"{lim.min_delay_seconds} s between sends from one mailbox",
     "key": "email_limits.min_delay_seconds"},
    {"setting": "limits time zone", "value": lim.limits_timezone, "key": "email_limits.limits_timezone"},
    {"setting": "working hours", "value": f"{wh.start}-{wh.end} {', '.join(wh.days)} in the recipient's time zone "
                                          f"(default {wh.default_timezone})", "key": "working_hours"},
    {"setting": "email behaviour", "value": f"actually_send={str(eb.actually_send).lower()}, "
                                            f"shadow_mode={str(eb.shadow_mode).lower()}", "key": "email_behavior"},
    {"setting": "production writes", "value": "blocked" if app.settings.production.block_production_writes
     else "allowed", "key": "block_production_writes"},
], hide_index=True, width="stretch", height="content", key="limits")

# ------------------------------------------------------------------------------------------ roster

st.header("Approver roster")
try:
    roster = load_roster(cdir)
except ConfigError as e:
    problems(e, f"{cdir / 'approvers.json'}")
else:
    st.dataframe([{"action type": name, "group": e.group, "primary": e.primary, "backup": e.backup,
                   "SLA (min)": e.sla_minutes, "expires after (min)": e.expire_minutes,
                   "coverage": f"{', '.join(e.coverage.days)} {e.coverage.start}-{e.coverage.end} "
                               f"{e.coverage.timezone}",
                   "escalation": ", ".join(e.escalation_contacts) or "-"}
                  for name, e in roster.action_types.items()], hide_index=True, width="stretch", key="roster")
    st.caption("An SLA breach escalates to the backup (and the escalation contacts); past its expiry an item "
               "becomes expired, never approved.")

# ------------------------------------------------------------------------------------------ templates

st.header("Messaging templates")
try:
    pack = load_pack(cdir)
except ConfigError as e:
    problems(e, "The messaging pack")
else:
    drafts = [t.id for t in pack.templates if t.status != "approved"]
    st.caption(f"Pack version {pack.version}: {len(pack.templates)} templates, {len(drafts)} not approved.")
    if drafts:
        st.warning(f"{len(drafts)} template(s) are drafts and are never used for a send: "
                   f"{', '.join(drafts)}. Set their status to approved in templates/pack.json once signed off.")
    st.dataframe([{"id": t.id, "version": t.version, "status": t.status, "sequence": t.sequence, "kind": t.kind,
                   "tier": "any" if t.tier is None else str(t.tier), "step": t.step, "delay (days)": t.delay_days}
                  for t in pack.templates], hide_index=True, width="stretch", height="content", key="templates")

# ------------------------------------------------------------------------------------------ validation

st.header("Configuration validation")
try:
    load_settings(cdir)
except ConfigError as e:
    problems(e, "The configuration on disk")
    st.caption("The running engine keeps the configuration it started with; with these files it would refuse "
               "to start. Fix them before the next restart.")
else:
    st.success("valid: production.json, warmup_plan.json, permissions.json and the word lists pass every check.")
