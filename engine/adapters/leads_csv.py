"""Lead import and export: CSV files people export from CRMs and prospecting tools, in and out.

``parse_leads_csv`` is pure (a file in, rows and a per-row error report out; no database). ``import_leads``
upserts the parsed rows by email in batches; ``export_leads`` writes every lead to a spreadsheet-safe CSV.

Reading
    Encoding: a UTF-8, UTF-16 or UTF-32 byte-order mark, else UTF-8, else the legacy encoding charset-normalizer
    finds with confidence (Windows-1252, -1251, Shift-JIS, ...: see ``_decode_legacy``; named in the result's
    ``encoding`` and ``notes``), else the file is refused: never read as garbled text. Delimiter: ``,`` ``;`` or
    tab: the one that splits the header row into the most columns (ties broken by ``csv.Sniffer`` on a sample, then
    in that order). Cells are read as text by pandas (C engine, ``keep_default_na=False``); when pandas would skip or
    merge a malformed row, the file is read again with the stdlib ``csv`` reader, which keeps every row, so row
    numbers stay exact and no row vanishes silently.
Rows
    Row numbers are the ones a spreadsheet shows (header = row 1, blank lines count). Blank rows are skipped. Email
    is the only required field: a row without a valid one, or whose address already appeared in the file (the
    same canonical address, engine/core/identity: case, plus-tags, Gmail dots, Unicode or punycode domain), is
    rejected with an error naming the row. Any other bad value (employee count, date, time zone, domain,
    LinkedIn URL, visits, a too-long text) is dropped with an error naming row and field; the row is kept.
    Columns matching no alias are kept in ``data`` under their header, so nothing in the file is lost.
    Text that is not UTF-8 as a whole is read line by line (UTF-8, else the legacy encoding detected), so a file
    glued together from a UTF-8 export and a legacy one keeps every line's characters. A stray NUL byte is removed
    from its cell and reported (row and field); the row is kept.
Files that cannot be read
    (missing, a directory, binary, empty, no header row) raise ``LeadFileError``. A file without an email column is
    readable: it yields one file-level error (row 1, the header) naming the columns found and the aliases accepted.
Upserts
    A row updates the lead with its email, else the lead with its canonical address (``Lead.email_key``: another
    spelling of the same mailbox, whose stored spelling is kept), else it is a new lead. A cell never clears a
    stored value (an empty cell means "unknown", not "erase"). Engagement (last open / click / reply / visit,
    website visits) only moves forward: an older date or a smaller visit count in the file is ignored, so an old
    export cannot undo what webhooks recorded. Re-importing a file therefore changes nothing.
Export
    UTF-8, a header row, every cell neutralised against spreadsheet formula injection (``neutralise``). The file
    re-imports as it was: a leading apostrophe added by ``neutralise`` is removed on import, and the engine-owned
    columns of an export (id, status, score, ...) are recognised and not read back.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from engine.core.clock import UTC, Clock
from engine.adapters.db import insert_many
from engine.core.identity import canonical_address, normalise_address
from engine.core.errors import AlphaError
from engine.rules.guardrails.recipients import syntax_problem
from engine.rules.leadfacts import employee_count

BATCH_SIZE = 2000
PROGRESS_EVERY = 500  # parse_leads_csv reports progress every this many data rows
_MAX_VISITS = 100_000_000
_SHOW = 60


class LeadFileError(AlphaError):
    """The file itself cannot be read as a lead CSV (missing, a directory, binary, empty, no header row)."""


# ------------------------------------------------------------------------------------------------ columns

TEXT_FIELDS = {"first_name": 200, "last_name": 200, "title": 300, "company": 300, "industry": 200,
               "country": 100, "region": 100, "source": 100}
DATE_FIELDS = ("last_open_at", "last_click_at", "last_reply_at", "last_visit_at")
LEAD_FIELDS = ("email", "first_name", "last_name", "title", "company", "company_domain", "employee_count",
               "industry", "country", "region", "timezone", "linkedin_url", "source", *DATE_FIELDS,
               "website_visits")

# Aliases per field, in priority order, as normalised keys (see header_key): when several columns of a file map to
# the same field, the one whose alias comes first is read, the others fill in where it is empty (and are kept in
# ``data``). "_full_name" is split into first and last name when the file has neither.
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "workemail", "workemailaddress", "businessemail", "businessemailaddress",
              "professionalemail", "corporateemail", "contactemail", "primaryemail", "emailwork", "personemail"),
    "first_name": ("firstname", "first", "givenname", "forename", "fname", "contactfirstname", "personfirstname"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname", "contactlastname", "personlastname"),
    "_full_name": ("fullname", "name", "contactname", "personname", "leadname", "contact"),
    "title": ("jobtitle", "title", "position", "role", "jobrole", "designation", "contacttitle", "persontitle",
              "headline"),
    "company": ("company", "companyname", "accountname", "organization", "organisation", "organizationname",
                "organisationname", "employer", "account", "business"),
    "company_domain": ("companydomain", "domain", "website", "websiteurl", "companywebsite", "companywebsiteurl",
                       "companyurl", "webaddress", "homepage"),
    "employee_count": ("employees", "employeecount", "numberofemployees", "noofemployees", "numemployees",
                       "companysize", "headcount", "companyheadcount", "employeerange", "companyemployees",
                       "employeesize", "estimatednumemployees", "sizeemployees", "size"),
    "industry": ("industry", "companyindustry", "sector", "vertical"),
    "country": ("country", "personcountry", "contactcountry", "countryregion", "companycountry", "hqcountry",
                "companyhqcountry", "countrycode"),
    "region": ("region", "state", "stateregion", "stateprovince", "province", "personstate", "contactstate",
               "companystate", "stateorprovince"),
    "timezone": ("timezone", "tz", "timezonename", "ianatimezone", "contacttimezone"),
    "linkedin_url": ("linkedinurl", "linkedin", "linkedinprofile", "linkedinprofileurl", "personlinkedinurl",
                     "linkedincontactprofileurl", "contactlinkedinurl"),
    "source": ("source", "leadsource", "originalsource", "contactsource"),
    "last_open_at": ("lastopenat", "lastopen", "lastopened", "lastopenedat", "lastopendate", "lastemailopen",
                     "lastemailopened", "lastemailopendate", "lastmarketingemailopendate", "dateoflastopen"),
    "last_click_at": ("lastclickat", "lastclick", "lastclicked", "lastclickedat", "lastclickdate", "lastemailclick",
                      "lastemailclicked", "lastemailclickdate", "lastmarketingemailclickdate", "dateoflastclick"),
    "last_reply_at": ("lastreplyat", "lastreply", "lastreplied", "lastrepliedat", "lastreplydate", "lastemailreply",
                      "lastemailreplydate", "recentsalesemailreplieddate", "dateoflastreply"),
    "last_visit_at": ("lastvisitat", "lastvisit", "lastvisited", "lastvisitdate", "lastwebsitevisit",
                      "lastsitevisit", "lastseen", "lastseenat", "timeoflastsession", "lastpagevisit"),
    "website_visits": ("websitevisits", "visits", "sitevisits", "numberofvisits", "numvisits", "visitcount",
                       "numberofsessions", "sessions"),
}
for _f in LEAD_FIELDS:  # the field's own name ("first_name" -> "firstname") is always accepted
    if _f in ALIASES and re.sub(r"[^a-z0-9]", "", _f) not in ALIASES[_f]:
        ALIASES[_f] = (re.sub(r"[^a-z0-9]", "", _f),) + ALIASES[_f]
_ALIAS_RANK = {a: (f, i) for f, aliases in ALIASES.items() for i, a in enumerate(aliases)}

# The columns export_leads writes. A file whose header is exactly this list is one of our own exports: its
# engine-owned columns are not read back, and its "data" column (JSON) is merged into ``data``.
OWNED_COLUMNS = ("id", "status", "tier", "score", "route", "disqualified_reason", "last_engaged_at", "created_at",
                 "updated_at")
EXPORT_COLUMNS = (*LEAD_FIELDS, *OWNED_COLUMNS, "data")


def header_key(name: str) -> str:
    """Case-, space-, accent- and punctuation-insensitive form of a header ("E-mail" -> "email")."""
    t = unicodedata.normalize("NFKD", name)
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^a-z0-9]", "", t)


# ------------------------------------------------------------------------------------------------ results

@dataclass
class ParseResult:
    rows: list[dict]            # one dict per importable row: "row" (line number), LEAD_FIELDS (None = empty), "data"
    errors: list[dict]          # {"row": int, "field": str | None, "error": str}, in row order
    encoding: str
    delimiter: str
    total_rows: int = 0         # non-blank data rows in the file
    columns: dict[str, str] = field(default_factory=dict)  # header -> the field it is read into ("data" = kept)
    notes: list[str] = field(default_factory=list)  # for a person: e.g. the legacy encoding the file was read in

    @property
    def rejected(self) -> int:
        return self.total_rows - len(self.rows)


def _err(row: int, fld: str | None, error: str) -> dict:
    return {"row": row, "field": fld, "error": error}


def _show(value: str) -> str:
    v = value if len(value) <= _SHOW else value[:_SHOW - 3] + "..."
    return repr(v)


# ------------------------------------------------------------------------------------------------ spreadsheet safety

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")


def neutralise(value: str) -> str:
    """A cell a spreadsheet will never run as a formula: a leading = + - @ tab or CR gets an apostrophe. A value that
    already starts with apostrophes before one of those gets one more, so ``unneutralise`` restores every value."""
    if value.startswith(_FORMULA_START) or _ESCAPED.match(value):
        return "'" + value
    return value


def unneutralise(value: str) -> str:
    return value[1:] if _ESCAPED.match(value) else value


# ------------------------------------------------------------------------------------------------ reading the file

_BINARY_MAGIC = {b"PK\x03\x04": "a zip archive or an Excel .xlsx workbook",
                 b"\xd0\xcf\x11\xe0": "an Excel .xls workbook",
                 b"%PDF": "a PDF", b"\x1f\x8b": "a gzip archive", b"\x89PNG": "a PNG image",
                 b"\xff\xd8\xff": "a JPEG image",
                 b"SQLite format 3": "a SQLite database"}
_SAVE_AS = "save or export it as CSV (UTF-8) and import that file"


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise LeadFileError(f"lead file not found: {path}")
    if path.is_dir():
        raise LeadFileError(f"{path} is a directory, not a CSV file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise LeadFileError(f"cannot read {path}: {e.strerror or e}") from None


def _decode(raw: bytes, path: Path, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding name). Raises LeadFileError for binary files and for text whose encoding cannot be told
    for sure (never mojibake). ``encoding``, when given, is used as it is (strictly)."""
    for magic, what in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            raise LeadFileError(f"{path} is {what}, not a CSV file: {_SAVE_AS}")
    if encoding is not None:
        return _decode_as(raw, path, encoding)
    for bom, enc in _BOMS:  # a byte-order mark decides (UTF-32 first: its little-endian mark starts like UTF-16's)
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(enc), enc.replace("-le", "").replace("-be", "")
            except UnicodeDecodeError:
                raise LeadFileError(f"{path} starts like {enc[:6].upper()} text but is not valid "
                                    f"{enc[:6].upper()}: {_SAVE_AS}") from None
    # Binary data (or UTF-16 without a byte-order mark) is full of NUL bytes; a few stray ones in a broken export
    # are kept, and reported on their rows (parse_leads_csv), rather than refusing every good row of the file.
    head = raw[:65536]
    if head.count(b"\x00") > max(8, len(head) // 100):
        raise LeadFileError(f"{path} is not a text CSV file (it contains binary data): {_SAVE_AS}")
    has_bom = raw.startswith(b"\xef\xbb\xbf")
    if has_bom:
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), "utf-8-sig" if has_bom else "utf-8"
    except UnicodeDecodeError:
        pass  # (a BOM on text that is not UTF-8 after all is dropped too)
    # Text never has many C0 control characters (no legacy code page uses those bytes inside a character); binary
    # data does.
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in (9, 10, 13, 0))
    if controls > max(2, len(head) // 100):
        raise LeadFileError(f"{path} is not a text CSV file (it contains binary data): {_SAVE_AS}")
    return _decode_legacy(raw, path)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))

