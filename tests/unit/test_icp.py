"""ICP scoring (engine/rules/icp.py, config/icp.json): a hand-checked table of leads, explain(), properties, config
errors.

How the expected scores were worked out (shipped config/icp.json, weights size 30 / industry 25 / title 35 /
geography 10, tier 1 >= 85, tier 2 >= 70, else tier 3; points = weight x share rounded half up):

  BASE is a perfect company: 120 employees (30), "B2B SaaS" (25), "US" (10) = 65, plus the title.
  title points (35 x seniority share x function share):
      VP / C-level 1.0, SVP 0.9, EVP 0.85, Head 0.85, Director 0.6, Manager 0.3, individual 0.05, none stated 0.2
      Sales / Revenue 1.0, RevOps 0.9, Go-to-Market 0.9, Sales Operations 0.8, Executive (CEO, founder) 0.5
      VP Sales 35, SVP 31.5->32, EVP/Head 29.75->30, Director of Sales 21, Director of Sales Ops 16.8->17,
      Sales Manager 10.5->11, CEO 17.5->18, Head of GTM 26.775->27, junior or not sales/revenue 0
  size points: 51-500 30, 20-50 and 501-1000 12, 1001-5000 6, 5001+ 3, unknown 9.9->10, under 20 disqualified
  industry points: target 25, related 15, unknown 5, other 0; geography: target 10, other or unknown 5
"""
from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.config import load_word_list
from engine.core.errors import ConfigError
from engine.rules.icp import CRITERIA, IcpConfig, IcpResult, load_icp, score_lead
from tests.conftest import CONFIG

ICP = load_icp(CONFIG)
RAW = json.loads((CONFIG / "icp.json").read_text())

BASE = dict(email="pat@northwind.example", first_name="Pat", last_name="Lee", title="VP Sales",
            company="Northwind Cloud", company_domain="northwind.example", employee_count=120,
            industry="B2B SaaS", country="US")
# the shipped exclusion lists hold domains only; company names are added here
CUSTOMERS = ("customer-one.example", "customer-two.example", "Acme Inc.")
COMPETITORS = ("competitor-one.example", "competitor-two.example", "Initech LLC")
DQ = None  # expected tier of a disqualified lead


def score(overrides: dict | None = None, icp: IcpConfig = ICP) -> IcpResult:
    return score_lead({**BASE, **(overrides or {})}, icp, CUSTOMERS, COMPETITORS)


def case(id_, overrides, tier, expected, fragment=""):
    """expected is the score, or for a disqualified lead (tier DQ) a fragment of the reason."""
    return pytest.param(overrides, tier, expected, fragment, id=id_)


