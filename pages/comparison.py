"""Comparison (approver, ops, admin): how well the AI's lead tiers agree with an AE's blind labels - agreement,
Cohen's kappa, the pass rule, label prevalence, the confusion matrix, per-tier precision/recall and the
disagreements with the AE's notes (exportable as a formula-safe CSV). Never shown to the AE: it holds AI tiers."""
from __future__ import annotations

import tempfile
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from console.runtime import get_app, require_role, run_action
from console.widgets import stamp
from engine.adapters.leads_csv import write_safe_csv
from engine.services.blind_review import analyze, latest_set

require_role("approver", "ops", "admin")
app = get_app()
cfg = app.settings.production.comparison

st.title("AI vs human comparison")

latest = latest_set(app)
if latest is None:
    st.info("No blind review set exists yet. Draw one from the command line, then have an AE label it on the "
            "**Blind review** page:")
    st.code("alpha compare generate 60", language="bash")
    st.stop()

set_id = st.selectbox("Review set", list(range(latest, 0, -1)), key="cmp_set",
                      format_func=lambda n: f"set {n}" + (" (newest)" if n == latest else ""))
ok, r = run_action(analyze, app, set_id)
if not ok:
    st.stop()
stamp(what=f"Set {set_id} analysed")

if r["n"] == 0:
    st.info(f"Set {set_id} has no labels yet: an AE labels its leads on the **Blind review** page (the AI's tier "
            f"stays hidden there). At least {cfg.min_labels} labels are needed for the go/no-go; draw a bigger "
            "set if this one is too small:")
    st.code(f"alpha compare generate {max(cfg.min_labels + 10, 60)}", language="bash")
    st.stop()

# ------------------------------------------------------------------------------------------ headline numbers

SHOW = {"1": "tier 1", "2": "tier 2", "3": "tier 3", "disqualified": "disqualified"}


def show(label: str) -> str:
    return SHOW.get(label, label)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


c1, c2, c3, c4 = st.columns(4)
c1.metric("Labels", r["n"], help=f"at least {cfg.min_labels} are needed", border=True)
c2.metric("Agreement", pct(r["agreement"]), help=f"must be above {cfg.agreement_threshold:.0%}", border=True)
c3.metric("Cohen's kappa", "-" if r["kappa"] is None else f"{r['kappa']:.3f}",
          help="agreement corrected for chance: 1 = perfect, 0 = no better than chance", border=True)
c4.metric("Go/no-go", "PASS" if r["passed"] else "FAIL", border=True,
          help=f"passes with at least {cfg.min_labels} labels and agreement above {cfg.agreement_threshold:.0%} "
               "(production.json: comparison)")
rule = (f"Rule: at least {cfg.min_labels} labels and agreement above {cfg.agreement_threshold:.0%} "
        f"(config/production.json, comparison).")
if r["passed"]:
    st.success(f"Set {set_id} passes. {rule}")
else:
    st.warning(f"Set {set_id} does not pass. {rule}")
for reason in r["reasons"]:
    st.text(f"- {reason}")

# ------------------------------------------------------------------------------------------ confusion matrix

labels = list(r["confusion"])
left, right = st.columns([1.2, 1])
with left:
    st.subheader("Confusion matrix")
    z = [[r["confusion"][a][h] for h in labels] for a in labels]
    heat = go.Figure(go.Heatmap(z=z, x=[show(h) for h in labels], y=[show(a) for a in labels], text=z,
                                texttemplate="%{text}", colorscale="Blues", showscale=False,
                                hovertemplate="AI %{y}, human %{x}: %{z}<extra></extra>"))
    heat.update_layout(xaxis={"title": "human label", "side": "top"},
                       yaxis={"title": "AI label", "autorange": "reversed"},
                       height=360, margin={"t": 60, "b": 10, "l": 10, "r": 10})
    st.plotly_chart(heat, key="confusion")
with right:
    st.subheader("Label prevalence")
    prev = go.Figure()
    for who, name in (("ai", "AI"), ("human", "human")):
        prev.add_bar(x=[show(lab) for lab in labels], y=[r["prevalence"][who][lab] or 0 for lab in labels],
                     name=name)
    prev.update_layout(barmode="group", yaxis={"tickformat": ".0%", "title": "share of labels"}, height=360,
                       margin={"t": 60, "b": 10, "l": 10, "r": 10})
    st.plotly_chart(prev, key="prevalence")

st.subheader("Per tier")
st.caption("The human label is taken as the truth. Precision: of the leads the AI gave this label, the share the "
           "human agreed with. Recall: of the leads the human gave this label, the share the AI found.")
st.dataframe([{"label": show(lab), "AI share": pct(r["prevalence"]["ai"][lab]),
               "human share": pct(r["prevalence"]["human"][lab]),
               "precision": pct(r["per_tier"][lab]["precision"]), "recall": pct(r["per_tier"][lab]["recall"]),
               "human labels (support)": r["per_tier"][lab]["support"]} for lab in labels],
             hide_index=True, width="stretch", key="per_tier")

# ------------------------------------------------------------------------------------------ disagreements

COLUMNS = ("item", "AI", "human", "note", "company", "title", "email", "lead")


def disagreement_rows(result: dict) -> list[tuple]:
    return [(d.get("item_id"), show(d["ai"]), show(d["human"]), d.get("note"), d.get("company"), d.get("title"),
             d.get("email"), d.get("lead_id")) for d in result["disagreements"]]


def safe_csv(rows: list[tuple]) -> bytes:
    """The rows as a spreadsheet-safe CSV (engine.adapters.leads_csv.write_safe_csv neutralises every cell)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "disagreements.csv"
        write_safe_csv(path, COLUMNS, (["" if v is None else str(v) for v in row] for row in rows))
        return path.read_bytes()


st.subheader(f"Disagreements ({len(r['disagreements'])})")
rows = disagreement_rows(r)
if not rows:
    st.success("The AI and the AE agree on every labeled lead of this set.")
else:
    st.dataframe([dict(zip(COLUMNS, row)) for row in rows], hide_index=True, width="stretch",
                 key="disagreements")
    st.download_button("Download disagreements (CSV)", safe_csv(rows), file_name=f"disagreements_set{set_id}.csv",
                       mime="text/csv", key="download", on_click="ignore")