# The legacy encodings a CSV comes in: the Windows code pages Excel saves "CSV" in (by how common they are: the
# first of several that read a file into the same likely text is named), then a few others still exported.
_LEGACY = ("cp1252", "cp1251", "cp1250", "cp932", "gb18030", "cp949", "cp950", "cp1253", "cp1254", "cp1257",
           "cp1255", "cp1256", "cp1258", "cp874", "koi8_r", "koi8_u", "shift_jis", "euc_jp", "euc_kr", "big5",
           "gbk", "gb2312", "iso8859_2", "iso8859_15", "mac_roman")
_LEGACY_NAMES = {"cp1252": "Windows-1252 (Western European)", "cp1251": "Windows-1251 (Cyrillic)",
                 "cp1250": "Windows-1250 (Central European)", "cp932": "Shift-JIS (Japanese, Windows cp932)",
                 "shift_jis": "Shift-JIS (Japanese)", "euc_jp": "EUC-JP (Japanese)",
                 "gb18030": "GB18030 (Simplified Chinese)", "gbk": "GBK (Simplified Chinese)",
                 "gb2312": "GB2312 (Simplified Chinese)", "cp950": "Big5 (Traditional Chinese, Windows cp950)",
                 "big5": "Big5 (Traditional Chinese)", "cp949": "Korean (Windows cp949)", "euc_kr": "EUC-KR (Korean)",
                 "cp1253": "Windows-1253 (Greek)", "cp1254": "Windows-1254 (Turkish)",
                 "cp1255": "Windows-1255 (Hebrew)", "cp1256": "Windows-1256 (Arabic)",
                 "cp1257": "Windows-1257 (Baltic)", "cp1258": "Windows-1258 (Vietnamese)",
                 "cp874": "Windows-874 (Thai)", "koi8_r": "KOI8-R (Russian)", "koi8_u": "KOI8-U (Ukrainian)",
                 "iso8859_2": "ISO-8859-2 (Central European)", "iso8859_15": "ISO-8859-15 (Western European)",
                 "mac_roman": "Mac Roman (Western European)"}