CASES = [
    # ---------------------------------------------------------------- titles (company worth 65)
    case("vp-sales", {}, 1, 100, "title 35/35 (VP Sales)"),
    case("vice-president-of-sales", {"title": "Vice President of Sales"}, 1, 100, "read as VP Sales"),
    case("v.p.-dotted", {"title": "V.P. Sales"}, 1, 100, "title 35/35"),
    case("vp-comma", {"title": "VP, Sales"}, 1, 100, "title 35/35"),
    case("vice-president-hyphen-upper", {"title": "vice-president, SALES (EMEA)"}, 1, 100, "title 35/35"),
    case("sales-vp-reversed", {"title": "Sales VP"}, 1, 100, "title 35/35"),
    case("cro", {"title": "CRO"}, 1, 100, "read as Chief Revenue Officer"),
    case("chief-revenue-officer", {"title": "Chief Revenue Officer"}, 1, 100, "title 35/35 (Chief Revenue Officer)"),
    case("c.r.o.-lowercase", {"title": "c.r.o."}, 1, 100, "title 35/35"),
    case("micro-is-not-cro", {"title": "Director, Micro Markets"}, 3, 65, "title 0/35 (not a sales or revenue"),
    case("acro-is-not-cro", {"title": "Acro Partnerships Lead"}, 3, 65, "title 0/35"),
    case("director-of-sales-is-not-cto", {"title": "Director of Sales"}, 1, 86, "title 21/35 (Director of Sales)"),
    case("cto", {"title": "CTO"}, 3, 65, "title 0/35 (not a sales or revenue role"),
    case("coordinator-is-junior-not-coo", {"title": "Sales Coordinator"}, 3, 65,
         "junior or support role (coordinator)"),
    case("coo", {"title": "COO"}, 3, 65, "title 0/35 (not a sales or revenue role"),
    case("vp-revops", {"title": "VP RevOps"}, 1, 97, "title 32/35 (VP RevOps)"),
    case("vp-revenue-operations", {"title": "Vice President, Revenue Operations"}, 1, 97, "read as VP RevOps"),
    case("vp-rev-ops-two-words", {"title": "VP Rev Ops"}, 1, 97, "read as VP RevOps"),
    case("rev-ops-hyphen-no-seniority", {"title": "Rev-Ops"}, 2, 71, "title 6/35 (RevOps, seniority not stated"),
    case("director-sales-operations", {"title": "Director of Sales Operations"}, 2, 82, "title 17/35"),
    case("head-of-sales", {"title": "Head of Sales"}, 1, 95, "title 30/35 (Head of Sales)"),
    case("svp-sales", {"title": "SVP Sales"}, 1, 97, "title 32/35 (SVP Sales)"),
    case("senior-vice-president", {"title": "Senior Vice President, Sales"}, 1, 97, "read as SVP Sales"),
    case("evp-sales", {"title": "EVP, Sales & Marketing"}, 1, 95, "read as EVP Sales"),
    case("head-of-gtm", {"title": "Head of Go-To-Market"}, 1, 92, "title 27/35"),
    case("assistant-to-the-vp-sales", {"title": "Assistant to the VP Sales"}, 3, 65,
         "junior or support role (assistant)"),
    case("executive-assistant-to-cro", {"title": "Executive Assistant to the CRO"}, 3, 65, "title 0/35"),
    case("chief-of-staff-to-cro", {"title": "Chief of Staff to the CRO"}, 3, 65, "title 0/35"),
    case("vp-engineering", {"title": "VP Engineering"}, 3, 65, "not a sales or revenue role"),
    case("sales-intern", {"title": "SALES INTERN"}, 3, 65, "junior or support role (intern)"),
    case("sales-manager", {"title": "Sales Manager"}, 2, 76, "title 11/35 (Sales Manager)"),
    case("ceo", {"title": "Founder & CEO"}, 2, 83, "title 18/35"),
    case("revenue-cycle-is-finance", {"title": "Revenue Cycle Director"}, 3, 65, "title 0/35"),
    case("title-missing", {"title": None}, 3, 65, "title 0/35 (title unknown)"),
    # ---------------------------------------------------------------- size (rest worth 70)
    case("size-19", {"employee_count": 19}, DQ, "too small (19 employees, minimum 20)"),
    case("size-20", {"employee_count": 20}, 2, 82, "size 12/30 (20 employees, in 20-50)"),
    case("size-50", {"employee_count": 50}, 2, 82, "size 12/30"),
    case("size-51", {"employee_count": 51}, 1, 100, "size 30/30 (51 employees, in 51-500)"),
    case("size-500", {"employee_count": 500}, 1, 100, "size 30/30"),
    case("size-501", {"employee_count": 501}, 2, 82, "size 12/30 (501 employees, in 501-1000)"),
    case("size-unknown", {"employee_count": None}, 2, 80, "size 10/30 (employee count unknown)"),
    case("size-5000", {"employee_count": 5000}, 2, 76, "size 6/30 (5,000 employees"),
    case("size-5001", {"employee_count": 5001}, 2, 73, "size 3/30"),
    case("size-range-text", {"employee_count": "51-200"}, 1, 100, "midpoint 125"),
    case("size-text-thousands", {"employee_count": "1,200"}, 2, 76, "size 6/30 (1,200 employees"),
    case("size-negative", {"employee_count": -5}, 2, 80, "employee count unknown (negative)"),
    case("size-zero", {"employee_count": 0}, 2, 80, "employee count unknown"),
    # ---------------------------------------------------------------- agencies
    case("small-agency", {"industry": "Marketing & Advertising", "employee_count": 45}, DQ,
         "agency (Marketing & Advertising), 45 employees, 1,000+ needed"),
    case("agency-999", {"industry": "Advertising Services", "employee_count": 999}, DQ, "agency"),
    case("agency-1000-is-enterprise", {"industry": "Advertising Services", "employee_count": 1000}, 3, 57,
         "industry 0/25"),
    case("enterprise-agency", {"industry": "Marketing & Advertising", "employee_count": 1500}, 3, 51, "size 6/30"),
    case("agency-unknown-size", {"industry": "Digital Agency", "employee_count": None}, DQ,
         "agency (Digital Agency), employee count unknown"),
    case("agency-by-company-name", {"company": "Bright Spark Agency", "industry": None}, DQ,
         "agency (Bright Spark Agency)"),
    case("agency-word-in-saas-company-name", {"company": "Agency Software Inc"}, 1, 100),
    # ---------------------------------------------------------------- customers and competitors
    case("customer-domain", {"company_domain": "customer-one.example"}, DQ, "existing customer (customer-one.example)"),
    case("customer-subdomain", {"company_domain": "eu.customer-one.example"}, DQ, "existing customer"),
    case("customer-from-email", {"company_domain": None, "email": "x@mail.customer-two.example"}, DQ,
         "existing customer (customer-two.example)"),
    case("customer-email-beats-other-domain", {"email": "x@customer-two.example"}, DQ, "existing customer"),
    case("customer-company-name", {"company": "ACME, Inc"}, DQ, "existing customer (Acme Inc.)"),
    case("customer-before-too-small", {"company_domain": "customer-one.example", "employee_count": 5}, DQ,
         "existing customer"),
    case("competitor-domain", {"company_domain": "competitor-one.example"}, DQ, "competitor (competitor-one.example)"),
    case("competitor-url", {"company_domain": "https://www.competitor-two.example/about"}, DQ,
         "competitor (competitor-two.example)"),
    case("competitor-company-name", {"company": "Initech"}, DQ, "competitor (Initech LLC)"),
    case("lookalike-domain-is-not-customer", {"company_domain": "notcustomer-one.example"}, 1, 100),
    # ---------------------------------------------------------------- geography
    case("country-ru", {"country": "RU"}, DQ, "excluded country (RU)"),
    case("country-russian-federation", {"country": "Russian Federation"}, DQ, "excluded country (RU)"),
    case("country-iran", {"country": "iran"}, DQ, "excluded country (IR)"),
    case("country-usa-long", {"country": "United States of America"}, 1, 100, "geography 10/10 (US)"),
    case("country-usa-dotted", {"country": "U.S.A."}, 1, 100, "geography 10/10 (US)"),
    case("country-other", {"country": "Germany"}, 1, 95, "geography 5/10 (DE, outside target countries)"),
    case("country-unknown", {"country": None}, 1, 95, "geography 5/10 (country unknown)"),
    # ---------------------------------------------------------------- industries
    case("industry-excluded", {"industry": "Gambling & Casinos"}, DQ, "excluded industry (Gambling & Casinos)"),
    case("industry-excluded-tobacco", {"industry": "tobacco"}, DQ, "excluded industry"),
    case("industry-other", {"industry": "Hospital & Health Care"}, 2, 75, "industry 0/25"),
    case("industry-unknown", {"industry": None}, 2, 80, "industry 5/25 (industry unknown)"),
    case("industry-related", {"industry": "Internet"}, 1, 90, "industry 15/25 (Internet, related)"),
    case("industry-it-services", {"industry": "Information Technology & Services"}, 1, 100, "industry 25/25"),
    case("biotechnology-is-not-technology", {"industry": "Biotechnology"}, 2, 75, "industry 0/25"),
    # ---------------------------------------------------------------- combinations
    case("vp-sales-small-other-industry", {"employee_count": 35, "industry": "Retail"}, 3, 57),
    case("vp-sales-nothing-else-known", {"employee_count": None, "industry": None, "country": None}, 3, 55),
    case("director-sales-germany", {"title": "Director of Sales", "country": "Deutschland"}, 2, 81),
]


