"""Countries to time zones (engine/rules/geo.py): codes, names, variants and native names to one IANA zone from the tz
database's own data, and a lead's zone with where it came from."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules import geo
from engine.rules.geo import country_code, country_timezone, lead_timezone, normalise

CODES = sorted(geo.zones_by_country())  # every ISO code the tz database lists zones for


@pytest.mark.parametrize("country, zone", [
    ("US", "America/New_York"), ("USA", "America/New_York"), ("United States", "America/New_York"),
    ("U.S.A.", "America/New_York"), ("United States of America", "America/New_York"), ("us", "America/New_York"),
    ("Deutschland", "Europe/Berlin"), ("DEU", "Europe/Berlin"), ("Germany", "Europe/Berlin"),
    ("UK", "Europe/London"), ("Great Britain", "Europe/London"), ("England", "Europe/London"),
    ("GB", "Europe/London"), ("United Kingdom of Great Britain and Northern Ireland", "Europe/London"),
    ("Czechia", "Europe/Prague"), ("Czech Republic", "Europe/Prague"), ("Česká republika", "Europe/Prague"),
    ("South Korea", "Asia/Seoul"), ("Korea, Republic of", "Asia/Seoul"), ("Korea (South)", "Asia/Seoul"),
    ("KOR", "Asia/Seoul"), ("North Korea", "Asia/Pyongyang"),
    ("Japan", "Asia/Tokyo"), ("JPN", "Asia/Tokyo"), ("日本", "Asia/Tokyo"),
    ("Côte d’Ivoire", "Africa/Abidjan"), ("Ivory Coast", "Africa/Abidjan"),
    ("Saint Kitts & Nevis", "America/St_Kitts"), ("St. Kitts and Nevis", "America/St_Kitts"),
    ("The Netherlands", "Europe/Amsterdam"), ("Holland", "Europe/Amsterdam"), ("Österreich", "Europe/Vienna"),
    ("España", "Europe/Madrid"), ("Türkiye", "Europe/Istanbul"), ("Turkey", "Europe/Istanbul"),
    ("Virgin Islands, British", "America/Tortola"), ("American Samoa", "Pacific/Pago_Pago"),
    ("Congo, The Democratic Republic of the", "Africa/Kinshasa"), ("DRC", "Africa/Kinshasa"),
    ("Republic of the Congo", "Africa/Brazzaville"),
])
def test_names_codes_and_variants(country, zone):
    assert country_timezone(country) == zone


@pytest.mark.parametrize("country, zone", [
    # several zones: where most people live, not tzdb's geographically-first row
    ("US", "America/New_York"), ("Canada", "America/Toronto"), ("Australia", "Australia/Sydney"),
    ("Brazil", "America/Sao_Paulo"), ("Russia", "Europe/Moscow"), ("Mexico", "America/Mexico_City"),
    ("India", "Asia/Kolkata"), ("China", "Asia/Shanghai"), ("Ukraine", "Europe/Kyiv"),
    ("Uzbekistan", "Asia/Tashkent"), ("Spain", "Europe/Madrid"), ("Indonesia", "Asia/Jakarta"),
])
def test_several_zones_pick_the_most_populous(country, zone):
    assert country_timezone(country) == zone
    assert zone in geo.zones_by_country()[country_code(country)]


def test_the_mapping_is_the_tz_databases_own():
    zones = geo.zones_by_country()
    assert len(zones) > 240 and zones["JP"] == ("Asia/Tokyo",) and len(zones["US"]) > 20
    for code, zone in geo.MOST_POPULOUS.items():  # every override is a zone the data lists for that country
        assert zone in zones[code], code
    assert set(geo.country_zones()) - {"XK"} == set(zones)


@pytest.mark.parametrize("country", [None, "", "   ", "...", "Atlantis", "XX", "ZZZ", 42, "Bouvet Island",
                                     "Korea Republic" * 30])
def test_unknown_countries_have_no_zone(country):
    assert country_timezone(country) is None


def test_no_name_is_claimed_by_two_countries_and_codes_win():
    keys = geo.country_codes()
    for line in geo.ISO3166.splitlines():
        a2, a3, _ = line.split(" ", 2)
        assert keys[a2.lower()] == a2 and keys[a3.lower()] == a2
    assert keys[normalise("Samoa")] == "WS" and keys[normalise("Congo")] == "CG"


def test_lead_timezone_stored_zone_then_country_then_default():
    assert lead_timezone("Europe/Paris", "Japan", "America/New_York") == ("Europe/Paris", "lead")
    assert lead_timezone(" Europe/Paris ", "Japan", "America/New_York") == ("Europe/Paris", "lead")
    assert lead_timezone(None, "Japan", "America/New_York") == ("Asia/Tokyo", "country")
    assert lead_timezone("", "Deutschland", "America/New_York") == ("Europe/Berlin", "country")
    assert lead_timezone("Mars/Olympus_Mons", "Japan", "America/New_York") == ("Asia/Tokyo", "country")
    assert lead_timezone("../../etc/passwd", None, "America/New_York") == ("America/New_York", "default")
    assert lead_timezone(None, "Atlantis", "UTC") == ("UTC", "default")
    assert lead_timezone(None, None, "UTC") == ("UTC", "default")
    assert lead_timezone("x" * 5000, "", "UTC") == ("UTC", "default")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CODES))
def test_every_iso_code_maps_to_a_zone_zoneinfo_loads(code):
    zone = country_timezone(code)
    assert zone is not None and zone in geo.zones_by_country()[code]
    assert ZoneInfo(zone).key == zone


def _spell(draw, text: str) -> str:
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in text)
    pad = st.text(alphabet=" \t\n", max_size=3)
    return draw(pad) + cased + draw(pad)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_case_and_whitespace_variants_map_the_same(data):
    code = data.draw(st.sampled_from(CODES))
    names = [code] + [line.split(" ", 2)[1] for line in geo.ISO3166.splitlines() if line.startswith(code + " ")]
    names += [n for line in geo.ISO3166.splitlines() if line.startswith(code + " ")
              for n in line.split(" ", 2)[2].split("|")]
    name = data.draw(st.sampled_from(names))
    assert country_timezone(_spell(data.draw, name)) == country_timezone(name) == country_timezone(code)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40)), st.one_of(st.none(), st.text(max_size=40)))
def test_lead_timezone_always_gives_a_loadable_zone_and_a_source(tz, country):
    zone, source = lead_timezone(tz, country, "America/New_York")
    assert source in ("lead", "country", "default")
    assert ZoneInfo(zone).key == zone
    if source == "lead":
        assert zone == tz.strip()