_MULTI_BYTE = {"cp932", "shift_jis", "euc_jp", "gb18030", "gbk", "gb2312", "cp949", "euc_kr", "cp950", "big5"}
_COMMON = ("cp1252", "cp1251", "cp932")  # the code pages most legacy CSVs are in
_KOREAN, _CHINESE = {"cp949", "euc_kr"}, {"gb18030", "gbk", "gb2312", "cp950", "big5"}
_HANGUL, _HAN, _KANA = re.compile("[\uac00-\ud7a3]"), re.compile("[\u3400-\u9fff]"), re.compile("[\u3040-\u30ff]")
_SAMPLE_WINDOW = 64 * 1024  # detection reads at most 4 windows of the file's non-UTF-8 lines (start, 1/3, 2/3, end)
_MAX_CHAOS = 0.1            # charset-normalizer's mess ratio above which a reading is not plausible text
_SAVE_UTF8 = ("save it as UTF-8 (in Excel: Save As > \"CSV UTF-8 (Comma delimited)\") and import that file, or "
              "import it with its encoding named (`alpha leads import FILE --encoding cp1251`)")
_UNFIT = re.compile("[\x80-\x9f\ufffd\ue000-\uf8ff]")  # C1 controls, replacement, private use: a wrong reading
_WORD = re.compile(r"(?:[^\W\d_]|[\xa8\xaf\xb4\xb8\u02c6\u02dc])+")  # letters (and spacing accents: "à¨ü" is no word)


def encoding_label(encoding: str) -> str:
    """A person's name for a ParseResult.encoding ("cp1251" -> "Windows-1251 (Cyrillic)")."""
    base = encoding.split(" and ")[0]
    name = _LEGACY_NAMES.get(base, base.upper())
    return name + " (with some lines in UTF-8)" if " and " in encoding else name


def _decode_as(raw: bytes, path: Path, encoding: str) -> tuple[str, str]:
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise LeadFileError(f"unknown encoding {encoding!r} for {path}: name a Python codec such as utf-8, "
                            "cp1252, cp1251 or shift_jis") from None
    if name == "utf-8" and raw.startswith(b"\xef\xbb\xbf"):
        raw, name = raw[3:], "utf-8-sig"
    try:
        return raw.decode(name), name
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise LeadFileError(f"{path} is not valid {encoding} text (line {line}, byte {e.start}: "
                            f"{raw[e.start:e.end]!r}): {_SAVE_UTF8}") from None


def _case_flip(w: str) -> bool:
    """A lower-case letter followed by a non-ASCII capital ("иВАН", "aÀ": a code page read as its mirror image;
    "McDonald" is fine)."""
    return any(a.islower() and b.isupper() and not b.isascii() for a, b in zip(w, w[1:]))


def _script(c: str) -> str:
    name = unicodedata.name(c, "")
    word = name.split(" ", 1)[0]
    if word.startswith(("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH", "IDEOGRAPHIC")):  # Japanese mixes kana, kanji
        return "CJK"
    if word == "HANGUL":
        return "HANGUL"
    return word


def _fit(text: str) -> tuple[float, int, set[str]] | None:
    """How much ``text`` reads like names and words: (the share of its words with non-ASCII letters that look
    natural, the non-ASCII letters in those, their scripts). Natural: a Latin word with at least one ASCII letter
    or of one letter ("Müller", "à"), or a word in one other script ("Иван", "山田"); not natural: "Èâàí",
    "Mü汻er", "Josй" (a wrong reading). None: characters no text holds (C1 controls, private use)."""
    if _UNFIT.search(text):
        return None
    natural = total = letters = 0
    scripts: set[str] = set()
    for w in itertools.islice(dict.fromkeys(_WORD.findall(text)), 5000):  # distinct words: names repeat
        if w.isascii() or not any(c.isalpha() for c in w):
            continue
        total += 1
        found = {_script(c) for c in w if not c.isascii()}
        ascii_letters = any(c.isascii() for c in w)
        if len(found) == 1 and not _case_flip(w) and (
                ascii_letters or len(w) == 1 if found == {"LATIN"} else not ascii_letters):
            natural += 1
            letters += sum(1 for c in w if not c.isascii())
            scripts |= found
    return (natural / total if total else 1.0), letters, scripts


def _sample(lines: list[bytes]) -> bytes:
    """The non-UTF-8 lines detection reads: all of them, or four windows of whole lines across a large file."""
    size = sum(len(x) for x in lines)
    if size <= 4 * _SAMPLE_WINDOW:
        return b"".join(lines)
    out: list[bytes] = []
    for k in range(4):
        i, n = (len(lines) - 1) * k // 3, 0
        while i < len(lines) and n < _SAMPLE_WINDOW:
            out.append(lines[i])
            n += len(lines[i])
            i += 1
        if k < 3:
            out.append(b"\n")
    return b"".join(out)