@pytest.mark.parametrize("overrides, tier, expected, fragment", CASES)
def test_hand_checked_leads(overrides, tier, expected, fragment):
    r = score(overrides)
    line = r.explain()
    assert "\n" not in line and all(f"{c} " in line for c in CRITERIA), line
    assert [c.criterion for c in r.breakdown] == list(CRITERIA)
    assert all(0 <= c.points <= c.max for c in r.breakdown)
    if tier is DQ:
        assert r.disqualified and r.tier is None and r.score == 0, line
        assert r.reason.startswith("disqualified: ") and expected in r.reason, r.reason
        assert line.startswith(r.reason)
    else:
        assert not r.disqualified and r.disqualifier is None, line
        assert (r.tier, r.score) == (tier, expected), line
        assert r.score == sum(c.points for c in r.breakdown)
        assert r.reason == f"tier {tier} (score {expected})"
    assert fragment in line, line


def test_table_is_large_enough():
    assert len(CASES) >= 30


def test_explain_is_one_line_in_the_documented_shape():
    r = score()
    assert r.explain() == ("size 30/30 (120 employees, in 51-500); industry 25/25 (B2B SaaS); "
                           "title 35/35 (VP Sales); geography 10/10 (US)")
    # breakdown entries are (criterion, points, max, why) tuples
    assert tuple(r.breakdown[0]) == ("size", 30, 30, "120 employees, in 51-500")


