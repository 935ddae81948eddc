"""Countries to time zones: a lead's country as imported (a code, an English name, a common variant or a native
name) to the one IANA zone its working hours are judged in, when the lead has no time zone of its own.

Data
    The code -> zones mapping is the tz database's own: ``zone.tab`` and ``iso3166.tab``, read from the ``tzdata``
    package (a dependency, so it does not depend on the OS; the system's TZPATH is only a fallback). ``zone.tab``
    lists one row per (country, zone); tzdb sorts a country's rows "by an order that makes some geographical sense
    and puts the most populous timezones first where that does not contradict" geography, so the first row is
    the most populous zone for most countries. Where geography wins over population, ``MOST_POPULOUS`` names the
    zone most people live in (applied only when the data lists that zone for the country).
Names
    ``iso3166.tab`` (tzdb's English names), the ISO 3166-1 table below (alpha-3 codes, ISO names, official and
    common names) and ``ALIASES`` (variants and native names). Matching ignores case, accents, punctuation,
    spaces and the word "the"; "Saint" and "St" are the same; "Korea (South)" also reads as "South Korea" and
    "Korea, Republic of" as "Republic of Korea".
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError

# ISO 3166-1: alpha-2, alpha-3, then the names separated by '|' (name, official name, common name). Generated
# once from Debian's iso-codes 4.15.0 (/usr/share/iso-codes/json/iso_3166-1.json) with:
#   for e in sorted(json.load(f)["3166-1"], key=lambda e: e["alpha_2"]):
#       names = list(dict.fromkeys(e[k] for k in ("name", "official_name", "common_name") if k in e))
#       print(e["alpha_2"], e["alpha_3"], "|".join(names))
ISO3166 = """\
AD AND Andorra|Principality of Andorra
AE ARE United Arab Emirates
AF AFG Afghanistan|Islamic Republic of Afghanistan
AG ATG Antigua and Barbuda
AI AIA Anguilla
AL ALB Albania|Republic of Albania
AM ARM Armenia|Republic of Armenia
AO AGO Angola|Republic of Angola
AQ ATA Antarctica
AR ARG Argentina|Argentine Republic
AS ASM American Samoa
AT AUT Austria|Republic of Austria
AU AUS Australia
AW ABW Aruba
AX ALA Åland Islands
AZ AZE Azerbaijan|Republic of Azerbaijan
BA BIH Bosnia and Herzegovina|Republic of Bosnia and Herzegovina
BB BRB Barbados
BD BGD Bangladesh|People's Republic of Bangladesh
BE BEL Belgium|Kingdom of Belgium
BF BFA Burkina Faso
BG BGR Bulgaria|Republic of Bulgaria
BH BHR Bahrain|Kingdom of Bahrain
BI BDI Burundi|Republic of Burundi
BJ BEN Benin|Republic of Benin
BL BLM Saint Barthélemy
BM BMU Bermuda
BN BRN Brunei Darussalam
BO BOL Bolivia, Plurinational State of|Plurinational State of Bolivia|Bolivia
BQ BES Bonaire, Sint Eustatius and Saba
BR BRA Brazil|Federative Republic of Brazil
BS BHS Bahamas|Commonwealth of the Bahamas
BT BTN Bhutan|Kingdom of Bhutan
BV BVT Bouvet Island
BW BWA Botswana|Republic of Botswana
BY BLR Belarus|Republic of Belarus
BZ BLZ Belize
CA CAN Canada
CC CCK Cocos (Keeling) Islands
CD COD Congo, The Democratic Republic of the
CF CAF Central African Republic
CG COG Congo|Republic of the Congo
CH CHE Switzerland|Swiss Confederation
CI CIV Côte d'Ivoire|Republic of Côte d'Ivoire
CK COK Cook Islands
CL CHL Chile|Republic of Chile
CM CMR Cameroon|Republic of Cameroon
CN CHN China|People's Republic of China
CO COL Colombia|Republic of Colombia
CR CRI Costa Rica|Republic of Costa Rica
CU CUB Cuba|Republic of Cuba
CV CPV Cabo Verde|Republic of Cabo Verde
CW CUW Curaçao
CX CXR Christmas Island
CY CYP Cyprus|Republic of Cyprus
CZ CZE Czechia|Czech Republic
DE DEU Germany|Federal Republic of Germany
DJ DJI Djibouti|Republic of Djibouti
DK DNK Denmark|Kingdom of Denmark
DM DMA Dominica|Commonwealth of Dominica
DO DOM Dominican Republic
DZ DZA Algeria|People's Democratic Republic of Algeria
EC ECU Ecuador|Republic of Ecuador
EE EST Estonia|Republic of Estonia
EG EGY Egypt|Arab Republic of Egypt
EH ESH Western Sahara
ER ERI Eritrea|the State of Eritrea
ES ESP Spain|Kingdom of Spain
ET ETH Ethiopia|Federal Democratic Republic of Ethiopia
FI FIN Finland|Republic of Finland
FJ FJI Fiji|Republic of Fiji
FK FLK Falkland Islands (Malvinas)
FM FSM Micronesia, Federated States of|Federated States of Micronesia
FO FRO Faroe Islands
FR FRA France|French Republic
GA GAB Gabon|Gabonese Republic
GB GBR United Kingdom|United Kingdom of Great Britain and Northern Ireland
GD GRD Grenada
GE GEO Georgia
GF GUF French Guiana
GG GGY Guernsey
GH GHA Ghana|Republic of Ghana
GI GIB Gibraltar
GL GRL Greenland
GM GMB Gambia|Republic of the Gambia
GN GIN Guinea|Republic of Guinea
GP GLP Guadeloupe
GQ GNQ Equatorial Guinea|Republic of Equatorial Guinea
GR GRC Greece|Hellenic Republic
GS SGS South Georgia and the South Sandwich Islands
GT GTM Guatemala|Republic of Guatemala
GU GUM Guam
GW GNB Guinea-Bissau|Republic of Guinea-Bissau
GY GUY Guyana|Republic of Guyana
HK HKG Hong Kong|Hong Kong Special Administrative Region of China
HM HMD Heard Island and McDonald Islands
HN HND Honduras|Republic of Honduras
HR HRV Croatia|Republic of Croatia
HT HTI Haiti|Republic of Haiti
HU HUN Hungary
ID IDN Indonesia|Republic of Indonesia
IE IRL Ireland
IL ISR Israel|State of Israel
IM IMN Isle of Man
IN IND India|Republic of India
IO IOT British Indian Ocean Territory
IQ IRQ Iraq|Republic of Iraq
IR IRN Iran, Islamic Republic of|Islamic Republic of Iran|Iran
IS ISL Iceland|Republic of Iceland
IT ITA Italy|Italian Republic
JE JEY Jersey
JM JAM Jamaica
JO JOR Jordan|Hashemite Kingdom of Jordan
JP JPN Japan
KE KEN Kenya|Republic of Kenya
KG KGZ Kyrgyzstan|Kyrgyz Republic
KH KHM Cambodia|Kingdom of Cambodia
KI KIR Kiribati|Republic of Kiribati
KM COM Comoros|Union of the Comoros
KN KNA Saint Kitts and Nevis
KP PRK Korea, Democratic People's Republic of|Democratic People's Republic of Korea|North Korea
KR KOR Korea, Republic of|South Korea
KW KWT Kuwait|State of Kuwait
KY CYM Cayman Islands
KZ KAZ Kazakhstan|Republic of Kazakhstan
LA LAO Lao People's Democratic Republic|Laos
LB LBN Lebanon|Lebanese Republic
LC LCA Saint Lucia
LI LIE Liechtenstein|Principality of Liechtenstein
LK LKA Sri Lanka|Democratic Socialist Republic of Sri Lanka
LR LBR Liberia|Republic of Liberia
LS LSO Lesotho|Kingdom of Lesotho
LT LTU Lithuania|Republic of Lithuania
LU LUX Luxembourg|Grand Duchy of Luxembourg
LV LVA Latvia|Republic of Latvia
LY LBY Libya
MA MAR Morocco|Kingdom of Morocco
MC MCO Monaco|Principality of Monaco
MD MDA Moldova, Republic of|Republic of Moldova|Moldova
ME MNE Montenegro
MF MAF Saint Martin (French part)
MG MDG Madagascar|Republic of Madagascar
MH MHL Marshall Islands|Republic of the Marshall Islands
MK MKD North Macedonia|Republic of North Macedonia
ML MLI Mali|Republic of Mali
MM MMR Myanmar|Republic of Myanmar
MN MNG Mongolia
MO MAC Macao|Macao Special Administrative Region of China
MP MNP Northern Mariana Islands|Commonwealth of the Northern Mariana Islands
MQ MTQ Martinique
MR MRT Mauritania|Islamic Republic of Mauritania
MS MSR Montserrat
MT MLT Malta|Republic of Malta
MU MUS Mauritius|Republic of Mauritius
MV MDV Maldives|Republic of Maldives
MW MWI Malawi|Republic of Malawi
MX MEX Mexico|United Mexican States
MY MYS Malaysia
MZ MOZ Mozambique|Republic of Mozambique
NA NAM Namibia|Republic of Namibia
NC NCL New Caledonia
NE NER Niger|Republic of the Niger
NF NFK Norfolk Island
NG NGA Nigeria|Federal Republic of Nigeria
NI NIC Nicaragua|Republic of Nicaragua
NL NLD Netherlands|Kingdom of the Netherlands
NO NOR Norway|Kingdom of Norway
NP NPL Nepal|Federal Democratic Republic of Nepal
NR NRU Nauru|Republic of Nauru
NU NIU Niue
NZ NZL New Zealand
OM OMN Oman|Sultanate of Oman
PA PAN Panama|Republic of Panama
PE PER Peru|Republic of Peru
PF PYF French Polynesia
PG PNG Papua New Guinea|Independent State of Papua New Guinea
PH PHL Philippines|Republic of the Philippines
PK PAK Pakistan|Islamic Republic of Pakistan
PL POL Poland|Republic of Poland
PM SPM Saint Pierre and Miquelon
PN PCN Pitcairn
PR PRI Puerto Rico
PS PSE Palestine, State of|the State of Palestine
PT PRT Portugal|Portuguese Republic
PW PLW Palau|Republic of Palau
PY PRY Paraguay|Republic of Paraguay
QA QAT Qatar|State of Qatar
RE REU Réunion
RO ROU Romania
RS SRB Serbia|Republic of Serbia
RU RUS Russian Federation
RW RWA Rwanda|Rwandese Republic
SA SAU Saudi Arabia|Kingdom of Saudi Arabia
SB SLB Solomon Islands
SC SYC Seychelles|Republic of Seychelles
SD SDN Sudan|Republic of the Sudan
SE SWE Sweden|Kingdom of Sweden
SG SGP Singapore|Republic of Singapore
SH SHN Saint Helena, Ascension and Tristan da Cunha
SI SVN Slovenia|Republic of Slovenia
SJ SJM Svalbard and Jan Mayen
SK SVK Slovakia|Slovak Republic
SL SLE Sierra Leone|Republic of Sierra Leone
SM SMR San Marino|Republic of San Marino
SN SEN Senegal|Republic of Senegal
SO SOM Somalia|Federal Republic of Somalia
SR SUR Suriname|Republic of Suriname
SS SSD South Sudan|Republic of South Sudan
ST STP Sao Tome and Principe|Democratic Republic of Sao Tome and Principe
SV SLV El Salvador|Republic of El Salvador
SX SXM Sint Maarten (Dutch part)
SY SYR Syrian Arab Republic|Syria
SZ SWZ Eswatini|Kingdom of Eswatini
TC TCA Turks and Caicos Islands
TD TCD Chad|Republic of Chad
TF ATF French Southern Territories
TG TGO Togo|Togolese Republic
TH THA Thailand|Kingdom of Thailand
TJ TJK Tajikistan|Republic of Tajikistan
TK TKL Tokelau
TL TLS Timor-Leste|Democratic Republic of Timor-Leste
TM TKM Turkmenistan
TN TUN Tunisia|Republic of Tunisia
TO TON Tonga|Kingdom of Tonga
TR TUR Türkiye|Republic of Türkiye
TT TTO Trinidad and Tobago|Republic of Trinidad and Tobago
TV TUV Tuvalu
TW TWN Taiwan, Province of China|Taiwan
TZ TZA Tanzania, United Republic of|United Republic of Tanzania|Tanzania
UA UKR Ukraine
UG UGA Uganda|Republic of Uganda
UM UMI United States Minor Outlying Islands
US USA United States|United States of America
UY URY Uruguay|Eastern Republic of Uruguay
UZ UZB Uzbekistan|Republic of Uzbekistan
VA VAT Holy See (Vatican City State)
VC VCT Saint Vincent and the Grenadines
VE VEN Venezuela, Bolivarian Republic of|Bolivarian Republic of Venezuela|Venezuela
VG VGB Virgin Islands, British|British Virgin Islands
VI VIR Virgin Islands, U.S.|Virgin Islands of the United States
VN VNM Viet Nam|Socialist Republic of Viet Nam|Vietnam
VU VUT Vanuatu|Republic of Vanuatu
WF WLF Wallis and Futuna
WS WSM Samoa|Independent State of Samoa
YE YEM Yemen|Republic of Yemen
YT MYT Mayotte
ZA ZAF South Africa|Republic of South Africa
ZM ZMB Zambia|Republic of Zambia
ZW ZWE Zimbabwe|Republic of Zimbabwe
"""

# Where tzdb's first zone for a country is not where most of its people live (geographical order wins there).
MOST_POPULOUS = {
    "US": "America/New_York",      # zone.tab's first is also New York; kept explicit
    "CA": "America/Toronto",       # first: St_Johns (Newfoundland)
    "AU": "Australia/Sydney",      # first: Lord_Howe
    "BR": "America/Sao_Paulo",     # first: Noronha
    "RU": "Europe/Moscow",         # first: Kaliningrad
    "MX": "America/Mexico_City",
    "IN": "Asia/Kolkata",
    "CN": "Asia/Shanghai",
    "UA": "Europe/Kyiv",           # first: Simferopol (Crimea)
    "UZ": "Asia/Tashkent",         # first: Samarkand
    "KZ": "Asia/Almaty",
    "ID": "Asia/Jakarta",
    "DE": "Europe/Berlin",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "NZ": "Pacific/Auckland",
    "MY": "Asia/Kuala_Lumpur",
    "CD": "Africa/Kinshasa",
    "PS": "Asia/Hebron",           # the West Bank has more people than Gaza
}

# Not ISO 3166 codes but seen in lead data: code -> (zone, names).
EXTRA = {
    "XK": ("Europe/Belgrade", ("Kosovo", "XKX", "Kosova")),
}

# Variants and native names, alpha-2 -> names (matched after normalisation, like every other name).
ALIASES: dict[str, tuple[str, ...]] = {
    "US": ("U.S.", "U.S.A.", "America", "United States of America", "Estados Unidos", "Etats-Unis",
           "Vereinigte Staaten", "Stati Uniti"),
    "GB": ("UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland",
           "Royaume-Uni", "Reino Unido", "Vereinigtes Koenigreich", "Vereinigtes Königreich"),
    "DE": ("Deutschland", "Allemagne", "Alemania", "Germania", "Federal Republic of Germany"),
    "AT": ("Österreich", "Oesterreich", "Autriche"),
    "CH": ("Schweiz", "Suisse", "Svizzera", "Helvetia", "Swiss Confederation"),
    "NL": ("Nederland", "Holland", "Pays-Bas", "Niederlande"),
    "BE": ("België", "Belgique", "Belgien"),
    "LU": ("Lëtzebuerg", "Luxemburg"),
    "FR": ("République française", "Frankreich", "Francia"),
    "ES": ("España", "Espagne", "Spanien"),
    "IT": ("Italia", "Italie", "Italien"),
    "SE": ("Sverige", "Schweden"),
    "NO": ("Norge", "Noreg", "Norwegen"),
    "DK": ("Danmark", "Dänemark"),
    "FI": ("Suomi",),
    "IS": ("Ísland",),
    "IE": ("Éire", "Republic of Ireland"),
    "PL": ("Polska", "Polen", "Pologne"),
    "CZ": ("Czech Republic", "Česko", "Česká republika"),
    "SK": ("Slovensko", "Slovak Republic"),
    "HU": ("Magyarország",),
    "HR": ("Hrvatska",),
    "SI": ("Slovenija",),
    "RS": ("Srbija",),
    "RO": ("România",),
    "BG": ("Bulgaria", "България"),
    "GR": ("Hellas", "Ellada", "Ελλάδα", "Hellenic Republic"),
    "TR": ("Turkey", "Türkiye", "Turkiye"),
    "RU": ("Russia", "Россия", "Rossiya", "Russland"),
    "UA": ("Ukraina", "Україна", "The Ukraine"),
    "JP": ("Nippon", "Nihon", "日本"),
    "CN": ("PRC", "P.R.C.", "Mainland China", "People's Republic of China", "中国", "Zhongguo"),
    "KR": ("South Korea", "Korea", "Republic of Korea", "ROK", "대한민국", "한국", "Hanguk"),
    "KP": ("North Korea", "DPRK", "D.P.R.K."),
    "TW": ("Taiwan", "Republic of China", "ROC", "台灣", "台湾"),
    "HK": ("Hong Kong SAR", "Hongkong", "香港"),
    "MO": ("Macau", "Macao SAR"),
    "VN": ("Vietnam", "Viet Nam"),
    "LA": ("Laos", "Lao PDR"),
    "MM": ("Burma",),
    "SZ": ("Swaziland",),
    "MK": ("Macedonia",),
    "CD": ("DRC", "DR Congo", "D.R. Congo", "Congo-Kinshasa", "Democratic Republic of Congo"),
    "CG": ("Congo-Brazzaville", "Republic of Congo"),
    "CI": ("Ivory Coast", "Cote d'Ivoire"),
    "CV": ("Cape Verde",),
    "TL": ("East Timor",),
    "VA": ("Vatican", "Holy See"),
    "AE": ("UAE", "U.A.E.", "Emirates"),
    "SA": ("KSA",),
    "BR": ("Brasil",),
    "MX": ("México", "Mexique"),
    "IL": ("Israel", "ישראל"),
    "IN": ("Bharat", "भारत"),
    "NZ": ("Aotearoa",),
    "ZA": ("RSA",),
    "SY": ("Syria",),
    "IR": ("Iran", "Persia"),
    "BN": ("Brunei",),
    "FM": ("Micronesia",),
}


def normalise(text: str) -> str:
    """The matching key of a country name or code: no case, accents, punctuation, spaces or "the"; "saint" is
    "st"; "&" is "and"; "(" ... ")" kept as words. '' when nothing is left."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    t = t.replace("&", " and ").replace("'", "").replace("\u2019", "")
    words = [w for w in re.split(r"[\W_]+", t) if w and w != "the"]
    return "".join("st" if w == "saint" else w for w in words)