def _detect(sample: bytes) -> tuple[str | None, list[str]]:
    """(encoding, plausible encodings) of the non-UTF-8 part of a file, by charset-normalizer among _LEGACY. The
    encoding is None when no reading is confident, or when readings in different scripts are about as good."""
    from charset_normalizer import from_bytes

    steps = max(5, min(64, len(sample) // 2048))
    found = []  # in charset-normalizer's order (least chaos, then most coherent language)
    for m in from_bytes(sample, steps=steps, cp_isolation=list(_LEGACY), threshold=0.2):
        text = str(m)
        fit = _fit(text) if m.chaos <= _MAX_CHAOS else None
        if fit is None or fit[0] < 0.8:
            continue
        name = next((e for e in _LEGACY if e in m.could_be_from_charset), m.encoding)
        if name in _KOREAN and len(_HANGUL.findall(text)) * 2 < len(_HAN.findall(text)) + 1:
            continue  # Korean that is mostly not Hangul: Japanese or Chinese read as Korean
        if name in _CHINESE and _KANA.search(text):
            continue  # Chinese with kana: Japanese (EUC-JP's kana are GB2312's) read as Chinese
        found.append((fit, m.chaos, m.coherence, name, text))
    if not found:
        return None, []
    plausible = [f[3] for f in found]
    top = max(f[0][0] for f in found)
    best = next(f for f in found if f[0][0] == top)
    # Readings about as good as the best one (within the detector's precision). Several Latin ones (Windows-1252
    # or -1250? the same letters mostly): the most common code page. A reading in another script counts when
    # it has letters to show for it (a lone "Ђ" against "€" does not); readings that disagree are ambiguous.
    rivals = [f for f in found if f[0][0] >= top - 0.05 and f[1] <= best[1] + 0.05 and f[2] >= best[2] - 0.1]
    latin = sorted((f for f in rivals if f[0][2] <= {"LATIN"}), key=lambda f: _LEGACY.index(f[3]))
    other = [f for f in rivals if not f[0][2] <= {"LATIN"}]
    if latin and latin[0][0][1] == 0:
        other = [f for f in other if f[0][1] >= 2]
    texts = {f[4] for f in latin[:1] + other}
    if len(texts) > 1:
        return None, [f[3] for f in latin[:1] + other]
    chosen = latin[0] if latin else min(other, key=lambda f: _LEGACY.index(f[3]))
    # The most common code pages (Windows-1252, -1251, Shift-JIS) read the sample as naturally, in other words
    # (even where the detector found them messy: "AAaÀ" against "AAaĄ", "Мфуп" against Thai)? Then the less
    # common one found is a guess. Any Latin reading in Windows-1252 makes another single-byte one a guess.
    for alt in _COMMON:
        if alt == chosen[3]:
            continue
        try:
            text = sample.decode(alt)
        except UnicodeDecodeError:
            continue
        fit = _fit(text) if text != chosen[4] else None
        need = (0.5 if chosen[3] in _MULTI_BYTE else 0.25) if alt == "cp1252" else 0.8
        if (fit is not None and fit[0] >= min(need, chosen[0][0] - 0.05)
                and (fit[1] >= 2 or chosen[0][1] > 0)):  # (a lone "Ђ" is no rival to "€")
            return None, [chosen[3], alt]
    return chosen[3], plausible


def _decode_legacy(raw: bytes, path: Path) -> tuple[str, str]:
    """Text that is not UTF-8 as a whole: its UTF-8 lines as UTF-8 (files glued together from several exports mix
    encodings), the others in the one legacy encoding charset-normalizer finds for them with confidence; else the
    file is refused, naming the encodings that were plausible."""
    lines = raw.splitlines(keepends=True)
    legacy: list[bytes] = []
    utf8 = False
    for line in lines:
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            legacy.append(line)
    enc, plausible = _detect(_sample(legacy).replace(b"\x00", b""))  # (stray NULs are reported on their rows)
    if enc is None:
        if plausible:
            could = ", ".join(_LEGACY_NAMES.get(e, e) for e in dict.fromkeys(plausible[:5]))
            why = f"its encoding cannot be told for sure (it could be {could})"
        else:
            why = "it reads as no single text encoding (it may be binary, damaged, or mix several encodings)"
        raise LeadFileError(f"{path} is not UTF-8 and {why}; to import it without garbled names, {_SAVE_UTF8}")
    parts: list[str] = []
    for n, line in enumerate(lines, 1):
        if line.isascii():
            parts.append(line.decode("ascii"))
            continue
        try:
            parts.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            text = line.decode(enc)
        except UnicodeDecodeError:
            text = None
        if text is None or _UNFIT.search(text):
            raise LeadFileError(f"{path} is not UTF-8 and reads as {_LEGACY_NAMES.get(enc, enc)} except on line "
                                f"{n} (it may mix several encodings); to import it without garbled names, "
                                f"{_SAVE_UTF8}")
        parts.append(text)
    return "".join(parts), f"{enc} and utf-8 (mixed)" if utf8 else enc


_DELIMITERS = (",", ";", "\t")


def _first_line(text: str) -> str:
    for line in re.split(r"\r\n|\r|\n", text[:1_000_000]):
        if line.strip(" \t,;"):
            return line
    return ""


def _detect_delimiter(text: str) -> str:
    header = _first_line(text)
    if not header:
        return ","
    counts = {}
    for d in _DELIMITERS:
        try:
            counts[d] = len(next(csv.reader([header], delimiter=d)))
        except (csv.Error, StopIteration):
            counts[d] = 1
    best = max(counts.values())
    if best <= 1:
        return ","
    tied = [d for d in _DELIMITERS if counts[d] == best]
    if len(tied) == 1:
        return tied[0]
    sample = text[:65536]
    if len(text) > 65536 and "\n" in sample:
        sample = sample[:sample.rindex("\n")]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    return sniffed if sniffed in tied else tied[0]


# A NUL character stands in for this one while the file is split into cells (pandas and the csv module treat NUL
# specially); parse_leads_csv removes it and reports the cell. U+FDD0 is a Unicode noncharacter: never in text.
_NUL = "\ufdd0"


def _records(text: str, delimiter: str) -> tuple[list[list[str]], bool]:
    """Every record of the file, blank lines included (as empty lists or lists of ""), so that record i is what a
    spreadsheet shows as row i + 1. Returns (records, unterminated): whether the last record runs to the end of the
    file inside an unclosed quote."""
    import pandas as pd

    text = text.replace("\x00", _NUL)
    try:
        width = max(len(next(csv.reader([_first_line(text)], delimiter=delimiter), [])), 1)
    except csv.Error:
        width = 1
    unterminated = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, names=list(range(width)), dtype=str,
                             keep_default_na=False, na_filter=False, skip_blank_lines=False, index_col=False,
                             engine="c", on_bad_lines="warn", quotechar='"', doublequote=True)
        if not caught:
            return df.to_numpy(dtype=object).tolist(), False
    except pd.errors.ParserError as e:
        unterminated = "EOF inside string" in str(e)
    except (ValueError, OverflowError, MemoryError):
        pass
    # A row pandas would skip (too many cells) or a quote it cannot close: the stdlib reader keeps every row.
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(max(limit, len(text) + 1))  # one huge cell is data to report, not a crash
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                               strict=False))
    except csv.Error as e:
        raise LeadFileError(f"cannot read the file as CSV: {e}") from None
    finally:
        csv.field_size_limit(limit)
    return rows, unterminated


# ------------------------------------------------------------------------------------------------ values

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(value: str) -> str:
    return unneutralise(value.strip()).strip()


def _text(value: str) -> str:
    """One line of text: control characters removed, whitespace runs (line breaks too) collapsed."""
    return " ".join(_CONTROL.sub("", value).split())


normalise_email = normalise_address  # the one stored form of an address (engine/core/identity)


def email_problem(email: str) -> str | None:
    if len(email) > 320:
        return "longer than 320 characters"
    return syntax_problem(email)


_LABEL = re.compile(r"^(?!-)[^\W_](?:[^\W_]|-){0,62}(?<!-)$")


@lru_cache(maxsize=16384)  # pure, and values repeat from row to row (errors are not cached)
def normalise_domain(value: str) -> str:
    """A bare domain ("https://www.Acme.com/about" -> "acme.com"). Raises ValueError."""
    s = _text(value).lower()
    s = re.sub(r"^[a-z][a-z0-9+.-]*://", "", s)
    s = re.split(r"[/?#\s]", s, maxsplit=1)[0]
    s = s.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    s = s.removeprefix("www.")
    labels = s.split(".")
    if (len(s) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels)
            or labels[-1].isdigit() or len(labels[-1]) < 2):
        raise ValueError(f"{_show(value)} is not a domain or website (expected e.g. acme.com)")
    return s


@lru_cache(maxsize=16384)  # pure, and values repeat from row to row (errors are not cached)
def normalise_linkedin(value: str) -> str:
    v = _text(value)
    if not re.match(r"^[a-z][a-z0-9+.-]*://", v, re.I):
        v = "https://" + v
    try:
        parts = urlsplit(v)
        host = (parts.hostname or "").lower()
    except ValueError:
        host, parts = "", None
    if parts is None or not (host == "linkedin.com" or host.endswith(".linkedin.com")) or parts.path in ("", "/"):
        raise ValueError(f"{_show(value)} is not a LinkedIn profile URL (expected e.g. https://www.linkedin.com/in/name)")
    out = f"https://{host}{parts.path.rstrip('/')}"
    if len(out) > 500:
        raise ValueError("longer than 500 characters")
    return out


def parse_employee_count(value: str) -> int | None:
    """"250", "1,000+", "1.000", "51-200" (the midpoint, rounded down), "10k", "250.0", "Myself Only": read by
    engine.rules.leadfacts, the one reading the scorer and the RB2B webhook share. 0 means unknown (None).
    Raises ValueError naming the value."""
    return employee_count(value)