def test_explain_stays_one_line_with_hostile_text():
    r = score({"title": "VP\nSales;\r\n\u2028x" * 30, "industry": "B2B\tSaaS\x00", "country": "Atlantis\n"})
    line = r.explain()
    assert len(line.splitlines()) == 1
    assert line.count(";") == 3  # the separators only


def test_disqualifier_codes():
    assert score({"company_domain": "customer-one.example"}).disqualifier == "customer"
    assert score({"company": "Initech"}).disqualifier == "competitor"
    assert score({"country": "Cuba"}).disqualifier == "country"
    assert score({"industry": "Tobacco"}).disqualifier == "industry"
    assert score({"employee_count": 3}).disqualifier == "too_small"
    assert score({"industry": "Advertising Services"}).disqualifier == "agency"


def test_shipped_exclusion_lists():
    problems: list[str] = []
    customers = load_word_list(CONFIG / "exclusions" / "customers.txt", problems, required=False)
    competitors = load_word_list(CONFIG / "exclusions" / "competitors.txt", problems, required=False)
    assert not problems
    lead = {**BASE, "company_domain": None, "email": "cro@www.competitor-one.example"}
    r = score_lead(lead, ICP, customers, competitors)
    assert r.reason == "disqualified: competitor (competitor-one.example)"
    assert not score_lead(BASE, ICP, customers, competitors).disqualified
    # no lists: nobody is excluded
    assert score_lead({**BASE, "company_domain": "customer-one.example"}, ICP, (), ()).tier == 1


def test_accepts_objects_lead_rows_and_partial_data():
    from engine.adapters.models import Lead

    row = Lead(**{k: v for k, v in BASE.items()})
    assert score_lead(row, ICP, CUSTOMERS, COMPETITORS).score == 100
    assert score_lead(SimpleNamespace(**BASE), ICP).score == 100
    r = score_lead(SimpleNamespace(title="CRO"), ICP)  # everything else missing
    assert (r.score, r.tier) == (10 + 5 + 35 + 5, 3)
    assert score_lead({}, ICP).tier == 3
    assert score_lead(None, ICP).tier == 3