def _variants(name: str) -> list[str]:
    """A name and its reordered forms: 'Korea (South)' -> 'South Korea', 'Korea, Republic of' -> 'Republic of
    Korea'."""
    out = [name]
    m = re.fullmatch(r"(.+?)\s*\((.+)\)", name)
    if m:
        out.append(f"{m.group(2)} {m.group(1)}")
    if ", " in name:
        a, b = name.split(", ", 1)
        out.append(f"{b} {a}")
    return out


def _tab_text(name: str) -> str | None:
    """A tzdb table's text, from the tzdata package first, then the system's zoneinfo directories."""
    try:
        from importlib.resources import files

        return files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    except (ImportError, OSError):
        pass
    for d in TZPATH:
        try:
            return (Path(d) / name).read_text(encoding="utf-8")
        except OSError:
            continue
    return None


def _rows(name: str) -> list[list[str]]:
    text = _tab_text(name) or ""
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def loads(zone: str) -> bool:
    """Whether ``zone`` is an IANA zone name that ZoneInfo can load."""
    if not isinstance(zone, str) or not zone.strip() or zone != zone.strip():
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):  # OSError: a name too long for a file
        return False
    return True


@lru_cache(maxsize=1)
def zones_by_country() -> dict[str, tuple[str, ...]]:
    """Alpha-2 code -> its zones, in zone.tab's order (the tz database's data)."""
    out: dict[str, list[str]] = {}
    for row in _rows("zone.tab"):
        if len(row) >= 3:
            out.setdefault(row[0].strip().upper(), []).append(row[2].strip())
    return {code: tuple(z) for code, z in out.items()}