def parse_int(value: str, what: str) -> int:
    s = _text(value).replace(",", "").replace("_", "")
    if re.fullmatch(r"\d+(\.0*)?", s):
        n = int(float(s)) if "." in s else int(s)
        if n <= _MAX_VISITS:
            return n
    raise ValueError(f"{_show(value)} is not a {what} (expected a whole number, 0 or more)")


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    import zoneinfo

    return {z.lower(): z for z in zoneinfo.available_timezones()}


@lru_cache(maxsize=16384)  # pure, and values repeat from row to row (errors are not cached)
def parse_timezone(value: str) -> str:
    v = _text(value)
    zone = _zones().get(v.lower().replace(" ", "_"))
    if zone is None:
        raise ValueError(f"{_show(value)} is not an IANA time zone (expected e.g. America/New_York)")
    return zone


# Dates ------------------------------------------------------------------------------------------------

_MONTHS = {m: i for i, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")), 1) for m in names}
_TIME = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*([ap]\.?m\.?)?)?"
_ZONE = r"\s*(z|utc|gmt|[+-]\d{2}(?::?\d{2})?|(?:utc|gmt)\s*[+-]\d{1,2}(?::?\d{2})?)?"
_NUMERIC_DATE = re.compile(r"(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})" + _TIME + _ZONE)
_NAMED_DATE = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?"
    r"(?:(\d{1,2})(?:st|nd|rd|th)?[\s-]+([a-z]+)\.?,?[\s-]+(\d{4})|([a-z]+)\.?[\s-]+(\d{1,2})(?:st|nd|rd|th)?,?[\s-]+(\d{4}))"
    + _TIME.replace("[ T]+", r"(?:,?\s+|T)") + _ZONE)


def _zone(text: str | None) -> timezone:
    if not text or text in ("z", "utc", "gmt"):
        return UTC
    t = text.removeprefix("utc").removeprefix("gmt").strip()
    m = re.fullmatch(r"([+-])(\d{1,2})(?::?(\d{2}))?", t)
    if not m:
        raise ValueError
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    if delta > timedelta(hours=14):
        raise ValueError
    return timezone(delta if m.group(1) == "+" else -delta)


def _build(y: int, mo: int, d: int, hh: str | None, mi: str | None, ss: str | None, frac: str | None,
           ampm: str | None, zone: str | None) -> datetime:
    hour = int(hh or 0)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return datetime(y, mo, d, hour, int(mi or 0), int(ss or 0), micro, tzinfo=_zone(zone)).astimezone(UTC)


def _year(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        return 2000 + n if n < 70 else 1900 + n
    if len(y) != 4:
        raise ValueError
    return n


def day_first_evidence(values: Iterable[str]) -> bool | None:
    """Read ambiguous numeric dates (03/04/2025) day first? True if some value can only be day-first (31/01/2025)
    and none only month-first; False for the reverse; None when the values do not say."""
    day = month = False
    for v in values:
        m = _NUMERIC_DATE.fullmatch(v.strip().lower())
        if not m or len(m.group(1)) == 4:
            continue
        a, b = int(m.group(1)), int(m.group(3))
        day = day or (a > 12 >= b)
        month = month or (b > 12 >= a)
    if day and not month:
        return True
    if month and not day:
        return False
    return None


@lru_cache(maxsize=16384)  # pure, and values repeat from row to row (errors are not cached)
def parse_datetime(value: str, day_first: bool | None = None) -> datetime:
    """An aware UTC datetime from the formats CRMs export. Naive times are UTC. Numeric dates with a 4-digit year
    last are read month first (US) unless ``day_first`` (or the value itself: 31/01/2025) says otherwise; dotted
    dates (31.01.2025) are day first. Unix seconds or milliseconds and Excel serial days are accepted.
    Raises ValueError."""
    v = _text(value).lower()
    bad = ValueError(f"{_show(value)} is not a date (expected e.g. 2025-03-14, 2025-03-14T09:30:00Z or 03/14/2025)")
    try:
        if re.fullmatch(r"\d{9,13}(\.\d+)?", v):                       # Unix seconds / milliseconds
            n = float(v)
            return datetime.fromtimestamp(n / 1000 if n >= 1e11 else n, UTC)
        if re.fullmatch(r"\d{5}(\.\d+)?", v):                           # Excel serial days (1970..2100)
            n = float(v)
            if 25569 <= n < 73051:
                return datetime(1899, 12, 30, tzinfo=UTC) + timedelta(days=n)
            raise bad
        if re.match(r"\d{4}-\d{2}-\d{2}", v):
            iso = re.sub(r"\s*(z|utc|gmt)$", "+00:00", v).replace(" ", "T", 1).upper()
            iso = re.sub(r"\s+", "", iso)
            try:
                dt = datetime.fromisoformat(iso)
            except ValueError:
                dt = None
            if dt is not None:
                return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        m = _NUMERIC_DATE.fullmatch(v)
        if m:
            a, sep, b, c = m.group(1), m.group(2), m.group(3), m.group(4)
            rest = m.group(5, 6, 7, 8, 9, 10)
            if len(a) == 4:                                               # 2025/03/14
                return _build(int(a), int(b), int(c), *rest)
            y = _year(c)
            if sep == ".":
                order = [(int(b), int(a))]
            elif day_first:
                order = [(int(b), int(a)), (int(a), int(b))]
            else:
                order = [(int(a), int(b)), (int(b), int(a))]
            for mo, d in order:
                if 1 <= mo <= 12:
                    return _build(y, mo, d, *rest)
            raise bad
        m = _NAMED_DATE.fullmatch(v)
        if m:
            if m.group(1):
                day_s, mon, year_s = m.group(1), m.group(2), m.group(3)
            else:
                mon, day_s, year_s = m.group(4), m.group(5), m.group(6)
            if mon not in _MONTHS:
                raise bad
            return _build(int(year_s), _MONTHS[mon], int(day_s), *m.group(7, 8, 9, 10, 11, 12))
        from email.utils import parsedate_to_datetime

        dt = parsedate_to_datetime(value.strip())
        if dt is None:
            raise bad
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError, OSError, TypeError, IndexError):
        raise bad from None


# ------------------------------------------------------------------------------------------------ parsing

def _map_columns(header: list[str]) -> tuple[dict[str, list[int]], dict[int, str], dict[str, str]]:
    """(field -> column indexes in priority order, column index -> data key for columns kept in data,
    header -> what it is read into)."""
    candidates: dict[str, list[tuple[int, int]]] = {}
    for i, h in enumerate(header):
        hit = _ALIAS_RANK.get(header_key(h))
        if hit:
            candidates.setdefault(hit[0], []).append((hit[1], i))
    fields = {f: [i for _, i in sorted(c)] for f, c in candidates.items()}
    primary = {cols[0] for cols in fields.values()}
    data_keys: dict[int, str] = {}
    used: set[str] = set()
    for i, h in enumerate(header):
        if i in primary:
            continue
        key = h.strip() or f"column {i + 1}"
        base, n = key, 1
        while key in used:
            n += 1
            key = f"{base} ({n})"
        used.add(key)
        data_keys[i] = key
    shown: dict[str, str] = {}
    for f, cols in fields.items():
        shown[header[cols[0]]] = f.lstrip("_")
    for i, key in data_keys.items():
        shown.setdefault(header[i] or key, "data")
    return fields, data_keys, shown