def test_thresholds_are_configurable():
    raw = json.loads(json.dumps(RAW))
    raw["agency"]["enterprise_min_employees"] = 200
    raw["tiers"] = {"tier_1_min": 60, "tier_2_min": 40}
    raw["size"]["disqualify_below"] = 10
    raw["size"]["bands"][0]["min"] = 10
    icp = IcpConfig.model_validate(raw)
    agency = score({"industry": "Marketing & Advertising", "employee_count": 300}, icp)
    assert not agency.disqualified and agency.score == 30 + 0 + 35 + 10 and agency.tier == 1
    assert score({"title": "VP Engineering"}, icp).tier == 1  # 65 >= 60
    assert score({"employee_count": 15}, icp).score == 82


def test_scores_stay_within_0_and_100_for_the_table():
    for p in CASES:
        r = score(p.values[0])
        assert 0 <= r.score <= 100


# ------------------------------------------------------------------------------------------ never raises

_VOCAB = ["VP", "V.P.", "Sales", "CRO", "Micro", "Chief", "Revenue", "Officer", "Rev", "Ops", "RevOps", "to", "the",
          "Assistant", "Director", "CTO", "COO", "Coordinator", "&", ",", "Head", "of", "Agency", "SaaS", "US",
          "Russia", "51-200", "1,200", "-", ".", "customer-one.example", "Inc", "go", "market", "\n", ";", "é"]
_text = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_VOCAB), max_size=8).map(" ".join))
_value = st.one_of(st.none(), _text, st.integers(min_value=-10**30, max_value=10**30),
                   st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.binary(max_size=12),
                   st.lists(st.integers(), max_size=2))
_FIELDS = ("email", "title", "company", "company_domain", "employee_count", "industry", "country")
_lead = st.fixed_dictionaries({}, optional={f: _value for f in _FIELDS})
_leads = st.one_of(_lead, _lead.map(lambda d: SimpleNamespace(**d)))
_lists = st.one_of(st.none(), st.lists(st.one_of(_text, st.sampled_from(CUSTOMERS + COMPETITORS)), max_size=4))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lead=_leads, customers=_lists, competitors=_lists)
def test_score_lead_never_raises_and_stays_in_range(lead, customers, competitors):
    r = score_lead(lead, ICP, customers, competitors)
    assert isinstance(r.score, int) and 0 <= r.score <= 100
    assert (r.tier is None) == r.disqualified
    assert all(0 <= c.points <= c.max for c in r.breakdown)
    if not r.disqualified:
        assert r.score == sum(c.points for c in r.breakdown)
        assert r.tier == ICP.tier_for(r.score) and r.tier in (1, 2, 3)
    line = r.explain()
    assert len(line.splitlines()) == 1 and all(f"{c} " in line for c in CRITERIA)
    assert "\n" not in r.reason


@pytest.mark.parametrize("count", [10**40, -10**40, math.inf, -math.inf, math.nan, "9" * 5000, "lots", True,
                                   "500-50", 120.7, "10,001+"])
def test_odd_employee_counts(count):
    r = score({"employee_count": count})
    assert 0 <= r.score <= 100 and not r.disqualified


def test_scoring_is_fast():
    t = time.perf_counter()
    for _ in range(1000):
        score({"title": "Senior Vice President, Revenue Operations & Sales Enablement"})
    assert time.perf_counter() - t < 2.0


# ------------------------------------------------------------------------------------------ load_icp

def test_shipped_icp_loads():
    icp = load_icp(CONFIG)
    w = icp.weights
    assert w.size + w.industry + w.title + w.geography == 100
    assert (icp.size.target_min, icp.size.target_max, icp.size.disqualify_below) == (51, 500, 20)
    assert icp.agency.enterprise_min_employees == 1000
    assert icp.tiers.tier_1_min > icp.tiers.tier_2_min


