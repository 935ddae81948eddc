"""The weekly review: the week's KPIs as Markdown and CSV, so the team can tune the ICP, templates and limits.

``weekly(app, start, end)`` gathers, for the window [start, end):
- outbound: sent, replies, positive replies, bounces, complaints (and their rates per sent email);
- replies by class (engine/rules/replies.py, stored in the ``reply`` table): the human classes, and apart from them
  out-of-office notices and auto-replies (bounce notifications among them), which are not replies;
- approvals: requested, approved, rejected, expired, SLA breaches, decision latency (median and p90);
- hot leads: raised, taken, dismissed, expired;
- agreement trend: AI-vs-human blind agreement per ISO week over the last ``trend_weeks`` weeks;
- guardrails: denials and deferrals by reason code.

Definitions are stated in the report itself. "Replies" are the replies a person wrote (interested, not now, not
interested, unsubscribe, wrong person); out-of-office notices and auto-replies are listed apart and never count
in the reply rate. "Positive replies" are the replies classified interested plus referrals (wrong person, naming
who to contact instead). Everything is counted in SQL per window; nothing here changes state.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median

from sqlalchemy import func
from sqlmodel import col, select

from engine.adapters.ports import Stored
from engine.core.clock import iso
from engine.core.errors import InvalidRequest
from engine.adapters.models import Approval, OutboxItem, Reply, ReviewItem, Suppression
from engine.rules.replies import HUMAN, LABELS


def week_window(week: str | None, now: datetime) -> tuple[datetime, datetime, str]:
    """``2026-W47`` -> Monday 00:00 UTC to the next Monday; None -> the 7 days ending now."""
    if not week:
        return now - timedelta(days=7), now, f"7 days to {now:%Y-%m-%d %H:%M} UTC"
    try:
        year, w = week.upper().split("-W")
        start = datetime.fromisocalendar(int(year), int(w), 1).replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidRequest(f"--week {week!r}: use an ISO week like 2026-W47") from None
    return start, start + timedelta(days=7), f"ISO week {int(year)}-W{int(w):02d}"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _codes(rows) -> Counter:
    c: Counter = Counter()
    for reasons in rows:
        for r in reasons or []:
            code = r.get("code") if isinstance(r, dict) else str(r)
            if code:
                c[code] += 1
    return c


def weekly(app: Stored, start: datetime, end: datetime, label: str = "", trend_weeks: int = 8) -> dict:
    if end <= start:
        raise InvalidRequest("the report window must end after it starts")
    in_window = lambda col: (col >= start) & (col < end)  # noqa: E731
    with app.store.read() as s:
        count = lambda *w: s.exec(select(func.count()).where(*w)).one()  # noqa: E731
        sent = count(OutboxItem.status == "sent", in_window(OutboxItem.sent_at))
        by_class = dict(s.exec(select(Reply.label, func.count()).where(in_window(Reply.received_at))
                               .group_by(Reply.label)).all())
        referrals = count(Reply.label == "wrong_person", col(Reply.referral).is_not(None), Reply.referral != "",
                          in_window(Reply.received_at))
        # bounce notifications that arrived as replies (the reply table keeps the class, the suppression the cause)
        bounce_notices = count(Suppression.source == "reply:bounce", in_window(Suppression.created_at))
        bounces = count(Suppression.reason == "bounced", in_window(Suppression.created_at))
        complaints = count(Suppression.reason == "complained", in_window(Suppression.created_at))
        unsubscribes = count(Suppression.reason == "unsubscribed", in_window(Suppression.created_at))

        decided = s.exec(select(col(Approval.kind), col(Approval.status), col(Approval.requested_at),
                                col(Approval.decided_at))
                         .where(in_window(Approval.decided_at))).all()
        requested = count(Approval.kind == "send", in_window(Approval.requested_at))
        breaches = count(Approval.kind == "send", in_window(Approval.escalated_at))
        hot_raised = count(Approval.kind == "hot_lead", in_window(Approval.requested_at))
        hot_breaches = count(Approval.kind == "hot_lead", in_window(Approval.escalated_at))

        denied = s.exec(select(OutboxItem.reasons).where(OutboxItem.status == "denied",
                                                         in_window(OutboxItem.updated_at))).all()
        deferred = s.exec(select(OutboxItem.reasons).where(OutboxItem.status == "deferred",
                                                           in_window(OutboxItem.updated_at))).all()

        trend_start = end - timedelta(weeks=trend_weeks)
        labels = s.exec(select(ReviewItem.labeled_at, ReviewItem.ai_label, ReviewItem.human_label)
                        .where(col(ReviewItem.human_label).is_not(None), col(ReviewItem.labeled_at) >= trend_start,
                               col(ReviewItem.labeled_at) < end)).all()

    sends = [(status, asked, answered) for kind, status, asked, answered in decided if kind == "send"]
    latency = [(answered - asked).total_seconds() / 60 for status, asked, answered in sends
               if status in ("approved", "rejected") and asked and answered]
    by_status = Counter(status for status, _, _ in sends)
    hot_status = Counter(status for kind, status, _, _ in decided if kind == "hot_lead")
    replies = sum(by_class.get(k, 0) for k in HUMAN)
    positive = by_class.get("interested", 0) + referrals

    weeks: dict[str, list[int]] = {}
    for at, ai, human in labels:
        if at is None:  # excluded by the query (labeled_at >= trend_start); narrows the type
            continue
        y, w, _ = at.isocalendar()
        agg = weeks.setdefault(f"{y}-W{w:02d}", [0, 0])
        agg[0] += 1
        agg[1] += int(ai == human)
    trend = [{"week": k, "labels": n, "agreement": round(a / n, 4)} for k, (n, a) in sorted(weeks.items())]

    lat_median = round(median(latency), 1) if latency else None
    p90 = _percentile(latency, 0.9)  # None exactly when there is no latency
    lat_p90 = round(p90, 1) if p90 is not None else None
    return {
        "window": {"start": iso(start), "end": iso(end), "label": label or f"{iso(start)} to {iso(end)}"},
        "outbound": {"sent": sent, "replies": replies, "positive_replies": positive, "bounces": bounces,
                     "complaints": complaints, "unsubscribes": unsubscribes,
                     "reply_rate": _rate(replies, sent), "bounce_rate": _rate(bounces, sent),
                     "complaint_rate": _rate(complaints, sent)},
        "replies": {"by_class": {k: by_class.get(k, 0) for k in LABELS}, "human": replies,
                    "interested": by_class.get("interested", 0), "referrals": referrals,
                    "out_of_office": by_class.get("out_of_office", 0), "auto_replies": by_class.get("auto_reply", 0),
                    "bounce_notifications": bounce_notices},
        "approvals": {"requested": requested, "approved": by_status["approved"], "rejected": by_status["rejected"],
                      "expired": by_status["expired"], "sla_breaches": breaches,
                      "latency_minutes_median": lat_median, "latency_minutes_p90": lat_p90},
        "hot_leads": {"raised": hot_raised, "taken": hot_status["approved"], "dismissed": hot_status["rejected"],
                      "expired": hot_status["expired"], "sla_breaches": hot_breaches},
        "agreement_trend": trend,
        "denials_by_reason": dict(_codes(denied).most_common()),
        "deferrals_by_reason": dict(_codes(deferred).most_common()),
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v <= 1 and v >= 0:
        return f"{v:.1%}"
    return str(v)


def to_markdown(r: dict) -> str:
    o, a, h = r["outbound"], r["approvals"], r["hot_leads"]
    lines = [f"# Weekly review: {r['window']['label']}", "",
             f"Window: {r['window']['start']} to {r['window']['end']} (UTC).", "",
             "## Outbound", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {_fmt(v) if k.endswith('rate') else v} |" for k, v in o.items()]
    lines += ["", "Replies = replies a person wrote (out-of-office notices and auto-replies are not replies); "
              "positive replies = interested + referrals. Rates are per email sent in the window.", ""]
    rp = r["replies"]
    lines += ["## Replies by class", "", "| class | replies |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {rp['by_class'][k]} |" for k in HUMAN]
    lines += [f"| **human replies** | **{rp['human']}** |",
              f"| referrals (wrong person naming a contact) | {rp['referrals']} |",
              "", "Not replies (kept out of the reply rate):", "", "| class | count |", "|---|---|",
              f"| out of office | {rp['out_of_office']} |", f"| auto-replies | {rp['auto_replies']} |",
              f"| of which bounce notifications | {rp['bounce_notifications']} |",
              "", "## Approvals", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {'-' if v is None else v} |" for k, v in a.items()]
    lines += ["", "## Hot leads", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in h.items()]
    lines += ["", "## AI-vs-human agreement by week", ""]
    if r["agreement_trend"]:
        lines += ["| week | labels | agreement |", "|---|---|---|"]
        lines += [f"| {t['week']} | {t['labels']} | {t['agreement']:.1%} |" for t in r["agreement_trend"]]
    else:
        lines.append("No blind labels in the period (`alpha compare generate N`, then label in Blind review).")
    for title, key in (("Guardrail denials by reason", "denials_by_reason"),
                       ("Deferrals by reason", "deferrals_by_reason")):
        lines += ["", f"## {title}", ""]
        if r[key]:
            lines += ["| reason | count |", "|---|---|"] + [f"| {k} | {v} |" for k, v in r[key].items()]
        else:
            lines.append("None.")
    return "\n".join(lines) + "\n"


def csv_rows(r: dict) -> list[tuple[str, str, object]]:
    rows: list[tuple[str, str, object]] = [("window", k, v) for k, v in r["window"].items()]
    for section in ("outbound", "approvals", "hot_leads"):
        rows += [(section, k, v) for k, v in r[section].items()]
    rows += [("replies", k, v) for k, v in r["replies"]["by_class"].items()]
    rows += [("replies", k, v) for k, v in r["replies"].items() if k != "by_class"]
    for t in r["agreement_trend"]:
        rows += [("agreement_trend", f"{t['week']} labels", t["labels"]),
                 ("agreement_trend", f"{t['week']} agreement", t["agreement"])]
    rows += [("denials_by_reason", k, v) for k, v in r["denials_by_reason"].items()]
    rows += [("deferrals_by_reason", k, v) for k, v in r["deferrals_by_reason"].items()]
    return rows


def write(r: dict, out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    from engine.adapters.leads_csv import write_safe_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, cs = out / f"{stem}.md", out / f"{stem}.csv"
    md.write_text(to_markdown(r), encoding="utf-8")
    write_safe_csv(cs, ("section", "metric", "value"),
                   (["" if v is None else str(v) for v in row] for row in csv_rows(r)))
    return md, cs