def _split_name(full: str) -> tuple[str | None, str | None]:
    full = _text(full)
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip() or None, last.strip() or None
    parts = full.split()
    while parts and parts[0].lower().rstrip(".") in ("mr", "mrs", "ms", "miss", "dr", "prof", "mx"):
        parts = parts[1:]
    if not parts:
        return None, None
    return parts[0], " ".join(parts[1:]) or None


PARALLEL_MIN = 20_000   # data rows from which parsing (and scoring) is shared among processes
CHUNK = 5_000           # data rows a worker converts at a time


@dataclass
class _Rows:
    """What converting one data row needs to know of its file (picklable: it travels to worker processes)."""

    fields: dict[str, list[int]]
    data_keys: dict[int, str]
    header: list[str]
    column_of: dict[int, str]
    width: int
    delimiter: str
    unterminated: bool
    last: int
    day_first: bool | None  # None: the file's dates do not say (day_first_evidence); read month first
    limit: datetime | None
    data_json_col: int | None
    scorer: Callable[[Mapping], dict] | None = None


def _convert(ctx: _Rows, n: int, r: list[str]) -> tuple[dict | None, list[dict]]:
    """One data row (spreadsheet row ``n``): (the row to import, or None; its errors). Duplicates are the
    merge's business (``_merge``): it is the only step that needs the rows before this one."""
    fields = ctx.fields
    if ctx.unterminated and n == ctx.last + 1:
        return None, [_err(n, None, "a quoted cell starting in this row is never closed (a missing \"), so this "
                                    "row and everything after it could not be read")]
    if len(r) > ctx.width:
        extra = r[ctx.width:]
        if any(c.strip() for c in extra):
            return None, [_err(n, None, f"this row has {len(r)} cells but the header has {ctx.width} columns "
                                        f"(check the delimiter {ctx.delimiter!r} and the quoting); row not imported")]
        r = r[:ctx.width]
    nul_cols = [i for i, c in enumerate(r) if _NUL in c]
    if nul_cols:
        r = [c.replace(_NUL, "") for c in r]

    def cell(i: int) -> str:
        return _clean(r[i]) if i < len(r) else ""

    def first(f: str) -> str:
        for i in fields.get(f, ()):
            v = cell(i)
            if v:
                return v
        return ""

    raw_email = first("email")
    if not raw_email:
        return None, [_err(n, "email", "no email address; row not imported")]
    email = normalise_email(raw_email)
    problem = email_problem(email)
    if problem:
        return None, [_err(n, "email", f"{_show(raw_email)} is not a valid email address ({problem}); "
                                       "row not imported")]
    errors: list[dict] = []
    # the canonical address (engine/core/identity), computed here (in the worker, for a large file): the merge dedupes
    # on it and the upsert matches stored leads by it
    row: dict[str, Any] = {"row": n, "email": email, KEY: canonical_address(email)[:320]}
    for f, maxlen in TEXT_FIELDS.items():
        v = _text(first(f))
        if v and len(v) > maxlen:
            errors.append(_err(n, f, f"longer than {maxlen} characters ({len(v)}); value dropped"))
            v = ""
        row[f] = v or None
    full_name = first("_full_name") if "_full_name" in fields else ""
    if full_name and not row["first_name"] and not row["last_name"]:
        fn, ln = _split_name(full_name)
        row["first_name"] = fn[:200] if fn else None
        row["last_name"] = ln[:200] if ln else None
        full_name = ""

    for f, conv in (("company_domain", normalise_domain), ("linkedin_url", normalise_linkedin),
                    ("timezone", parse_timezone), ("employee_count", parse_employee_count),
                    ("website_visits", _parse_visits)):
        v = first(f)
        row[f] = None
        if v:
            try:
                row[f] = conv(v)
            except ValueError as e:
                errors.append(_err(n, f, f"{e}; value dropped"))
    for f in DATE_FIELDS:
        v = first(f)
        row[f] = None
        if not v:
            continue
        try:
            dt = parse_datetime(v, ctx.day_first)
        except ValueError as e:
            errors.append(_err(n, f, f"{e}; value dropped"))
            continue
        if dt.year < 1970 or dt.year > 2100:
            errors.append(_err(n, f, f"{_show(v)} is outside 1970-2100; value dropped"))
        elif ctx.limit is not None and dt > ctx.limit:
            errors.append(_err(n, f, f"{_show(v)} is in the future; value dropped"))
        else:
            row[f] = dt

    data: dict[str, Any] = {}
    if ctx.data_json_col is not None:
        raw = cell(ctx.data_json_col)
        if raw:
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError
                data.update(obj)
            except ValueError:
                errors.append(_err(n, "data", "not a JSON object; value dropped"))
    if full_name:  # a name column beside first and last name columns: kept, not read
        col = fields["_full_name"][0]
        data[ctx.header[col].strip() or f"column {col + 1}"] = _CONTROL.sub("", full_name)
    for i, key in ctx.data_keys.items():
        v = _CONTROL.sub("", cell(i))
        if v:
            data[key] = v
    row["data"] = data
    for i in nul_cols:
        errors.append(_err(n, ctx.column_of.get(i, f"column {i + 1}"), "held a NUL character (a broken export?); "
                                                                       "it was removed and the rest of the value kept"))
    if ctx.scorer is not None:
        row[SCORED] = ctx.scorer(row)
    return row, errors


def _parse_visits(s: str) -> int:
    return parse_int(s, "number of website visits")


_WORKER: dict[str, _Rows] = {}  # in a worker process: the file's context, sent once when the worker starts


def _start_worker(ctx: _Rows) -> None:
    _WORKER["ctx"] = ctx


def _convert_chunk(items: list[tuple[int, list[str]]]) -> list[tuple[int, dict | None, list[dict]]]:
    ctx = _WORKER["ctx"]
    return [(n, *_convert(ctx, n, r)) for n, r in items]


SCORED = "_scored"  # a parsed row's ICP fields (score, tier, icp, disqualified_reason), when parsed with a scorer
KEY = "_key"  # a parsed row's canonical address (engine/core/identity ``canonical_address``): its lead's ``email_key``


