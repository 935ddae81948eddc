"""Lead CSVs in legacy encodings (issue 14): a Windows-1251 or Shift-JIS file imports with its exact text or is
refused with an error naming the file; it is never imported as mojibake. Detection is charset-normalizer's,
on a bounded sample of the file's non-UTF-8 lines; the encoding used is named in the import report."""
from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from engine.adapters.leads_csv import LeadFileError, import_leads, parse_leads_csv
from engine.adapters.models import Lead
from tests.badinput.strategies import COMMON

RUSSIAN = [("ivan.petrov@romashka.example", "Иван", "Петров", "ООО «Ромашка»", "Генеральный директор"),
           ("olga@gazprom.example", "Ольга", "Смирнова", "Газпром нефть", "Руководитель отдела продаж"),
           ("sergey@yandex.example", "Сергей", "Кузнецов", "Яндекс", "Менеджер по закупкам"),
           ("natalia@sber.example", "Наталья", "Соколова", "Сбербанк", "Финансовый директор"),
           ("alexey@mts.example", "Алексей", "Волков", "МТС", "Технический директор"),
           ("ekaterina@ozon.example", "Екатерина", "Морозова", "Озон", "Директор по маркетингу")]
JAPANESE = [("taro@toyota.example", "太郎", "山田", "トヨタ自動車株式会社", "営業部長"),
            ("hanako@sony.example", "花子", "鈴木", "ソニーグループ株式会社", "マーケティング担当"),
            ("ichiro@hitachi.example", "一郎", "佐藤", "株式会社日立製作所", "技術部長"),
            ("yuki@rakuten.example", "由紀", "高橋", "楽天グループ株式会社", "代表取締役"),
            ("kenji@panasonic.example", "健二", "田中", "パナソニック株式会社", "購買担当")]
WESTERN = [("zoe@cafe.example", "Zoë", "Müller", "Café Niño GmbH", "Geschäftsführerin"),
           ("jose@nunez.example", "José", "Núñez", "Señor Ibáñez S.L.", "Director de ventas"),
           ("francois@sg.example", "François", "Lefèvre", "Société Générale", "Directeur général"),
           ("bjorn@oresund.example", "Björn", "Åström", "Øresund AB", "Försäljningschef")]
HEADER = ["Email", "First Name", "Last Name", "Company", "Title"]
FIELDS = ["email", "first_name", "last_name", "company", "title"]


def csv_text(rows, header=HEADER) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    return buf.getvalue()


