"""Comparison page: the numbers are compare.analyze's over the labeled items, the confusion heatmap, per-tier
precision/recall, the disagreements and their formula-safe CSV; never reachable by the AE (it shows AI tiers)."""
from __future__ import annotations

import csv
import io
import json

import pytest
from sqlmodel import select
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from engine.rules import agreement as compare
from engine.adapters.leads_csv import import_leads
from engine.adapters.models import ReviewItem
from engine.services.blind_review import generate, label
from tests.console.conftest import no_exception, text

PAGE = "pages/comparison.py"
XSS = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example","click")'


def table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _leads(app, tmp_path, n: int = 12) -> None:
    rows = ["Email,First Name,Last Name,Title,Company,Website,# Employees,Industry,Country"]
    for i in range(n):
        company = f"{XSS} {i}" if i % 2 else f"Company {i}"  # lead data that looks like HTML
        rows.append(f'p{i}@co{i}.example,Pat,Lee{i},{"VP Sales" if i % 2 else "Intern"},"{company}",'
                    f"https://co{i}.example,{30 + i * 60},{'B2B SaaS' if i % 3 else 'Retail'},United States")
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(rows) + "\n")
    assert import_leads(app.store, path, app.clock)["imported"] == n


def _items(app, set_id: int) -> list[ReviewItem]:
    with app.store.read() as s:
        return list(s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id).order_by(ReviewItem.position)))


def _other(lab: str) -> str:
    return {"1": "2", "2": "3", "3": "disqualified", "disqualified": "1"}[lab]


def _arrange(app, set_id: int, every: int = 3, skip_last: int = 0) -> list[tuple[str, str, str | None]]:
    """Label a set: every ``every``-th item disagrees with the AI (with a note). Returns (ai, human, note) in
    position order, as analyze reads them."""
    out = []
    items = _items(app, set_id)
    for n, it in enumerate(items[:len(items) - skip_last]):
        human = _other(it.ai_label) if n % every == 0 else it.ai_label
        note = (FORMULA if n == 0 else f"note {n}") if human != it.ai_label else None
        label(app, it.id, human, "ae", note=note)
        out.append((it.ai_label, human, note))
    return out


@pytest.fixture
def downloads(monkeypatch):
    """The bytes of every st.download_button the page offers (AppTest keeps them in a throwaway store)."""
    got: list[bytes] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        if filename and filename.endswith(".csv"):
            got.append(path_or_data)
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return got


# ------------------------------------------------------------------------------------------ roles

def test_the_ae_never_reaches_it(ctx):
    at = no_exception(ctx.page(PAGE, "ae"))  # typed by hand
    assert "Access refused: this page needs the role approver or ops or admin" in text(at.error)
    assert not at.metric and not at.dataframe and not at.get("plotly_chart") and not at.selectbox
    at = no_exception(ctx.login(ctx.main(), "ae"))  # and not in the AE's navigation
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/comparison.py")