class _Parse:
    """A lead CSV read in two steps: the file (encoding, delimiter, header, columns) when made, then its data rows
    by ``chunks()``, converted in this process or, for a large file, in worker processes (and scored there when
    a scorer is given), and merged in file order."""

    def __init__(self, path: str | Path, now: datetime | None, progress: Callable[[int, int], None] | None,
                 scorer: Callable[[Mapping], dict] | None, workers: int | None, encoding: str | None = None):
        path = Path(path)
        self.progress = progress
        text, encoding = _decode(_read_bytes(path), path, encoding)
        delimiter = _detect_delimiter(text)
        records, unterminated = _records(text, delimiter)
        h = next((i for i, r in enumerate(records) if any(c.strip() for c in r)), None)
        if h is None:
            raise LeadFileError(f"{path} is empty: a lead CSV needs a header row "
                                "(e.g. email,first_name,last_name,company)")
        header = [unneutralise(c.replace(_NUL, "").strip().lstrip("\ufeff").strip()) for c in records[h]]
        for c in header:
            if "@" in c and not email_problem(normalise_email(c)):
                raise LeadFileError(f"{path} has no header row: row {h + 1} holds an email address ({_show(c)}); "
                                    "add a first row naming the columns (e.g. email,first_name,last_name,company)")
        self.result = result = ParseResult(rows=[], errors=[], encoding=encoding, delimiter=delimiter)
        if not encoding.startswith(("utf-8", "utf-16", "utf-32")):
            result.notes.append(f"{path.name} is not UTF-8: read as {encoding_label(encoding)}; check a few names "
                                "with accents or non-Latin letters, or save the file as CSV UTF-8")
        fields, data_keys, result.columns = _map_columns(header)
        own_export = tuple(header) == EXPORT_COLUMNS
        if own_export:
            owned = {EXPORT_COLUMNS.index(c) for c in (*OWNED_COLUMNS, "data")}
            data_keys = {i: k for i, k in data_keys.items() if i not in owned}
            for c in (*OWNED_COLUMNS, "data"):
                result.columns[c] = "data" if c == "data" else "ignored (engine-owned)"
        body = [(i + 1, r) for i, r in enumerate(records) if i > h]
        self.body = [(n, r) for n, r in body if any(c.strip() for c in r)]
        result.total_rows = len(self.body)
        self.ctx: _Rows | None = None
        self.workers = 1
        if "email" not in fields:
            found = ", ".join(repr(c) for c in header if c) or "none"
            accepted = ", ".join(ALIASES["email"])
            result.errors.append(_err(h + 1, "email", f"no email column: the columns found are {found}; an email "
                                      "column may be named (ignoring case, spaces and punctuation) "
                                      f"any of: {accepted}"))
            return
        date_cols = [i for f in DATE_FIELDS for i in fields.get(f, [])]
        self.ctx = _Rows(
            fields=fields, data_keys=data_keys, header=header,
            column_of={**data_keys, **{i: f.lstrip("_") for f, cols in fields.items() for i in cols}},
            width=len(header), delimiter=delimiter, unterminated=unterminated, last=len(records) - 1,
            day_first=day_first_evidence(r[i] for _, r in self.body for i in date_cols if i < len(r)),
            limit=now + timedelta(days=1) if now is not None else None,
            data_json_col=EXPORT_COLUMNS.index("data") if own_export else None, scorer=scorer)
        self.workers = _workers(workers, len(self.body))

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def chunks(self) -> Iterable[list[dict]]:
        """The importable rows, a chunk at a time, in file order (each yielded list holds new rows only)."""
        total = self.result.total_rows
        if self.progress:
            self.progress(0, total)
        seen: dict[str, tuple[int, str]] = {}  # canonical address -> (row, email) of its first row
        if self.ctx is not None:
            if self.parallel:
                yield from self._parallel(seen, self.ctx)
            else:
                for k, (n, r) in enumerate(self.body):
                    if self.progress and k and k % PROGRESS_EVERY == 0:
                        self.progress(k, total)
                    self._merge(seen, [(n, *_convert(self.ctx, n, r))])
                yield self.result.rows
        self.result.errors.sort(key=lambda e: e["row"])
        if self.progress:
            self.progress(total, total)

    def _parallel(self, seen: dict[str, tuple[int, str]], ctx: _Rows) -> Iterable[list[dict]]:
        import concurrent.futures as cf

        parts = [self.body[i:i + CHUNK] for i in range(0, len(self.body), CHUNK)]
        done = 0
        with cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_mp_context(), initializer=_start_worker,
                                    initargs=(ctx,)) as pool:
            futures = [pool.submit(_convert_chunk, part) for part in parts]
            for part, fut in zip(parts, futures):
                before = len(self.result.rows)
                self._merge(seen, fut.result())
                done += len(part)
                if self.progress and done < len(self.body):
                    self.progress(done, len(self.body))
                yield self.result.rows[before:]

    def _merge(self, seen: dict[str, tuple[int, str]], converted: list[tuple[int, dict | None, list[dict]]]) -> None:
        """Rows in file order; a row whose canonical address an earlier row had (the same email, or another
        spelling of the same mailbox) is a duplicate of that row."""
        rows, errors = self.result.rows, self.result.errors
        for n, row, errs in converted:
            if row is not None:
                email, key = row["email"], row[KEY]
                if key in seen:  # the row's other problems are not reported: it is not imported at all
                    m, first = seen[key]
                    same = email if email == first else f"{email}, the same address as {first}"
                    errors.append(_err(n, "email", f"duplicate of row {m} ({same}); row not imported"))
                    continue
                seen[key] = (n, email)
                rows.append(row)
            errors.extend(errs)