def put(tmp_path: Path, raw: bytes, name: str = "leads.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def values(rows) -> list[tuple]:
    return [tuple(r[f] for f in FIELDS) for r in rows]


def stored(app) -> list[tuple]:
    with app.store.read() as s:
        return sorted(tuple(getattr(lead, f) for f in FIELDS) for lead in s.exec(select(Lead)).all())


def count(app) -> int:
    with app.store.read() as s:
        return s.exec(select(func.count()).select_from(Lead)).one()


# ------------------------------------------------------------------------------------------ legacy files import

@pytest.mark.parametrize("rows,codec,encoding,label", [
    (RUSSIAN, "cp1251", "cp1251", "Windows-1251"),
    (JAPANESE, "shift_jis", "cp932", "Shift-JIS"),
    (WESTERN, "cp1252", "cp1252", "Windows-1252"),
])
def test_legacy_file_imports_with_its_exact_text(app_factory, tmp_path, rows, codec, encoding, label):
    p = put(tmp_path, csv_text(rows).encode(codec))
    app = app_factory()
    before = count(app)
    report = import_leads(app.store, p, app.clock)
    assert (report["imported"], report["rejected"], report["errors"]) == (len(rows), 0, [])
    assert report["encoding"] == encoding
    assert any(label in n and "not UTF-8" in n for n in report["notes"]), report["notes"]
    assert count(app) == before + len(rows)
    got = {r[0]: r for r in stored(app)}
    assert [got[r[0]] for r in rows] == list(rows)  # the exact Unicode text, every field


def test_a_legacy_file_is_named_in_the_parse_result_too(tmp_path):
    r = parse_leads_csv(put(tmp_path, csv_text(RUSSIAN).encode("cp1251")))
    assert values(r.rows) == RUSSIAN and r.encoding == "cp1251" and r.notes


def test_utf8_needs_no_detection_and_no_note(tmp_path, monkeypatch):
    import charset_normalizer

    monkeypatch.setattr(charset_normalizer, "from_bytes", lambda *a, **k: pytest.fail("detection ran on UTF-8"))
    for bom in (b"", b"\xef\xbb\xbf"):
        r = parse_leads_csv(put(tmp_path, bom + csv_text(RUSSIAN + JAPANESE).encode("utf-8")))
        assert values(r.rows) == RUSSIAN + JAPANESE and r.encoding.startswith("utf-8") and r.notes == []


@pytest.mark.parametrize("codec,bom,encoding", [
    ("utf-16-le", b"\xff\xfe", "utf-16"), ("utf-16-be", b"\xfe\xff", "utf-16"),
    ("utf-32-le", b"\xff\xfe\x00\x00", "utf-32"), ("utf-32-be", b"\x00\x00\xfe\xff", "utf-32"),
])
def test_utf16_and_utf32_with_a_byte_order_mark(tmp_path, codec, bom, encoding):
    rows = RUSSIAN[:2] + JAPANESE[:2] + WESTERN[:2]
    r = parse_leads_csv(put(tmp_path, bom + csv_text(rows).encode(codec)))
    assert (values(r.rows), r.encoding, r.errors, r.notes) == (rows, encoding, [], [])


def test_a_utf8_export_glued_to_a_cp1251_one_keeps_both(tmp_path):
    raw = csv_text(RUSSIAN[:3]).encode("utf-8") + csv_text(RUSSIAN[3:], header=[]).encode("cp1251")
    r = parse_leads_csv(put(tmp_path, raw))
    assert values(r.rows) == RUSSIAN and r.encoding == "cp1251 and utf-8 (mixed)"


def test_a_large_file_is_detected_on_a_bounded_sample(tmp_path, monkeypatch):
    import charset_normalizer

    seen: list[int] = []
    real = charset_normalizer.from_bytes

    def spy(sample, *a, **k):
        seen.append(len(sample))
        return real(sample, *a, **k)

    monkeypatch.setattr(charset_normalizer, "from_bytes", spy)
    rows = [(f"lead{i}@x{i % 50}.example", *RUSSIAN[i % len(RUSSIAN)][1:]) for i in range(20_000)]
    raw = csv_text(rows).encode("cp1251")
    r = parse_leads_csv(put(tmp_path, raw), workers=1)
    assert len(r.rows) == len(rows) and r.rows[-1]["company"] == rows[-1][3] and r.encoding == "cp1251"
    assert len(seen) == 1 and seen[0] <= 300_000 < len(raw)


def test_an_explicit_encoding_reads_a_file_too_short_to_tell(tmp_path):
    p = put(tmp_path, csv_text([("ivan@x.example", "Иван", "", "", "")]).encode("cp1251"), "short.csv")
    with pytest.raises(LeadFileError, match=r"short\.csv is not UTF-8 .*could be .*Windows-1251"):
        parse_leads_csv(p)
    r = parse_leads_csv(p, encoding="cp1251")
    assert r.rows[0]["first_name"] == "Иван" and r.encoding == "cp1251"
    with pytest.raises(LeadFileError, match=r"short\.csv is not valid utf-8 text \(line 2"):
        parse_leads_csv(p, encoding="utf-8")
    with pytest.raises(LeadFileError, match="unknown encoding 'klingon'"):
        parse_leads_csv(p, encoding="klingon")


# ------------------------------------------------------------------------------------------ refused, never mojibake

def _random_high_bytes() -> bytes:
    rnd = random.Random(14)
    lines = [b"email,first_name,company"]
    for i in range(60):
        name = bytes(rnd.randrange(0x80, 0x100) for _ in range(rnd.randrange(3, 12)))
        company = bytes(rnd.randrange(0x80, 0x100) for _ in range(rnd.randrange(3, 20)))
        lines.append(b"lead%d@x.example," % i + name + b"," + company)
    return b"\r\n".join(lines) + b"\r\n"


@pytest.mark.parametrize("raw", [
    _random_high_bytes(),
    # two exports in two legacy encodings glued together
    csv_text(RUSSIAN).encode("cp1251") + csv_text(JAPANESE, header=[]).encode("shift_jis"),
    csv_text(JAPANESE).encode("shift_jis") + csv_text(WESTERN, header=[]).encode("cp1252"),
], ids=["random-bytes", "cp1251+shift_jis", "shift_jis+cp1252"])
def test_text_in_no_confident_encoding_is_refused_and_nothing_imported(app_factory, tmp_path, raw):
    p = put(tmp_path, raw, "garbled.csv")
    app = app_factory()
    before = count(app)
    with pytest.raises(LeadFileError) as e:
        import_leads(app.store, p, app.clock)
    msg = str(e.value)
    assert "garbled.csv is not UTF-8" in msg and "CSV UTF-8" in msg and "\n" not in msg
    assert count(app) == before


# ------------------------------------------------------------------------------------------ property

CYRILLIC = "".join(chr(c) for c in range(0x410, 0x450)) + "Ёё"
LATIN1 = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
          + "".join(c for c in map(chr, range(0xC0, 0x100)) if c.isalpha() and c != "ß"))
HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3094))
KATAKANA = "".join(chr(c) for c in range(0x30A1, 0x30F7)) + "ー"
KANJI = "山田中村佐藤鈴木高橋伊渡辺小林加吉本松井上森池清水阪石原株式会社東京大営業部長野川口太郎花子健一二三"


def _cased_words(alphabet: str):
    """Words shaped like names: a capital, then small letters ("Müller", "Петров")."""
    upper = "".join(c for c in alphabet if c.isupper())
    lower = "".join(c for c in alphabet if c.islower())
    return st.builds(lambda a, b: a + b, st.sampled_from(upper), st.text(lower, min_size=1, max_size=11))


# Words shaped like Japanese names and company names: kanji (with a hiragana ending), or katakana.
_JAPANESE_WORDS = st.one_of(
    st.builds(lambda a, b: a + b, st.text(KANJI, min_size=1, max_size=4), st.text(HIRAGANA, max_size=3)),
    st.text(KATAKANA, min_size=2, max_size=8))
SCRIPTS = [(_cased_words(CYRILLIC), ["cp1251", "koi8_r"]), (_JAPANESE_WORDS, ["shift_jis", "cp932", "euc_jp"]),
           (_cased_words(LATIN1), ["cp1252", "latin-1"])]


@st.composite
def legacy_files(draw):
    word, codecs = draw(st.sampled_from(SCRIPTS))
    codec = draw(st.sampled_from(codecs))
    rows = draw(st.lists(st.tuples(word, st.lists(word, min_size=1, max_size=3).map(" ".join)),
                         min_size=1, max_size=25))
    rows = [(f"lead{i}@x.example", first, company) for i, (first, company) in enumerate(rows)]
    return rows, codec


@settings(**COMMON, max_examples=150)
@given(legacy_files())
def test_legacy_text_imports_exactly_or_is_refused(tmp_path_factory, case):
    rows, codec = case
    header = ["email", "first_name", "company"]
    p = put(tmp_path_factory.mktemp("enc"), csv_text(rows, header=header).encode(codec))
    try:
        r = parse_leads_csv(p)
    except LeadFileError as e:
        assert str(p) in str(e) and "not UTF-8" in str(e)
        return
    assert [(x["email"], x["first_name"], x["company"]) for x in r.rows] == rows, (codec, r.encoding)


def test_the_cli_names_the_encoding_it_read_and_takes_one_when_detection_refuses(app_factory, tmp_path, monkeypatch):
    """`alpha leads import` shows the note (a person checks a few names) and takes --encoding for a file too short
    to tell, as its refusal message says."""
    from typer.testing import CliRunner

    import engine.entrypoints.cli as cli

    app = app_factory()
    monkeypatch.setattr("engine.entrypoints.cli.common.open_app", lambda ready=True: app)
    runner = CliRunner()
    full = put(tmp_path, csv_text(RUSSIAN).encode("cp1251"), "ru.csv")
    out = runner.invoke(cli.cli, ["leads", "import", str(full)])
    assert out.exit_code == 0, out.output
    assert "note: ru.csv is not UTF-8: read as Windows-1251" in out.output and f"imported {len(RUSSIAN)}" in out.output
    short = put(tmp_path, csv_text([("ivan@x.example", "Иван", "", "", "")]).encode("cp1251"), "short.csv")
    refused = runner.invoke(cli.cli, ["leads", "import", str(short)])
    # (the CLI's main() prints an AlphaError as one line; invoked here below main(), it is the exception)
    assert refused.exit_code != 0 and "--encoding cp1251" in refused.output + str(refused.exception)
    ok = runner.invoke(cli.cli, ["leads", "import", str(short), "--encoding", "cp1251"])
    assert ok.exit_code == 0, ok.output
    with app.store.read() as s:
        assert s.exec(select(Lead).where(Lead.email == "ivan@x.example")).one().first_name == "Иван"