@pytest.fixture
def icp_dir(tmp_path):
    def write(mutate=None, text: str | None = None):
        data = json.loads(json.dumps(RAW))
        if mutate:
            mutate(data)
        (tmp_path / "icp.json").write_text(text if text is not None else json.dumps(data))
        return tmp_path
    return write


def icp_problems(cdir) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_icp(cdir)
    assert ei.value.exit_code == 2
    for p in ei.value.problems:
        assert p.startswith(f"{cdir / 'icp.json'}: ") and p in str(ei.value)
    return ei.value.problems


def _set(path: str, value):
    def mutate(d):
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if isinstance(d, list) else d[p]
        d[int(last) if isinstance(d, list) else last] = value
    return mutate


@pytest.mark.parametrize("path, value, expected", [
    ("weights.title", "35", "key 'weights.title' = \"35\": Input should be a valid integer"),
    ("weights.title", 30, "key 'weights' = {\"size\": 30, \"industry\": 25, \"title\": 30, \"geography\": 10}: "
                          "weights must add up to 100 (the score is out of 100), found 95"),
    ("tiers.tier_1_min", 60, "key 'tiers.tier_2_min' = 70: must be below tier_1_min (60)"),
    ("size.target_max", 40, "key 'size.target_max' = 40: must not be below target_min (51)"),
    ("size.bands.0.share", 1.5, "key 'size.bands[0].share' = 1.5: Input should be less than or equal to 1"),
    ("size.bands.1.min", 400, "bands[1] (400-1000) overlaps the target 51-500"),
    ("agency.enterprise_min_employees", "1000",
     "key 'agency.enterprise_min_employees' = \"1000\": Input should be a valid integer"),
    ("titles.seniority.vp.label", "VP", "key 'titles.seniority.vp.label' = \"VP\": must hold '{function}' once"),
    ("titles.junior_share", True, "key 'titles.junior_share' = true: Input should be a valid number"),
    ("geography.excluded", ["RU", "United States"],
     "key 'geography.excluded' = [\"RU\", \"United States\"]: 'United States' is also a target country"),
    ("industry.target", ["SaaS", "--"], "term '--' holds no letters or digits"),
])
def test_bad_values_name_file_key_value_and_allowed(icp_dir, path, value, expected):
    cdir = icp_dir(_set(path, value))
    problems = icp_problems(cdir)
    assert len(problems) == 1 and expected in problems[0], problems


def test_unknown_key_suggests_the_real_one(icp_dir):
    cdir = icp_dir(lambda d: d["tiers"].__setitem__("tier_3_min", 40))
    (p,) = icp_problems(cdir)
    assert "key 'tiers.tier_3_min' = 40 is not a known setting" in p
    assert "allowed here: tier_1_min, tier_2_min" in p


def test_missing_key(icp_dir):
    cdir = icp_dir(lambda d: d["titles"]["functions"]["sales"].pop("share"))
    assert icp_problems(cdir) == [f"{cdir / 'icp.json'}: key 'titles.functions.sales.share' is missing (required)"]


def test_invalid_json_and_missing_file(icp_dir, tmp_path):
    cdir = icp_dir(text='{"weights": {}\n "tiers": 1}')
    assert icp_problems(cdir) == [f"{cdir / 'icp.json'}: not valid JSON at line 2, column 2: Expecting ',' delimiter"]
    (cdir / "icp.json").unlink()
    assert icp_problems(cdir) == [f"{cdir / 'icp.json'}: file is missing"]


def test_every_problem_is_reported(icp_dir):
    def mutate(d):
        d["weights"]["size"] = -1
        d["geography"]["other_share"] = 2
    problems = icp_problems(icp_dir(mutate))
    assert len(problems) == 2