def _workers(asked: int | None, rows: int) -> int:
    """Worker processes for ``rows`` data rows: ``asked``, else every core from PARALLEL_MIN rows on (one chunk
    each at least); 1 = in this process, which is also the answer where the workers could not be forked."""
    if _mp_context() is None:
        return 1
    if asked is None:
        asked = (os.cpu_count() or 1) if rows >= PARALLEL_MIN else 1
    return max(1, min(int(asked), -(-rows // CHUNK)))


def _mp_context():
    """The fork context where this process runs one thread (the CLI, a worker, a benchmark): the children start
    at once with everything imported. None elsewhere: forking a process whose other threads may hold locks (the
    console's server) is unsafe, and spawn re-runs the parent's main script, which under Streamlit is a page."""
    import multiprocessing as mp
    import threading

    if threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return None


def parse_leads_csv(path: str | Path, *, now: datetime | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    scorer: Callable[[Mapping], dict] | None = None, workers: int | None = None,
                    encoding: str | None = None) -> ParseResult:
    """Read a lead CSV (pure: no database). ``now``, when given, rejects engagement dates more than a day after it.
    ``progress(done, total)``, when given, is called with the data rows read so far, every ``PROGRESS_EVERY`` rows
    (every ``CHUNK`` rows when worker processes share a large file) and once at the end with (total, total).
    ``scorer``, when given (a picklable function of a row, see ``icp.scored_fields``), puts each row's ICP fields
    under ``SCORED``. ``workers``: processes converting the rows (default: every core from ``PARALLEL_MIN`` rows
    on; the result is the same). ``encoding`` (a Python codec name): read the file in it, strictly, instead of
    detecting it. Raises LeadFileError only when the file cannot be read as a CSV with a header row (or its
    encoding cannot be told for sure)."""
    p = _Parse(path, now, progress, scorer, workers, encoding)
    for _ in p.chunks():
        pass
    return p.result


# ------------------------------------------------------------------------------------------------ import

def _changes(lead, row: dict) -> dict[str, Any]:
    """The fields of an existing lead the row would change (empty cells never clear; engagement only moves on)."""
    out: dict[str, Any] = {}
    for f in ("first_name", "last_name", "title", "company", "company_domain", "employee_count", "industry",
              "country", "region", "timezone", "linkedin_url", "source"):
        v = row.get(f)
        if v is not None and getattr(lead, f) != v:
            out[f] = v
    for f in DATE_FIELDS:
        v = row.get(f)
        cur = getattr(lead, f)
        if v is not None and (cur is None or v > cur):
            out[f] = v
    visits = row.get("website_visits")
    if visits is not None and visits > (lead.website_visits or 0):
        out["website_visits"] = visits
    data = row.get("data") or {}
    cur = lead.data or {}
    if any(cur.get(k, object()) != v for k, v in data.items()):
        out["data"] = {**cur, **data}
    engaged = [out[f] for f in DATE_FIELDS if f in out]
    if engaged:
        latest = max(engaged)
        if lead.last_engaged_at is None or latest > lead.last_engaged_at:
            out["last_engaged_at"] = latest
    return out


def _new_lead(row: dict, now: datetime, default_source: str) -> dict:
    vals: dict[str, Any] = {f: row.get(f) for f in LEAD_FIELDS}
    vals["source"] = vals["source"] or default_source
    vals["website_visits"] = vals["website_visits"] or 0
    engaged = [row[f] for f in DATE_FIELDS if row.get(f)]
    vals.update(status="new", sequence_step=0, created_at=now, updated_at=now,
                last_engaged_at=max(engaged) if engaged else None,
                email_key=row.get(KEY) or canonical_address(vals["email"])[:320])
    if row.get("data"):
        vals["data"] = row["data"]
    return vals


def _upsert_batch(store, batch: list[dict], now: datetime, default_source: str,
                  scorer: Callable[[Mapping], dict] | None = None) -> tuple[int, int]:
    """One transaction: one SELECT ... WHERE email IN (...) OR email_key IN (...), one multi-row INSERT per shape,
    UPDATEs of the leads that changed. Returns (imported, updated). A concurrent insert of the same email retries
    the batch.

    A row updates the lead with its email, else the (lowest-id) lead with its canonical address (another spelling
    of the same mailbox: engine/core/identity), whose stored spelling is kept; only a row matching neither is a new
    lead.
    """
    from sqlalchemy import or_
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import col, select

    from engine.adapters.models import Lead, table_of

    for attempt in range(3):
        try:
            with store.write_plain() as s:
                emails = [r["email"] for r in batch]
                keys = [r.get(KEY) or canonical_address(r["email"])[:320] for r in batch]
                found = s.exec(select(Lead).where(or_(col(Lead.email).in_(emails),
                                                      col(Lead.email_key).in_(keys)))).all()
                existing = {lead.email: lead for lead in found}
                by_key: dict[str, Any] = {}
                for lead in sorted(found, key=lambda x: x.id):  # the lowest id wins, as in events._lead_by
                    by_key.setdefault(lead.email_key, lead)
                updated = 0
                new: dict[bool, list[dict]] = {True: [], False: []}
                for r, key in zip(batch, keys):
                    lead = existing.get(r["email"]) or by_key.get(key)
                    if lead is None:
                        vals = _new_lead(r, now, default_source)
                        if scorer is not None:  # the lead is the row: scored by the worker that read it, or here
                            vals.update(r.get(SCORED) or scorer(r))
                        new["data" in vals].append(vals)
                        continue
                    ch = _changes(lead, r)
                    if ch:
                        for k, v in ch.items():
                            setattr(lead, k, v)
                        if scorer is not None:  # the stored lead with the file's changes
                            for k, v in scorer(lead).items():
                                setattr(lead, k, v)
                        lead.updated_at = now
                        s.add(lead)
                        updated += 1
                for rows in new.values():  # same keys in every row of one executemany (data omitted = SQL NULL)
                    insert_many(s.connection(), table_of(Lead), rows)
            return len(new[True]) + len(new[False]), updated
        except IntegrityError:
            if attempt == 2:  # another writer keeps inserting the same emails: give up loudly
                raise
    raise AssertionError("unreachable")


def import_leads(store, path: str | Path, clock: Clock,
                 progress: Callable[[int, int], None] | None = None,
                 parse_progress: Callable[[int, int], None] | None = None,
                 scorer: Callable[[Mapping], dict] | None = None, workers: int | None = None,
                 encoding: str | None = None) -> dict:
    """Upsert the leads of a CSV by email. Returns {"imported", "updated", "unchanged", "rejected", "errors",
    "rows", "encoding", "delimiter", "notes"} (notes: for a person, e.g. the legacy encoding the file was read in):
    imported = new leads, updated = existing leads with at least one changed field, rejected = rows that could not
    be imported (no/invalid/duplicate email, malformed row). ``errors``
    also lists values that were dropped from rows that were imported. Raises LeadFileError when the file cannot
    be read. ``parse_progress(done, total)`` follows the reading of the file (data rows), then
    ``progress(done, total)`` the saving of the importable rows, batch by batch; a large file read by worker
    processes is saved chunk by chunk while the next chunks are read (``total`` is then the data rows until the
    last call, (saved, saved)).

    ``scorer`` (see ``icp.scored_fields``): new leads and the leads the file changes are stored scored, so no
    rescore is needed after the import. ``workers``, ``encoding``: see ``parse_leads_csv``."""
    now = clock()
    p = _Parse(path, now, parse_progress, scorer, workers, encoding)
    if p.ctx is not None and not p.parallel:
        p.ctx.scorer = None  # read here: only the rows that become new or changed leads are scored (_upsert_batch)
    imported = updated = saved = 0
    default_source = f"import:{Path(path).name}"[:100]
    last: list = [None]

    def report(done: int, total: int) -> None:
        if progress and last[0] != (done, total):
            last[0] = (done, total)
            progress(done, total)

    if p.parallel:
        report(0, p.result.total_rows)
    for rows in p.chunks():
        total = p.result.total_rows if p.parallel else len(rows)
        report(saved, total)
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start:start + BATCH_SIZE]
            i, u = _upsert_batch(store, batch, now, default_source, scorer)
            imported += i
            updated += u
            saved += len(batch)
            if saved < total:
                report(saved, total)
    rows = p.result.rows
    report(len(rows), len(rows))
    return {"imported": imported, "updated": updated, "unchanged": len(rows) - imported - updated,
            "rejected": p.result.rejected, "errors": p.result.errors, "rows": p.result.total_rows,
            "encoding": p.result.encoding, "delimiter": p.result.delimiter, "notes": p.result.notes}


# ------------------------------------------------------------------------------------------------ export

def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        v = value.astimezone(UTC) if value.tzinfo else value
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if v.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str) if value else ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def write_safe_csv(path: str | Path, header: Iterable[str], rows: Iterable[Iterable[Any]],
                   error: type[AlphaError] = AlphaError) -> int:
    """Write a UTF-8 CSV whose every cell is neutralised against spreadsheet formula injection. The file is written
    next to ``path`` and moved into place, so a reader never sees half a file. Returns the number of rows; a
    write failure raises ``error`` naming the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(list(header))
            for row in rows:
                w.writerow([neutralise(cell) for cell in row])
                n += 1
        os.replace(tmp, path)
    except OSError as e:
        raise error(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def write_leads_csv(path: str | Path, leads: Iterable[Any], columns: Iterable[str] = EXPORT_COLUMNS) -> int:
    """Write leads (``Lead`` rows or mappings) as a spreadsheet-safe UTF-8 CSV; returns the number of leads."""
    cols = list(columns)

    def rows():
        for lead in leads:
            get = lead.get if isinstance(lead, Mapping) else (lambda k, _l=lead: getattr(_l, k, None))
            yield [_cell(get(c)) for c in cols]

    return write_safe_csv(path, cols, rows(), error=LeadFileError)


def export_leads(store, path: str | Path) -> int:
    """Every lead, in id order, to a CSV that re-imports as it was. Returns the number of leads written."""
    from sqlmodel import col, select

    from engine.adapters.models import Lead

    with store.read() as s:
        leads = s.exec(select(Lead).order_by(col(Lead.id)).execution_options(yield_per=1000))
        return write_leads_csv(path, leads)
