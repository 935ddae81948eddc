#!/usr/bin/env python3
"""Write data/demo_leads.csv: synthetic prospects for demos and tests (`alpha` lead import, ICP scoring, routing).

Deterministic: the same seed gives the same bytes, so the CSV is checked in and regenerated only when this script
changes (``python scripts/make_demo_leads.py``; ``--check`` fails when the checked-in file is stale).

Everything is made up. Email and company domains use the reserved ``.example`` top-level domain (RFC 2606), never
a real company's domain; the customer and competitor domains come from config/exclusions/*.txt, so the demo shows
those leads being excluded. The file looks like a prospecting-tool export (headers such as "# Employees",
"Website", "Time Zone"; employee counts as "250", "51-200" or "1,000+") and ends up with:

* company sizes across the ICP bands, including the edges 19, 20, 50, 51, 500 and 501;
* industries (B2B SaaS, Software, Technology, Marketing Agency, Healthcare, Manufacturing, Retail, Financial
  Services, ...) and titles from CRO and VP Sales to Marketing Coordinator and "Assistant to the VP Sales";
* countries with matching IANA time zones (US, Canada, UK, Ireland, Germany, France, Netherlands, Spain, Sweden,
  Australia, New Zealand, India, Singapore, Brazil, Mexico, Japan);
* engagement: most leads none; some recent opens, clicks and visits; some engaged long ago and silent since;
  a few replies;
* eight bad rows, so an import's error report has something to show: two invalid emails, one missing email,
  two duplicates (one differing only in case), a bad employee count, a bad date and a bad time zone. The first
  five are rejected; the last three are imported with the bad value dropped.
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import sys
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "demo_leads.csv"
EXCLUSIONS = ROOT / "config" / "exclusions"
SEED = 20261120
LEADS = 540                                                  # valid, unique leads (bad rows come on top)
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # engagement dates are at or before this instant

HEADER = ["Email", "First Name", "Last Name", "Title", "Company", "Website", "# Employees", "Industry", "Country",
          "State", "Time Zone", "LinkedIn URL", "Source", "Last Open", "Last Click", "Last Reply", "Last Visit",
          "Website Visits", "Seniority"]

FIRST = ["James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "William", "Elizabeth",
         "Priya", "Arjun", "Ananya", "Rahul", "Wei", "Mei", "Hiroshi", "Yuki", "Sakura", "Kenji", "José", "María",
         "Lucía", "João", "Ana", "Gabriel", "Zoë", "Chloé", "François", "Amélie", "Jürgen", "Lena", "Lukas", "Anja",
         "Søren", "Ingrid", "Sven", "Fatima", "Omar", "Aisha", "Kwame", "Amara", "Liam", "Olivia", "Noah", "Emma",
         "Ethan", "Ava", "Mateo", "Isabella", "Sean", "Siobhan", "Connor", "Aoife", "Daan", "Sanne", "Pieter",
         "Jack", "Charlotte", "Harry", "Amelia", "Tane", "Aroha", "Carlos", "Valentina", "Ravi", "Deepa"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Patel", "Sharma", "Iyer", "Chen", "Wang", "Tanaka", "Suzuki", "Sato", "Silva", "Santos", "Oliveira",
        "Dubois", "Lefèvre", "Müller", "Schmidt", "Schneider", "Fischer", "Jensen", "Nielsen", "Andersson",
        "Johansson", "de Vries", "van der Berg", "Jansen", "O'Brien", "Murphy", "Kelly", "Okafor", "Mensah",
        "Haddad", "Khan", "Nguyen", "Kim", "Park", "Cohen", "Rossi", "Bianchi", "Novak", "Kowalski", "Walker",
        "Taylor", "Wilson", "Thompson", "Clarke", "Ngata", "Fernández", "López", "Gómez", "Reddy", "Nair"]

PREFIX = ["North", "Blue", "Bright", "Iron", "Silver", "Cedar", "Quarry", "Summit", "Harbor", "Maple", "Atlas",
          "Nimbus", "Vector", "Lumen", "Orbit", "Pioneer", "Granite", "Willow", "Beacon", "Falcon", "Copper",
          "Meridian", "Tidal", "Cobalt", "Juniper", "Aurora", "Keystone", "Riverbend", "Stonegate", "Evergreen"]
SUFFIX = {
    "B2B SaaS": ["Cloud", "Stack", "Flow", "Metrics", "Pipeline", "Signal"],
    "Software": ["Software", "Labs", "Systems", "Code", "Dev"],
    "Technology": ["Tech", "Digital", "Networks", "Data"],
    "Information Technology": ["IT", "Infra", "Ops"],
    "Marketing Agency": ["Agency", "Creative", "Media", "Brand Studio"],
    "Marketing and Advertising": ["Ads", "Advertising", "Growth Partners"],
    "Healthcare": ["Health", "Care", "Clinics", "Medical"],
    "Manufacturing": ["Manufacturing", "Industries", "Fabrication", "Works"],
    "Retail": ["Retail", "Outfitters", "Stores", "Market"],
    "Financial Services": ["Capital", "Financial", "Payments", "Partners"],
    "IT Services": ["Consulting", "Solutions", "Services"],
    "Internet": ["Online", "Web", "Hub"],
    "Education": ["Learning", "Academy", "Education"],
    "Logistics": ["Logistics", "Freight", "Shipping"],
    "Gambling": ["Bets", "Casino", "Gaming"],
}
INDUSTRY_WEIGHTS = {"B2B SaaS": 22, "Software": 16, "Technology": 10, "Information Technology": 6,
                    "Marketing Agency": 8, "Marketing and Advertising": 3, "Healthcare": 7, "Manufacturing": 7,
                    "Retail": 6, "Financial Services": 7, "IT Services": 4, "Internet": 3, "Education": 2,
                    "Logistics": 2, "Gambling": 1}

# (country, states/regions, time zones), weight
GEO = [
    (("United States", ["CA", "NY", "TX", "WA", "MA", "IL", "CO", "GA"],
      {"CA": "America/Los_Angeles", "WA": "America/Los_Angeles", "NY": "America/New_York",
       "MA": "America/New_York", "GA": "America/New_York", "TX": "America/Chicago", "IL": "America/Chicago",
       "CO": "America/Denver"}), 38),
    (("Canada", ["ON", "BC", "QC", "AB"], {"ON": "America/Toronto", "BC": "America/Vancouver",
                                            "QC": "America/Toronto", "AB": "America/Edmonton"}), 7),
    (("United Kingdom", ["England", "Scotland"], {"England": "Europe/London", "Scotland": "Europe/London"}), 10),
    (("Ireland", ["Dublin"], {"Dublin": "Europe/Dublin"}), 3),
    (("Germany", ["Berlin", "Bavaria", "Hamburg"], {"Berlin": "Europe/Berlin", "Bavaria": "Europe/Berlin",
                                                     "Hamburg": "Europe/Berlin"}), 6),
    (("France", ["Île-de-France", "Auvergne-Rhône-Alpes"], {"Île-de-France": "Europe/Paris",
                                                           "Auvergne-Rhône-Alpes": "Europe/Paris"}), 4),
    (("Netherlands", ["North Holland", "South Holland"], {"North Holland": "Europe/Amsterdam",
                                                          "South Holland": "Europe/Amsterdam"}), 4),
    (("Spain", ["Madrid", "Catalonia"], {"Madrid": "Europe/Madrid", "Catalonia": "Europe/Madrid"}), 2),
    (("Sweden", ["Stockholm"], {"Stockholm": "Europe/Stockholm"}), 2),
    (("Australia", ["NSW", "VIC", "WA"], {"NSW": "Australia/Sydney", "VIC": "Australia/Melbourne",
                                          "WA": "Australia/Perth"}), 6),
    (("New Zealand", ["Auckland"], {"Auckland": "Pacific/Auckland"}), 2),
    (("India", ["Karnataka", "Maharashtra"], {"Karnataka": "Asia/Kolkata", "Maharashtra": "Asia/Kolkata"}), 6),
    (("Singapore", [""], {"": "Asia/Singapore"}), 2),
    (("Brazil", ["São Paulo", "Rio de Janeiro"], {"São Paulo": "America/Sao_Paulo",
                                                  "Rio de Janeiro": "America/Sao_Paulo"}), 4),
    (("Mexico", ["CDMX"], {"CDMX": "America/Mexico_City"}), 2),
    (("Japan", ["Tokyo", "Osaka"], {"Tokyo": "Asia/Tokyo", "Osaka": "Asia/Tokyo"}), 4),
]

# title, seniority (a column the importer does not know: it lands in the lead's data), weight
TITLES = [
    ("VP Sales", "VP", 9), ("VP of Sales", "VP", 5), ("Vice President, Sales", "VP", 3), ("CRO", "C-Suite", 4),
    ("Chief Revenue Officer", "C-Suite", 5), ("Head of RevOps", "Head", 5), ("Head of Sales", "Head", 5),
    ("Director of Sales Operations", "Director", 5), ("Sales Director", "Director", 4),
    ("SVP, Global Sales", "VP", 2), ("VP Revenue Operations", "VP", 3), ("Head of Growth", "Head", 2),
    ("CTO", "C-Suite", 4), ("COO", "C-Suite", 3), ("CEO", "C-Suite", 5), ("Founder", "Owner", 3),
    ("Co-Founder & CEO", "Owner", 3), ("CFO", "C-Suite", 2), ("VP Marketing", "VP", 3),
    ("Marketing Coordinator", "Entry", 4), ("Marketing Manager", "Manager", 3), ("Account Executive", "Senior", 6),
    ("Senior Account Executive", "Senior", 3), ("SDR", "Entry", 3), ("Sales Development Representative", "Entry", 2),
    ("Sales Manager", "Manager", 4), ("Assistant to the VP Sales", "Entry", 2), ("Executive Assistant", "Entry", 1),
    ("Chief of Staff to the CRO", "Senior", 1), ("Software Engineer", "Senior", 3), ("HR Manager", "Manager", 2),
    ("Office Manager", "Manager", 1), ("Director of Engineering", "Director", 2),
    ("Customer Success Manager", "Manager", 2),
]

# Employee counts as prospecting tools write them. The ICP edges come first so every one of them is used.
EDGE_SIZES = ["19", "20", "50", "51", "500", "501"]
SIZES = [("1-10", 3), ("11-50", 6), ("8", 1), ("35", 2), ("51-200", 14), ("120", 4), ("201-500", 12),
         ("250", 4), ("340", 3), ("501-1,000", 6), ("800", 2), ("1,001-5,000", 5), ("1,000+", 3), ("2400", 2),
         ("5,001-10,000", 2), ("10,001+", 2), ("12000", 1), ("", 6)]


def _pick(rng: random.Random, weighted):
    items, weights = zip(*weighted)
    return rng.choices(items, weights=weights, k=1)[0]


def _ascii(s: str) -> str:
    t = unicodedata.normalize("NFKD", s)
    return "".join(c for c in t if c.isascii() and (c.isalnum() or c in ".-")).lower()


def _stamp(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exclusion_domains(name: str) -> list[str]:
    path = EXCLUSIONS / name
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = line.split("#", 1)[0].strip().removeprefix("@").lower()
            if "." in entry and " " not in entry:
                out.append(entry)
    return out


def _companies(rng: random.Random) -> list[dict]:
    used: set[str] = set()
    companies = []
    sizes = EDGE_SIZES + [_pick(rng, SIZES) for _ in range(150)]
    for size in sizes:
        industry = _pick(rng, INDUSTRY_WEIGHTS.items())
        while True:
            name = f"{rng.choice(PREFIX)}{rng.choice(['', '', ' '])}{rng.choice(SUFFIX[industry])}"
            domain = _ascii(name.replace(" ", "")) + ".example"
            if domain not in used:
                break
        used.add(domain)
        geo = _pick(rng, GEO)
        companies.append({"name": name + rng.choice(["", "", "", " Inc.", " Ltd", " GmbH", " LLC"]), "domain": domain,
                          "size": size, "industry": industry, "geo": geo})
    for kind in ("customers.txt", "competitors.txt"):
        for domain in _exclusion_domains(kind):
            stem = domain.split(".")[0].replace("-", " ").title()
            companies.append({"name": stem, "domain": domain, "size": "201-500", "industry": "B2B SaaS",
                              "geo": GEO[0][0], "excluded": kind})
    return companies


def _engagement(rng: random.Random) -> dict:
    kind = _pick(rng, [("none", 66), ("recent", 16), ("long_ago", 10), ("visitor", 4), ("replied", 4)])
    out = {"Last Open": "", "Last Click": "", "Last Reply": "", "Last Visit": "", "Website Visits": ""}
    if kind == "recent":
        opened = AS_OF - timedelta(days=rng.randint(0, 13), minutes=rng.randint(0, 1439))
        out["Last Open"] = _stamp(opened)
        if rng.random() < 0.45:
            out["Last Click"] = _stamp(opened + timedelta(minutes=rng.randint(1, 90)))
        if rng.random() < 0.4:
            out["Last Visit"] = _stamp(AS_OF - timedelta(days=rng.randint(0, 10), minutes=rng.randint(0, 1439)))
            out["Website Visits"] = str(rng.randint(1, 9))
    elif kind == "long_ago":
        opened = AS_OF - timedelta(days=rng.randint(150, 420), minutes=rng.randint(0, 1439))
        out["Last Open"] = _stamp(opened)
        if rng.random() < 0.5:
            out["Last Click"] = _stamp(opened + timedelta(minutes=rng.randint(1, 240)))
        if rng.random() < 0.3:
            out["Last Visit"] = _stamp(opened + timedelta(days=rng.randint(0, 3)))
            out["Website Visits"] = str(rng.randint(1, 4))
    elif kind == "visitor":
        out["Last Visit"] = _stamp(AS_OF - timedelta(days=rng.randint(0, 6), minutes=rng.randint(0, 1439)))
        out["Website Visits"] = str(rng.randint(1, 14))
    elif kind == "replied":
        replied = AS_OF - timedelta(days=rng.randint(1, 90), minutes=rng.randint(0, 1439))
        out["Last Open"] = _stamp(replied - timedelta(hours=rng.randint(1, 48)))
        out["Last Reply"] = _stamp(replied)
    return out


def build_rows(seed: int = SEED, count: int = LEADS) -> list[dict]:
    """The demo rows (dicts keyed by HEADER), bad rows included."""
    rng = random.Random(seed)
    companies = _companies(rng)
    regular = [c for c in companies if "excluded" not in c]
    excluded = [c for c in companies if "excluded" in c]
    emails: set[str] = set()
    rows: list[dict] = []
    # Two or three leads at every customer and competitor, then the rest spread over the other companies (the
    # edge-size companies first, so each edge is sure to appear).
    plan = [c for c in excluded for _ in range(rng.randint(2, 3))]
    plan += regular[:len(EDGE_SIZES)]
    while len(plan) < count:
        plan.append(rng.choice(regular))
    for company in plan[:count]:
        while True:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            local = rng.choice([f"{_ascii(first)}.{_ascii(last)}", f"{_ascii(first)[0]}{_ascii(last)}",
                                f"{_ascii(first)}"]).replace(" ", "")
            email = f"{local}@{company['domain']}"
            if email not in emails:
                break
        emails.add(email)
        country, states, zones = company["geo"]
        state = rng.choice(states)
        title, seniority = _pick(rng, [((t, s), w) for t, s, w in TITLES])
        slug = f"{_ascii(first)}-{_ascii(last)}-{rng.randint(1000, 9999)}".replace(" ", "")
        row = {
            "Email": email if rng.random() > 0.03 else email.title(),  # a few mixed-case addresses
            "First Name": first, "Last Name": last, "Title": title, "Company": company["name"],
            "Website": rng.choice([f"https://www.{company['domain']}", f"{company['domain']}",
                                   f"http://{company['domain']}/"]),
            "# Employees": company["size"], "Industry": company["industry"], "Country": country, "State": state,
            "Time Zone": zones[state] if rng.random() > 0.08 else "",
            "LinkedIn URL": f"https://www.linkedin.com/in/{slug}" if rng.random() > 0.25 else "",
            "Source": rng.choice(["Apollo export", "Apollo export", "Sales Navigator", "Webinar list", "RB2B"]),
            "Seniority": seniority,
            **_engagement(rng),
        }
        rows.append(row)

    def bad(base: dict, **changes) -> dict:
        email = changes.get("Email", "")
        if "@" in email and base is template:  # a made-up company of its own
            domain = email.rsplit("@", 1)[1].lower()
            stem = domain.split(".")[0].replace("-", " ").title()
            changes = {"Company": stem, "Website": domain, "LinkedIn URL": "", **changes}
        return {**base, **changes}

    template = rows[10]
    bad_rows = [
        bad(template, **{"Email": "maria.gonzalez(at)brightlane.example", "First Name": "María",
                         "Last Name": "González"}),
        bad(template, **{"Email": "tom@@quarry-labs.example", "First Name": "Tom", "Last Name": "Baker"}),
        bad(template, **{"Email": "", "First Name": "Nameless", "Last Name": "Prospect"}),
        bad(rows[3], **{"Title": "VP Sales (updated title, duplicate row)"}),            # exact duplicate email
        bad(rows[7], **{"Email": rows[7]["Email"].upper()}),                              # same email, other case
        bad(template, **{"Email": "sam.rivera@harbor-metrics.example", "First Name": "Sam", "Last Name": "Rivera",
                         "# Employees": "a few hundred"}),
        bad(template, **{"Email": "lee.cho@summit-grid.example", "First Name": "Lee", "Last Name": "Cho",
                         "Last Open": "last tuesday"}),
        bad(template, **{"Email": "noor.ali@atlas-fleet.example", "First Name": "Noor", "Last Name": "Ali",
                         "Time Zone": "Mars/Olympus_Mons"}),
    ]
    positions = sorted(rng.sample(range(20, len(rows)), len(bad_rows)), reverse=True)
    for pos, b in zip(positions, bad_rows):
        rows.insert(pos, b)
    return rows


def render(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow([r.get(h, "") for h in HEADER])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--count", type=int, default=LEADS, help="valid, unique leads (8 bad rows come on top)")
    ap.add_argument("--check", action="store_true", help="fail if --out differs from what would be written")
    args = ap.parse_args(argv)
    text = render(build_rows(args.seed, args.count))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is stale: run python scripts/make_demo_leads.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10)) - 1} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
