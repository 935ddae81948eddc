"""Text normalisation before any content rule matches: the same words however they are dressed up.

``fold(text)`` returns the text a rule should read:

* compatibility forms folded by NFKD (fullwidth ``ｆｒｅｅ``, mathematical ``𝐟𝐫𝐞𝐞``, circled, ligatures, the
  no-break and other typographic spaces) and combining marks dropped (``frée``, zalgo ``f̶r̶e̶e̶``);
* default-ignorable code points removed: zero-width space/joiners (U+200B-U+200D), word joiner and invisible
  operators (U+2060-U+2064), BOM (U+FEFF), soft hyphen (U+00AD), bidi controls (U+200E/F, U+202A-U+202E,
  U+2066-U+2069), variation selectors, tag characters, the Hangul fillers... (Unicode's
  Default_Ignorable_Code_Point property, DerivedCoreProperties.txt);
* letters that look like Latin ones folded to them: the Cyrillic, Greek, Armenian, Cherokee and Latin-extension
  look-alikes of Unicode's confusables.txt (https://www.unicode.org/Public/security/latest/confusables.txt, the
  entries whose prototype is one ASCII letter), plus the small-capital letters of "fancy text" generators;
* typographic quotes and dashes folded to ``'``, ``"`` and ``-``; line/paragraph separators to line breaks;
* the emphasis markers ``_``, ``*`` and ``~`` read as spaces, so ``_free_``, ``**free**`` and ``~~free~~`` are the
  word "free" (``_`` is a word character to a regular expression, which hid ``_free_`` from a ``\\b`` match).

Only the non-ASCII runs of a text pass through the Unicode steps, so a plain ASCII email costs one
``str.translate`` (``light`` does the same without the confusable and emphasis folding, for matching words in other
scripts, such as a Cyrillic "Ответ:" subject prefix).
"""
from __future__ import annotations

import re
import unicodedata

# Default_Ignorable_Code_Point (Unicode 15, DerivedCoreProperties.txt), plus U+180E (Mongolian vowel separator,
# formerly a space) and U+2800 (braille blank), which render as nothing.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
IGNORABLE = frozenset(chr(c) for lo, hi in _IGNORABLE_RANGES for c in range(lo, hi + 1))

# Look-alikes whose confusables.txt prototype is one Latin letter (source -> prototype). Upper-case forms that
# confusables.txt maps to "l" (Greek Iota, Cyrillic I and Palochka) are read as "I", the letter they stand for.
_CONFUSABLES = {
    # Cyrillic
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ӏ": "I", "Ү": "Y", "Ԍ": "G", "Ԛ": "Q", "Ԝ": "W", "Ѵ": "V",
    "Ь": "b", "а": "a", "г": "r", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s", "і": "i",
    "ј": "j", "ѡ": "w", "ѵ": "v", "ү": "y", "һ": "h", "ҽ": "e", "ӏ": "i", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X", "ϒ": "Y", "Ϝ": "F", "Ϲ": "C", "Ϻ": "M", "Ϳ": "J",
    "α": "a", "γ": "y", "ι": "i", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "υ": "u", "ϱ": "p", "ϲ": "c", "ϳ": "j",
    # Armenian
    "Ս": "U", "Տ": "S", "Օ": "O", "ա": "w", "գ": "q", "զ": "q", "հ": "h", "ո": "n", "ռ": "n", "ս": "u",
    "ց": "g", "ք": "f", "օ": "o",
    # Cherokee (capital-letter look-alikes)
    "Ꭰ": "D", "Ꭱ": "R", "Ꭲ": "T", "Ꭵ": "i", "Ꭹ": "Y", "Ꭺ": "A", "Ꭻ": "J", "Ꭼ": "E", "Ꮋ": "H", "Ꮮ": "L",
    "Ꮇ": "M", "Ꮲ": "P", "Ꮪ": "S", "Ꮃ": "W", "Ꮓ": "Z", "Ꮯ": "C", "Ꮶ": "K", "Ᏼ": "B", "Ꮐ": "G", "Ꮩ": "V",
    # Latin extensions
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɣ": "y", "ɩ": "i", "ɪ": "i", "ɯ": "w", "ʋ": "u", "ʏ": "y",
    "Ɩ": "I", "ǀ": "l", "ƽ": "s", "Ʀ": "R", "ƍ": "g",
    # small capitals (not all in confusables.txt, but what "fancy text" generators use for letters)
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ᴊ": "j", "ᴋ": "k",
    "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ꞯ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
    "ᴡ": "w", "ᴢ": "z",
}
_PUNCT = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'", "\u02b9": "'",
    "\u02bb": "'", "\u02bd": "'", "\uff07": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2033": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2043": "-", "\ufe63": "-", "\u02d7": "-", "\u2028": "\n", "\u2029": "\n", "\u0085": "\n",
    "\u1680": " ", "\u180e": "",
}
# combining marks (diacritics, zalgo overlays) dropped after NFKD
_MARKS = re.compile("[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u1ab0-\u1aff"
                    "\u1dc0-\u1dff\u20d0-\u20ff\u302a-\u302f\u3099\u309a\ufe20-\ufe2f]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

_LIGHT_TABLE: dict[int, str | None] = {ord(c): None for c in IGNORABLE}  # for str.translate
_LIGHT_TABLE.update({ord(k): v for k, v in _PUNCT.items()})
_FOLD_TABLE = dict(_LIGHT_TABLE)
_FOLD_TABLE.update({ord(k): v for k, v in _CONFUSABLES.items()})
_EMPHASIS = str.maketrans("_*~", "   ")


def _light_run(m: re.Match) -> str:
    s = unicodedata.normalize("NFKD", m.group(0).translate(_LIGHT_TABLE))
    return _MARKS.sub("", s).translate(_LIGHT_TABLE)


def _fold_run(m: re.Match) -> str:
    # look-alikes folded before NFKD too: it would turn some into letters the table does not hold (lunate sigma
    # "ϲ", a "c" look-alike, decomposes to the final sigma "ς")
    s = unicodedata.normalize("NFKD", m.group(0).translate(_FOLD_TABLE))
    return _MARKS.sub("", s).translate(_FOLD_TABLE)


def fold(text: str) -> str:
    """``text`` as the content rules read it (compatibility forms, invisible characters, look-alike letters,
    typographic quotes and emphasis markers folded; see the module docstring). Case is kept."""
    if not text:
        return ""
    if not text.isascii():
        text = _NON_ASCII.sub(_fold_run, text)
    return text.translate(_EMPHASIS)


def light(text: str) -> str:
    """``text`` with compatibility forms folded, combining marks and invisible characters removed, but letters of
    other scripts kept (for words written in those scripts)."""
    if not text or text.isascii():
        return text or ""
    return _NON_ASCII.sub(_light_run, text)