def test_approver_ops_admin_see_it_and_the_empty_state_says_what_to_run(ctx):
    for username in ("approver", "ops", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert [t.value for t in at.title] == ["AI vs human comparison"], username
        assert "No blind review set exists yet" in text(at.info)
        assert "alpha compare generate 60" in [c.value for c in at.code]
        assert "Blind review" in text(at.info)
        assert not at.metric


def test_a_set_without_labels_says_to_label_it(ctx, tmp_path):
    _leads(ctx.app, tmp_path)
    generate(ctx.app, 12, seed=3)
    at = no_exception(ctx.page(PAGE, "approver"))
    assert "Set 1 has no labels yet" in text(at.info) and "Blind review" in text(at.info)
    assert not at.metric and not at.get("plotly_chart")


# ------------------------------------------------------------------------------------------ the numbers

def test_numbers_match_compare_analyze_on_arranged_labels(ctx, tmp_path, downloads):
    _leads(ctx.app, tmp_path)
    set_id = generate(ctx.app, 12, seed=3)["set_id"]
    pairs = _arrange(ctx.app, set_id, every=3, skip_last=1)  # 11 labeled, 4 disagreements
    cfg = ctx.app.settings.production.comparison
    want = compare.analyze([(a, h) for a, h, _ in pairs], min_labels=cfg.min_labels,
                           threshold=cfg.agreement_threshold, notes=[n for _, _, n in pairs])
    assert want["n"] == 11 and len(want["disagreements"]) == 4

    at = no_exception(ctx.page(PAGE, "ops"))
    m = metrics(at)
    assert m["Labels"] == "11"
    assert m["Agreement"] == f"{want['agreement']:.1%}"
    assert m["Cohen's kappa"] == f"{want['kappa']:.3f}"
    assert m["Go/no-go"] == "FAIL" and not want["passed"]
    assert f"at least {cfg.min_labels} labels and agreement above {cfg.agreement_threshold:.0%}" in text(at.warning)
    assert f"only 11 labels; at least {cfg.min_labels} are needed" in text(at.text)

    heat, prevalence = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    h = heat["data"][0]
    labels = list(compare.LABELS)
    assert h["z"] == [[want["confusion"][a][b] for b in labels] for a in labels]
    assert h["text"] == h["z"] and h["texttemplate"] == "%{text}"  # counts written in the cells
    assert h["y"] == ["tier 1", "tier 2", "tier 3", "disqualified"] and h["x"] == h["y"]
    assert heat["layout"]["yaxis"]["title"]["text"] == "AI label"
    assert heat["layout"]["xaxis"]["title"]["text"] == "human label"
    ai_bar, human_bar = prevalence["data"]
    assert ai_bar["y"] == [want["prevalence"]["ai"][lab] or 0 for lab in labels]
    assert human_bar["y"] == [want["prevalence"]["human"][lab] or 0 for lab in labels]

    def pct(x):
        return "-" if x is None else f"{x:.1%}"

    per = {row["label"]: row for row in table(at, "precision").to_dict("records")}
    for lab, shown in zip(labels, ["tier 1", "tier 2", "tier 3", "disqualified"]):
        assert per[shown]["precision"] == pct(want["per_tier"][lab]["precision"])
        assert per[shown]["recall"] == pct(want["per_tier"][lab]["recall"])
        assert per[shown]["human labels (support)"] == want["per_tier"][lab]["support"]
        assert per[shown]["AI share"] == pct(want["prevalence"]["ai"][lab])

    dis = table(at, "note").to_dict("records")
    show = {"1": "tier 1", "2": "tier 2", "3": "tier 3", "disqualified": "disqualified"}
    assert [(d["AI"], d["human"], d["note"]) for d in dis] == [
        (show[d["ai"]], show[d["human"]], d["note"]) for d in want["disagreements"]]
    assert any(XSS in d["company"] for d in dis)  # lead data shown as data, not HTML
    assert not any("<img" in m.value for m in at.markdown)

    assert len(downloads) == 1
    rows = list(csv.DictReader(io.StringIO(downloads[0].decode())))
    assert [(r["AI"], r["human"]) for r in rows] == [(d["AI"], d["human"]) for d in dis]
    assert rows[0]["note"] == "'" + FORMULA  # neutralised: a spreadsheet shows it, never runs it
    assert [r["company"] for r in rows] == [d["company"] for d in dis]


def test_the_selector_shows_an_older_set(ctx, tmp_path):
    _leads(ctx.app, tmp_path)
    first = generate(ctx.app, 12, seed=3)["set_id"]
    pairs = _arrange(ctx.app, first, every=2)
    second = generate(ctx.app, 6, seed=4)["set_id"]
    for it in _items(ctx.app, second):
        label(ctx.app, it.id, it.ai_label, "ae")  # full agreement
    at = no_exception(ctx.page(PAGE, "approver"))
    assert at.selectbox(key="cmp_set").value == second and at.selectbox(key="cmp_set").options == ["set 2 (newest)",
                                                                                                "set 1"]
    assert metrics(at)["Agreement"] == "100.0%" and metrics(at)["Labels"] == "6"
    assert "agree on every labeled lead" in text(at.success)
    at.selectbox(key="cmp_set").set_value(first)
    at = no_exception(at.run())
    want = compare.analyze([(a, h) for a, h, _ in pairs], min_labels=50)
    assert metrics(at)["Labels"] == "12" and metrics(at)["Agreement"] == f"{want['agreement']:.1%}"
    assert len(table(at, "note")) == len(want["disagreements"]) == 6


def test_a_passing_set_with_the_configured_rule(ctx, tmp_path):
    prod = ctx.app.settings.config_dir / "production.json"  # the console's engine reads this when it starts
    data = json.loads(prod.read_text())
    data["comparison"] = {"min_labels": 10, "agreement_threshold": 0.8}
    prod.write_text(json.dumps(data))
    _leads(ctx.app, tmp_path, n=12)
    set_id = generate(ctx.app, 12, seed=5)["set_id"]
    pairs = _arrange(ctx.app, set_id, every=100)  # only item 0 disagrees: 11/12
    want = compare.analyze([(a, h) for a, h, _ in pairs], min_labels=10, threshold=0.8)
    assert want["passed"]
    at = no_exception(ctx.page(PAGE, "admin"))
    assert metrics(at)["Go/no-go"] == "PASS" and metrics(at)["Agreement"] == "91.7%"
    assert "Set 1 passes. Rule: at least 10 labels and agreement above 80%" in text(at.success)