@lru_cache(maxsize=1)
def country_zones() -> dict[str, str]:
    """Alpha-2 code -> the one zone for the country (MOST_POPULOUS when listed for it, else zone.tab's first);
    only zones ZoneInfo loads."""
    out = {}
    for code, zones in zones_by_country().items():
        usable = [z for z in zones if loads(z)]
        if usable:
            best = MOST_POPULOUS.get(code)
            out[code] = best if best in usable else usable[0]
    for code, (zone, _) in EXTRA.items():
        if loads(zone):
            out[code] = zone
    return out


@lru_cache(maxsize=1)
def country_codes() -> dict[str, str]:
    """Normalised code or name -> alpha-2 code. Codes win over names; a name that two countries claim is
    dropped rather than guessed."""
    codes: dict[str, str] = {}
    names: dict[str, set[str]] = {}

    def name(key_text: str, code: str) -> None:
        for v in _variants(key_text):
            k = normalise(v)
            if k:
                names.setdefault(k, set()).add(code)

    for line in ISO3166.splitlines():
        a2, a3, rest = line.split(" ", 2)
        codes[a2.lower()] = codes[a3.lower()] = a2
        for n in rest.split("|"):
            name(n, a2)
    for row in _rows("iso3166.tab"):
        if len(row) >= 2:
            a2 = row[0].strip().upper()
            codes.setdefault(a2.lower(), a2)
            name(row[1].strip(), a2)
    for a2, (_, extra) in EXTRA.items():
        codes[a2.lower()] = a2
        for n in extra:
            name(n, a2)
    for a2, aliases in ALIASES.items():
        for n in aliases:
            name(n, a2)
    out = {k: next(iter(c)) for k, c in names.items() if len(c) == 1 and k not in codes}
    out.update(codes)
    return out


def country_code(country: str | None) -> str | None:
    """The alpha-2 code of a country as imported ('USA', 'Deutschland', 'Korea, Republic of'), or None."""
    if not isinstance(country, str):
        return None
    key = normalise(country[:200])
    return country_codes().get(key) if key else None


def country_timezone(country: str | None) -> str | None:
    """The IANA zone where most of the country's people live, for a country as imported, or None when the
    country is unknown (or has no zone: Bouvet Island)."""
    code = country_code(country)
    return country_zones().get(code) if code else None


def lead_timezone(timezone: str | None, country: str | None, default: str) -> tuple[str, str]:
    """(zone, source) for a lead: its stored zone when ZoneInfo loads it ('lead'), else its country's
    ('country'), else ``default`` ('default')."""
    tz = timezone.strip() if isinstance(timezone, str) else ""
    if tz and loads(tz):
        return tz, "lead"
    zone = country_timezone(country)
    if zone:
        return zone, "country"
    return default, "default"
