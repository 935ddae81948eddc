"""AI-vs-human blind comparison: agreement, Cohen's kappa, per-tier precision/recall, the pass gate, CSV in and out.

Reference values are worked out by hand in the comments (exact fractions), or are published examples.
Notation: n pairs, p_o = agreed / n, p_e = sum over labels of (ai share) * (human share),
kappa = (p_o - p_e) / (1 - p_e).
"""
from __future__ import annotations

import csv
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.adapters.agreement_csv import analyze_csv, disagreements_csv
from engine.rules.agreement import LABELS, analyze, normalise_label
from engine.core.errors import AlphaError

DQ = "disqualified"


def pairs_from(table: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """{AI_LABEL: {HUMAN_LABEL: count}} -> the list of (ai, human) pairs."""
    return [(a, h) for a, row in table.items() for h, count in row.items() for _ in range(count)]


def full(table: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The zero-filled 4x4 confusion the result should report for ``table``."""
    return {a: {h: table.get(a, {}).get(h, 0) for h in LABELS} for a in LABELS}


def reference_kappa(pairs) -> tuple[float, float]:
    """(agreement, kappa) by the textbook float formula on a numpy matrix: independent of the engine's integer
    arithmetic. Only for tables whose p_e < 1."""
    idx = {lab: i for i, lab in enumerate(LABELS)}
    m = np.zeros((4, 4))
    for a, h in pairs:
        m[idx[a], idx[h]] += 1
    p = m / m.sum()
    po = np.trace(p)
    pe = float(p.sum(axis=1) @ p.sum(axis=0))
    return float(po), float((po - pe) / (1 - pe))


# ------------------------------------------------------------------------------------------------ reference tables

def test_textbook_50_items_kappa_0_4():
    # The classic example (Wikipedia, "Cohen's kappa": 50 grant proposals, two readers): yes/yes 20, A yes B no 5,
    # A no B yes 10, no/no 15. Mapped: yes -> tier "1", no -> "disqualified"; rows = AI (reader A).
    # p_o = (20 + 15) / 50 = 0.7. AI margins 25/25 (0.5, 0.5); human margins 30/20 (0.6, 0.4).
    # p_e = 0.5*0.6 + 0.5*0.4 = 0.5.  kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    table = {"1": {"1": 20, DQ: 5}, DQ: {"1": 10, DQ: 15}}
    r = analyze(pairs_from(table))
    assert r["n"] == 50
    assert r["agreement"] == pytest.approx(0.7, abs=1e-12)
    assert r["kappa"] == pytest.approx(0.4, abs=1e-12)
    assert r["confusion"] == full(table)
    assert r["prevalence"]["ai"] == {"1": 0.5, "2": 0.0, "3": 0.0, DQ: 0.5}
    assert r["prevalence"]["human"] == {"1": 0.6, "2": 0.0, "3": 0.0, DQ: 0.4}
    # Human label is the truth. Tier 1: precision 20/25 (AI said 1 25 times), recall 20/30 (human said 1 30 times).
    assert r["per_tier"]["1"] == {"precision": pytest.approx(0.8), "recall": pytest.approx(2 / 3), "support": 30}
    assert r["per_tier"][DQ] == {"precision": pytest.approx(15 / 25), "recall": pytest.approx(15 / 20),
                                 "support": 20}
    # Labels neither column used: precision and recall undefined -> None, support 0.
    assert r["per_tier"]["2"] == {"precision": None, "recall": None, "support": 0}
    assert len(r["disagreements"]) == 15
    assert r["passed"] is False and r["reasons"] == ["agreement 70.0% is not above 75%"]


@pytest.mark.parametrize("table, po, kappa", [
    # Wikipedia, "Cohen's kappa", "Same percentages but different numbers" / marginals examples (100 items each):
    # [[45, 15], [25, 15]]: margins rows .6/.4, cols .7/.3 -> p_e = .42 + .12 = .54, p_o = .60,
    # kappa = .06 / .46 = 3/23 = 0.1304...
    ({"1": {"1": 45, "2": 15}, "2": {"1": 25, "2": 15}}, 0.60, 3 / 23),
    # [[25, 35], [5, 35]]: rows .6/.4, cols .3/.7 -> p_e = .18 + .28 = .46, p_o = .60, kappa = .14/.54 = 7/27 = 0.2593
    ({"1": {"1": 25, "2": 35}, "2": {"1": 5, "2": 35}}, 0.60, 7 / 27),
])
def test_published_examples(table, po, kappa):
    r = analyze(pairs_from(table))
    assert r["agreement"] == pytest.approx(po, abs=1e-12)
    assert r["kappa"] == pytest.approx(kappa, abs=1e-12)
    assert round(r["kappa"], 4) in (0.1304, 0.2593)


def test_perfect_agreement_kappa_1():
    # p_o = 1; margins 10/20/30/40 in both columns, p_e = (1+4+9+16)/100 = 0.3 < 1; kappa = (1 - .3)/(1 - .3) = 1.
    table = {"1": {"1": 10}, "2": {"2": 20}, "3": {"3": 30}, DQ: {DQ: 40}}
    r = analyze(pairs_from(table))
    assert r["agreement"] == 1.0 and r["kappa"] == 1.0
    assert r["disagreements"] == []
    assert all(t["precision"] == 1.0 and t["recall"] == 1.0 for t in r["per_tier"].values())
    assert r["passed"] is True and r["reasons"] == []


@pytest.mark.parametrize("table", [
    # 25 in each cell: p_o = 50/100 = .5, margins .5/.5 both, p_e = .25 + .25 = .5, kappa = 0.
    {"1": {"1": 25, "2": 25}, "2": {"1": 25, "2": 25}},
    # The product of AI margins (.4, .6) and human margins (.5, .5), n = 20: cells 4 4 / 6 6.
    # p_o = (4 + 6)/20 = .5, p_e = .4*.5 + .6*.5 = .5, kappa = 0.
    {"3": {"3": 4, DQ: 4}, DQ: {"3": 6, DQ: 6}},
    # 4 labels, uniform 5 per cell (n = 80): p_o = 20/80 = .25, p_e = 4 * (1/4 * 1/4) = .25, kappa = 0.
    {a: {h: 5 for h in LABELS} for a in LABELS},
])
def test_chance_agreement_kappa_0(table):
    r = analyze(pairs_from(table), min_labels=0)
    assert r["kappa"] == pytest.approx(0.0, abs=1e-12)
    assert r["agreement"] == pytest.approx(reference_kappa(pairs_from(table))[0])


def test_skewed_prevalence_high_agreement_low_kappa():
    # 100 leads, almost all tier 3: 3/3 89, AI 3 human DQ 5, AI DQ human 3 5, DQ/DQ 1.
    # p_o = (89 + 1)/100 = 0.9. Margins: AI 3 94, DQ 6; human 3 94, DQ 6.
    # p_e = .94^2 + .06^2 = .8836 + .0036 = .8872. kappa = (.9 - .8872)/(1 - .8872) = .0128/.1128 = 16/141.
    table = {"3": {"3": 89, DQ: 5}, DQ: {"3": 5, DQ: 1}}
    r = analyze(pairs_from(table))
    assert r["agreement"] == 0.9
    assert r["kappa"] == pytest.approx(16 / 141, abs=1e-12)   # 0.11347...
    assert r["kappa"] == 16 / 141                              # exact: the engine divides integers once
    # The gate is on agreement only (as specified), so this passes despite the low kappa.
    assert r["passed"] is True


def test_skewed_prevalence_negative_kappa_at_90_percent():
    # 3/3 90, 3/DQ 5, DQ/3 5, DQ/DQ 0: p_o = .9; margins .95/.05 both: p_e = .9025 + .0025 = .905.
    # kappa = (.9 - .905)/(1 - .905) = -.005/.095 = -1/19: worse than chance although 90% agree.
    table = {"3": {"3": 90, DQ: 5}, DQ: {"3": 5}}
    r = analyze(pairs_from(table))
    assert r["agreement"] == 0.9
    assert r["kappa"] == pytest.approx(-1 / 19, abs=1e-12)
    assert r["per_tier"][DQ] == {"precision": 0.0, "recall": 0.0, "support": 5}


def test_four_by_four_by_hand():
    # rows = AI, columns = human, order 1, 2, 3, DQ:
    #          h1  h2  h3  hDQ | AI total
    #   AI 1   20   5   2   1  |  28
    #   AI 2    3  15   4   0  |  22
    #   AI 3    1   4  18   3  |  26
    #   AI DQ   0   1   5  18  |  24
    #   human  24  25  29  22  | 100
    # agreed = 20 + 15 + 18 + 18 = 71 -> p_o = 0.71
    # p_e = (28*24 + 22*25 + 26*29 + 24*22) / 100^2 = (672 + 550 + 754 + 528) / 10000 = 2504 / 10000 = 0.2504
    # kappa = (0.71 - 0.2504) / (1 - 0.2504) = 0.4596 / 0.7496 = 1149 / 1874 = 0.61312700...
    rows = {"1": [20, 5, 2, 1], "2": [3, 15, 4, 0], "3": [1, 4, 18, 3], DQ: [0, 1, 5, 18]}
    table = {a: dict(zip(LABELS, counts)) for a, counts in rows.items()}
    r = analyze(pairs_from(table))
    assert r["n"] == 100
    assert r["agreement"] == pytest.approx(0.71, abs=1e-12)
    assert r["kappa"] == pytest.approx(1149 / 1874, abs=1e-12)
    assert r["kappa"] == pytest.approx(0.613127, abs=1e-6)
    assert r["confusion"] == table
    # precision = diagonal / AI total, recall = diagonal / human total
    assert r["per_tier"]["2"] == {"precision": pytest.approx(15 / 22), "recall": pytest.approx(15 / 25),
                                  "support": 25}
    assert r["per_tier"][DQ] == {"precision": pytest.approx(18 / 24), "recall": pytest.approx(18 / 22),
                                 "support": 22}
    assert r["prevalence"]["human"] == {"1": 0.24, "2": 0.25, "3": 0.29, DQ: 0.22}
    assert len(r["disagreements"]) == 29
    assert r["reasons"] == ["agreement 71.0% is not above 75%"]
    assert reference_kappa(pairs_from(table)) == pytest.approx((0.71, 1149 / 1874))


# ------------------------------------------------------------------------------------------------ the gate

def _with_agreement(agreed: int, n: int) -> list[tuple[str, str]]:
    pairs = [(LABELS[i % 4], LABELS[i % 4]) for i in range(agreed)]
    return pairs + [(LABELS[i % 4], LABELS[(i + 1) % 4]) for i in range(n - agreed)]


def test_exactly_75_percent_fails_strict_threshold():
    r = analyze(_with_agreement(75, 100))
    assert r["agreement"] == 0.75
    assert r["passed"] is False
    assert r["reasons"] == ["agreement 75.0% is not above 75%"]
    assert analyze(_with_agreement(76, 100))["passed"] is True
    # three of four is exactly 75% too
    assert analyze(_with_agreement(3, 4), min_labels=4)["passed"] is False


def test_just_below_threshold_is_not_shown_as_equal():
    r = analyze(_with_agreement(7499, 10000))
    assert r["reasons"] == ["agreement 74.99% is not above 75%"]


def test_custom_threshold():
    assert analyze(_with_agreement(70, 100), threshold=0.69)["passed"] is True
    r = analyze(_with_agreement(70, 100), threshold=0.7)
    assert r["passed"] is False and r["reasons"] == ["agreement 70.0% is not above 70%"]


def test_min_labels():
    r = analyze(_with_agreement(12, 12))
    assert r["passed"] is False
    assert r["reasons"] == ["only 12 labels; at least 50 are needed"]
    assert analyze(_with_agreement(49, 49))["passed"] is False
    assert analyze(_with_agreement(50, 50))["passed"] is True
    assert analyze(_with_agreement(12, 12), min_labels=12)["passed"] is True
    both = analyze(_with_agreement(7, 10))
    assert both["reasons"] == ["only 10 labels; at least 50 are needed", "agreement 70.0% is not above 75%"]


def test_no_pairs():
    r = analyze([], min_labels=0)
    assert r["n"] == 0 and r["agreement"] is None and r["kappa"] is None and r["passed"] is False
    assert r["prevalence"]["ai"] == {lab: None for lab in LABELS}
    assert r["reasons"] == ["no labels to compare, so there is no agreement to measure"]
    assert analyze([])["reasons"][0] == "only 0 labels; at least 50 are needed"
    json.dumps(r, allow_nan=False)


def test_expected_agreement_1_defines_kappa_and_says_so():
    r = analyze([("2", "tier 2")] * 60)
    assert r["agreement"] == 1.0 and r["kappa"] == 1.0
    assert r["passed"] is True
    assert len(r["reasons"]) == 1 and "kappa is set to 1.0 by convention" in r["reasons"][0]
    assert "'2'" in r["reasons"][0]


@pytest.mark.parametrize("kw", [{"min_labels": -1}, {"min_labels": 2.5}, {"min_labels": True},
                                {"threshold": 1.5}, {"threshold": -0.1}, {"threshold": float("nan")},
                                {"threshold": "0.75"}])
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        analyze([("1", "1")], **kw)


# ------------------------------------------------------------------------------------------------ precision / recall

def test_precision_and_recall_none_when_undefined():
    # AI never says 3 -> precision(3) undefined; human never says 2 -> recall(2) undefined.
    pairs = [("1", "1"), ("2", "1"), ("1", "3"), (DQ, DQ)]
    r = analyze(pairs, min_labels=0)
    assert r["per_tier"]["3"] == {"precision": None, "recall": 0.0, "support": 1}
    assert r["per_tier"]["2"] == {"precision": 0.0, "recall": None, "support": 0}
    assert r["per_tier"]["1"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    text = json.dumps(r, allow_nan=False)  # JSON-ready: no NaN anywhere
    assert "NaN" not in text


def test_disagreements_carry_index_and_note():
    pairs = [("1", "1"), ("T2", "dq"), ("3", "3"), ("x", "tier 3")]
    r = analyze(pairs, min_labels=0, notes=[None, "AI missed the agency rule", None, None])
    assert r["disagreements"] == [
        {"index": 1, "ai": "2", "human": DQ, "note": "AI missed the agency rule"},
        {"index": 3, "ai": DQ, "human": "3", "note": None},
    ]


def test_notes_length_must_match():
    with pytest.raises(ValueError, match="notes has 1 entries but there are 2 pairs"):
        analyze([("1", "1"), ("2", "2")], notes=["a"])


def test_bad_label_in_pairs_names_the_pair():
    with pytest.raises(ValueError, match=r"pair 1, human label: unrecognised label 'tier 4'"):
        analyze([("1", "1"), ("2", "tier 4")])
    with pytest.raises(ValueError, match=r"pair 0 is"):
        analyze([("1",)])


# ------------------------------------------------------------------------------------------------ normalise_label

@pytest.mark.parametrize("value, expected", [
    (1, "1"), ("1", "1"), ("tier 1", "1"), ("Tier1", "1"), ("T1", "1"), ("t1", "1"), (" TIER 1 ", "1"),
    ("tier_1", "1"), ("Tier-1", "1"), (2, "2"), ("T2", "2"), ("tier 3", "3"), (np.int64(3), "3"),
    ("dq", DQ), ("DQ", DQ), ("disqualified", DQ), ("Disqualified", DQ), ("none", DQ), ("None", DQ),
    ("x", DQ), ("X", DQ), (" dq ", DQ),
])
def test_normalise_label_accepts(value, expected):
    assert normalise_label(value) == expected


@pytest.mark.parametrize("value", ["4", 4, 0, "tier 4", "T0", "tier", "", "  ", "maybe", "1.0", 1.0, True, None,
                                   "12", "tier 1 or 2", "dqx"])
def test_normalise_label_rejects(value):
    with pytest.raises(ValueError) as e:
        normalise_label(value)
    msg = str(e.value)
    assert repr(value) in msg                        # names the value
    assert "tier 1" in msg and "dq" in msg and "none" in msg and "T1" in msg  # and the accepted forms


# ------------------------------------------------------------------------------------------------ CSV

def put(tmp_path, text: str, bom: bool = False, name: str = "compare.csv"):
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return p


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom_case_insensitive_header(tmp_path, bom):
    p = put(tmp_path, "AI_Label,Human_Label,Note\r\n1,1,\r\ntier 2,DQ,=HYPERLINK(\"x\")\r\nT3,3,ok\r\n", bom=bom)
    r = analyze_csv(p, min_labels=3)
    assert r["n"] == 3 and r["errors"] == []
    assert r["confusion"]["2"][DQ] == 1
    assert r["disagreements"] == [{"index": 1, "ai": "2", "human": DQ, "note": '=HYPERLINK("x")', "row": 3}]
    assert r["agreement"] == pytest.approx(2 / 3)
    assert r["passed"] is False  # 66.7% is not above 75%


def test_csv_bad_rows_reported_with_row_numbers_and_excluded(tmp_path):
    text = ("human_label,ai_label\n"      # line 1 (columns in the other order)
            "1,1\n"                       # line 2
            "tier 5,1\n"                  # line 3: bad human label
            "\n"                          # line 4: blank, skipped
            "2,\n"                        # line 5: empty AI label
            "maybe,perhaps\n"             # line 6: both bad -> two errors
            "dq,x\n")                     # line 7
    r = analyze_csv(put(tmp_path, text), min_labels=0)
    assert r["n"] == 2
    assert [(e["row"], e["field"]) for e in r["errors"]] == [
        (3, "human_label"), (5, "ai_label"), (6, "ai_label"), (6, "human_label")]
    assert "'tier 5'" in r["errors"][0]["error"]
    assert "empty label" in r["errors"][1]["error"]
    assert r["agreement"] == 1.0


def test_csv_row_numbers_follow_multiline_cells(tmp_path):
    text = 'ai_label,human_label,note\n1,2,"line one\nline two"\n3,nope,\n'
    r = analyze_csv(put(tmp_path, text), min_labels=0)
    assert r["disagreements"][0]["row"] == 2
    assert r["disagreements"][0]["note"] == "line one\nline two"
    assert r["errors"] == [{"row": 4, "field": "human_label", "error": r["errors"][0]["error"]}]


def test_csv_short_row_is_an_error_not_dropped(tmp_path):
    r = analyze_csv(put(tmp_path, "ai_label,human_label\n1\n"), min_labels=0)
    assert r["n"] == 0
    assert r["errors"][0]["row"] == 2 and r["errors"][0]["field"] == "human_label"


def test_csv_missing_columns_names_the_columns_found(tmp_path):
    p = put(tmp_path, "ai,human,comment\n1,1,\n")
    with pytest.raises(AlphaError) as e:
        analyze_csv(p)
    msg = str(e.value)
    assert "ai_label" in msg and "human_label" in msg
    assert "'ai', 'human', 'comment'" in msg
    with pytest.raises(AlphaError, match="no human_label column"):
        analyze_csv(put(tmp_path, "AI_LABEL,label\n1,1\n", name="b.csv"))


def test_csv_file_problems(tmp_path):
    with pytest.raises(AlphaError, match="not found"):
        analyze_csv(tmp_path / "nope.csv")
    with pytest.raises(AlphaError, match="is empty"):
        analyze_csv(put(tmp_path, ""))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("ai_label,human_label,note\n1,1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(AlphaError, match="not UTF-8"):
        analyze_csv(latin)
    with pytest.raises(AlphaError, match="more than one ai_label column"):
        analyze_csv(put(tmp_path, "ai_label,AI Label,human_label\n1,1,1\n", name="dup.csv"))
    with pytest.raises(TypeError):
        analyze_csv(put(tmp_path, "ai_label,human_label\n", name="n.csv"), notes=[])


def test_disagreements_csv_neutralises_formulas(tmp_path):
    notes = ["=1+1", "+cmd", "-2", "@SUM(A1)", "plain", None]
    pairs = [("1", "2")] * 6
    r = analyze(pairs, min_labels=0, notes=notes)
    out = tmp_path / "dis.csv"
    assert disagreements_csv(r, out) == 6
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "row", "ai", "human", "note"]
    assert [row[4] for row in rows[1:]] == ["'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "plain", ""]
    assert rows[1][:4] == ["0", "", "1", "2"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_disagreements_csv_from_file_result_keeps_row(tmp_path):
    r = analyze_csv(put(tmp_path, "ai_label,human_label,note\n1,1,\n1,dq,@evil\n"), min_labels=0)
    out = tmp_path / "d.csv"
    disagreements_csv(r, out)
    with open(out, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f))[1] == ["1", "3", "1", DQ, "'@evil"]


# ------------------------------------------------------------------------------------------------ properties

label = st.sampled_from(LABELS)
pair_lists = st.lists(st.tuples(label, label), min_size=1, max_size=60)


def _pe(pairs) -> Fraction:
    n = len(pairs)
    return sum(Fraction(sum(a == lab for a, _ in pairs) * sum(h == lab for _, h in pairs), n * n) for lab in LABELS)


@settings(max_examples=300, deadline=None)
@given(pair_lists)
def test_property_ranges_and_reference(pairs):
    r = analyze(pairs, min_labels=0)
    assert 0.0 <= r["agreement"] <= 1.0
    assert -1.0 <= r["kappa"] <= 1.0
    # Note: kappa <= agreement does hold for every table. With p_e in [0, 1) and p_o <= 1:
    # kappa <= p_o  <=>  p_o - p_e <= p_o - p_o * p_e  <=>  p_e * (1 - p_o) >= 0, always true; equality only at
    # p_o = 1 or p_e = 0 (the latter forces p_o = 0 and kappa = 0). The engine divides exact integers once each,
    # and correctly rounded division is monotone, so it holds in floats too.
    assert r["kappa"] <= r["agreement"]
    if _pe(pairs) < 1:
        assert (r["agreement"], r["kappa"]) == pytest.approx(reference_kappa(pairs), abs=1e-9)
    # counts add up
    assert sum(sum(row.values()) for row in r["confusion"].values()) == len(pairs)
    assert sum(t["support"] for t in r["per_tier"].values()) == len(pairs)
    assert len(r["disagreements"]) == sum(a != h for a, h in pairs)
    for side in ("ai", "human"):
        assert sum(r["prevalence"][side].values()) == pytest.approx(1.0)
    json.dumps(r, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(pair_lists)
def test_property_kappa_1_iff_perfect_agreement(pairs):
    r = analyze(pairs, min_labels=0)
    if _pe(pairs) < 1:
        assert (r["kappa"] == 1.0) == all(a == h for a, h in pairs)
    else:  # every label in both columns is the same one: agreement is necessarily perfect; kappa 1 by convention
        assert r["agreement"] == 1.0 and r["kappa"] == 1.0 and "convention" in r["reasons"][-1]


@settings(max_examples=300, deadline=None)
@given(pair_lists)
def test_property_symmetric_under_swapping_columns(pairs):
    r = analyze(pairs, min_labels=0)
    s = analyze([(h, a) for a, h in pairs], min_labels=0)
    assert s["agreement"] == r["agreement"]
    assert s["kappa"] == r["kappa"]  # exact: the same integers go into the same division
    # precision and recall trade places
    for lab in LABELS:
        assert s["per_tier"][lab]["precision"] == r["per_tier"][lab]["recall"]


@settings(max_examples=200, deadline=None)
@given(pair_lists, st.integers(0, 80), st.floats(0, 1))
def test_property_passed_definition(pairs, min_labels, threshold):
    r = analyze(pairs, min_labels=min_labels, threshold=threshold)
    assert r["passed"] == (len(pairs) >= min_labels and r["agreement"] > threshold)
    assert (r["passed"] is False) == any(("not above" in x or x.startswith("only ")) for x in r["reasons"])
