"""What a reader sees of an HTML email: one model for the content rules, the template checks and the plain-text
rendering.

``analyse(html)`` returns the visible text, the hidden text and the links (``Anchor``: href, visible text, hidden
flag). Text counts as hidden when a mail client would not show it:

* in a comment (``<!-- -->``, also unclosed, ``<!-->``, ``--!>``), a CDATA section, ``<head>``, ``<title>``,
  ``<script>``, ``<style>``, ``<template>``, ``<noscript>``, ``<noembed>``, ``<noframes>``, ``<iframe>``, the
  fallback of ``<audio>``/``<video>``/``<canvas>``, a closed ``<details>`` (outside its ``<summary>``), or an element
  with the ``hidden`` attribute (``aria-hidden`` hides nothing on screen, so it does not count);
* styled out of sight, inline or by a ``<style>`` rule that selects the element (type, class, id, descendant
  selectors; ``@media`` blocks included, specificity and ``!important`` honoured): ``display:none``,
  ``visibility:hidden|collapse``, ``content-visibility:hidden``, ``mso-hide:all``, ``opacity`` (or
  ``filter:opacity()``) below 0.1 (multiplied down the tree), text 2px or smaller (``font-size``, the ``font``
  shorthand, ``zoom``; relative sizes resolved against the parent), ``max-height``/``max-width`` of 2px or less,
  ``width``/``height``/``line-height`` of 2px or less with ``overflow:hidden``, off-screen positioning
  (``left``/``top`` of -100px or beyond on a positioned element, any offset of 1000px or more, ``text-indent`` or a
  margin of -100px or beyond, ``transform: translate(...)``/``scale(<0.1)``), ``clip: rect()`` of 1px or less,
  ``clip-path`` ``inset(>=50%)``/``circle(0)``/``polygon(0 0, ...)``;
* text whose colour is within 24 (per RGB channel) of the background behind it: white on white (the background is
  white unless an element or ``bgcolor`` sets one; an image background is unknown and hides nothing), ``color`` equal
  to ``background-color``, ``transparent``, an alpha below 0.1. Links without a colour of their own are link blue.

A link also counts as hidden when it cannot be clicked (``pointer-events:none``, the ``inert`` attribute). A rule
whose selector the model reads only roughly (pseudo-classes, attribute or sibling selectors) makes the elements it
may select count as hidden when it would change what the reader sees; a style sheet built to exhaust the model
(CSS_BUDGET) hides the rest of the document.

The parser follows the browser where an attacker could exploit a difference: a ``/>`` on a non-void element does
not close it (``<div style="display:none"/>`` hides what follows), an end tag never closes an element across a
block or table boundary (``<span></span>`` does not end a hidden ``<div>`` opened inside it), the first of two
``style`` attributes wins, CSS escapes and comments are decoded, a ``<p>``, ``<li>``, ``<td>``... closes the one
left open. Where the model is unsure it errs towards hidden: hidden text is still scanned for spam, and only visible
text counts as showing the postal address or the unsubscribe link.

``VisibilityParser`` is the model as an ``HTMLParser`` with hooks (``on_start``, ``on_pop``, ``on_text``,
``on_comment``) for renderers that need the same answer (engine/rules/messaging.py's plain-text version).
"""
from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Self

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                  "track", "wbr", "keygen", "basefont", "bgsound", "frame", "image"})
HIDDEN_TAGS = frozenset({"head", "title", "script", "style", "template", "noscript", "noembed", "noframes",
                         "iframe", "audio", "video", "canvas", "datalist", "object"})
# elements a layout separates from their neighbours (a line break before and after)
BLOCK = frozenset({"p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote",
                   "section", "article", "header", "footer", "center", "address", "dl", "dt", "dd", "pre", "hr",
                   "form", "fieldset", "figure", "figcaption", "main", "nav", "aside", "details", "summary",
                   "caption", "tbody", "thead", "tfoot", "body"})
CELL = frozenset({"td", "th"})
# HTML's "special" elements: an end tag for another element never closes across one of them
_SPECIAL = frozenset({"address", "applet", "area", "article", "aside", "base", "basefont", "bgsound", "blockquote",
                      "body", "br", "button", "caption", "center", "col", "colgroup", "dd", "details", "dir", "div",
                      "dl", "dt", "embed", "fieldset", "figcaption", "figure", "footer", "form", "frame", "frameset",
                      "h1", "h2", "h3", "h4", "h5", "h6", "head", "header", "hgroup", "hr", "html", "iframe", "img",
                      "input", "keygen", "li", "link", "listing", "main", "marquee", "menu", "meta", "nav",
                      "noembed", "noframes", "noscript", "object", "ol", "p", "param", "plaintext", "pre", "script",
                      "section", "select", "source", "style", "summary", "table", "tbody", "td", "template",
                      "textarea", "tfoot", "th", "thead", "title", "tr", "track", "ul", "wbr", "xmp"})
_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template", "svg",
                    "math"})
_TABLE_SCOPE = frozenset({"html", "table", "template"})
_CLOSES_P = frozenset({"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div",
                       "dl", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
                       "h6", "header", "hgroup", "hr", "listing", "main", "menu", "nav", "ol", "p", "pre",
                       "section", "summary", "ul", "xmp", "li", "dd", "dt", "plaintext"})
# start tag -> (the open elements it closes, the elements a search for them stops at)
_AUTO_CLOSE = {
    "li": (frozenset({"li"}), (_SPECIAL - {"address", "div", "p", "li"}) | _SCOPE | {"ol", "ul"}),
    "dd": (frozenset({"dd", "dt"}), (_SPECIAL - {"address", "div", "p", "dd", "dt"}) | _SCOPE | {"dl"}),
    "dt": (frozenset({"dd", "dt"}), (_SPECIAL - {"address", "div", "p", "dd", "dt"}) | _SCOPE | {"dl"}),
    "tr": (frozenset({"tr"}), _TABLE_SCOPE | {"tbody", "thead", "tfoot"}),
    "td": (frozenset({"td", "th"}), _TABLE_SCOPE | {"tr", "tbody", "thead", "tfoot"}),
    "th": (frozenset({"td", "th"}), _TABLE_SCOPE | {"tr", "tbody", "thead", "tfoot"}),
    "option": (frozenset({"option"}), _SCOPE | {"select", "datalist", "optgroup"}),
    "a": (frozenset({"a"}), _SPECIAL | _SCOPE),
}
_FORMATTING = frozenset({"b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt",
                         "u"})
_HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template", "basefont",
                           "bgsound", "head", "html"})


@dataclass
class Anchor:
    href: str
    text: str       # the link's visible text
    hidden: bool    # the link itself is out of sight or cannot be clicked (pointer-events:none, inert)


@dataclass(frozen=True)
class Visibility:
    visible: str
    hidden: str
    anchors: tuple[Anchor, ...]


# ------------------------------------------------------------------------------------------------ CSS values

_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.S)
_IMPORTANT = re.compile(r"!\s*important\s*$")
_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(px|pt|pc|em|rem|ex|ch|%|cm|mm|in|q|vw|vh|vmin|"
                     r"vmax|lh)?")
_LENGTH = re.compile(r"^" + _NUMBER.pattern + r"$")
_ABS = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "in": 96.0, "q": 96 / 101.6,
        "vw": 6.0, "vh": 6.0, "vmin": 6.0, "vmax": 6.0}
_FONT_KEYWORDS = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0, "x-large": 24.0,
                  "xx-large": 32.0, "xxx-large": 48.0}
MAX_SEARCH = 512    # open elements an end tag or implied end tag looks through
CSS_BUDGET = 200_000  # selector steps for one document; beyond it every further element counts as hidden
TINY = 2.0          # px: text this small or smaller is not read
OFF_LEFT = -100.0   # px: a left/top offset, margin or indent this far negative moves the text out of sight
FAR = 1000.0        # px: an offset this large in any direction does
MIN_OPACITY = 0.1
NEAR_COLOUR = 24    # per RGB channel: text this close to its background is not read


def _unescape_css(s: str) -> str:
    def one(m: re.Match) -> str:
        if m.group(1):
            cp = int(m.group(1), 16)
            return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else "\ufffd"
        return "" if m.group(2) == "\n" else m.group(2)
    return _CSS_ESCAPE.sub(one, s)


def parse_declarations(text: str) -> dict[str, tuple[str, bool]]:
    """``prop: value; ...`` -> {property: (value, important)}, lower-cased, the last declaration of a property
    winning (an important one over a normal one)."""
    if "\\" in text:
        text = _unescape_css(text)
    if "/*" in text:
        text = _CSS_COMMENT.sub(" ", text)
    out: dict[str, tuple[str, bool]] = {}
    for part in text.split(";"):
        prop, sep, value = part.partition(":")
        if not sep:
            continue
        prop = prop.strip().lower()
        value = " ".join(value.lower().split())
        important = False
        if "!" in value:
            m = _IMPORTANT.search(value)
            if m:
                important, value = True, value[:m.start()].rstrip()
        if prop and value and (important or not out.get(prop, ("", False))[1]):
            out[prop] = (value, important)
    return out


def _px(value: str | None, ref: float = 16.0, pct_of: float = 600.0) -> float | None:
    """A single CSS length in px (em relative to ``ref``, % of ``pct_of``), None when it is not one. calc(),
    min(), max() and clamp() give their smallest length (text and boxes err towards small, that is hidden)."""
    if not value:
        return None
    m = _LENGTH.match(value)
    if m is None:
        if "(" in value and value.split("(", 1)[0].strip() in ("calc", "min", "max", "clamp", "-webkit-calc"):
            vals = [_unit(float(n), u, ref, pct_of) for n, u in _NUMBER.findall(value)]
            return min(vals) if vals else None
        return None
    return _unit(float(m.group(1)), m.group(2), ref, pct_of)


def _unit(n: float, unit: str | None, ref: float, pct_of: float) -> float:
    if unit in ("em", "lh"):
        return n * ref
    if unit == "rem":
        return n * 16.0
    if unit in ("ex", "ch"):
        return n * ref * 0.5
    if unit == "%":
        return n * pct_of / 100.0
    return n * _ABS.get(unit, 1.0)


def _lengths(value: str, ref: float = 16.0) -> list[float]:
    return [_unit(float(n), u, ref, 600.0) for n, u in _NUMBER.findall(value)]


_NAMED = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "silver": (192, 192, 192), "yellow": (255, 255, 0),
    "navy": (0, 0, 128), "maroon": (128, 0, 0), "purple": (128, 0, 128), "teal": (0, 128, 128),
    "orange": (255, 165, 0), "lightgray": (211, 211, 211), "lightgrey": (211, 211, 211),
    "gainsboro": (220, 220, 220), "whitesmoke": (245, 245, 245), "snow": (255, 250, 250),
    "ghostwhite": (248, 248, 255), "ivory": (255, 255, 240), "floralwhite": (255, 250, 240),
    "seashell": (255, 245, 238), "azure": (240, 255, 255), "mintcream": (245, 255, 250),
    "honeydew": (240, 255, 240), "aliceblue": (240, 248, 255), "lavenderblush": (255, 240, 245),
    "linen": (250, 240, 230), "oldlace": (253, 245, 230), "beige": (245, 245, 220), "cornsilk": (255, 248, 220),
    "lightyellow": (255, 255, 224), "lightcyan": (224, 255, 255), "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169), "dimgray": (105, 105, 105), "dimgrey": (105, 105, 105),
}
Colour = tuple  # (r, g, b, alpha)
BLACK: Colour = (0, 0, 0, 1.0)
WHITE: Colour = (255, 255, 255, 1.0)
LINK: Colour = (0, 0, 238, 1.0)


def parse_colour(value: str | None) -> Colour | None:
    """A CSS/HTML colour as (r, g, b, alpha), None when it is not one."""
    if not value:
        return None
    v = value.strip().lower()
    if v in _NAMED:
        return (*_NAMED[v], 1.0)
    if v == "transparent":
        return (0, 0, 0, 0.0)
    if v.startswith("#") or (len(v) in (3, 6) and all(c in "0123456789abcdef" for c in v)):  # bgcolor="ffffff"
        h = v.lstrip("#")
        if not all(c in "0123456789abcdef" for c in h):
            return None
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h)
        if len(h) == 6:
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 1.0)
        if len(h) == 8:
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), int(h[6:8], 16) / 255)
        return None
    m = re.match(r"^(rgba?|hsla?)\((.*)\)$", v)
    if not m:
        return None
    parts = [p for p in re.split(r"[\s,/]+", m.group(2).strip()) if p]
    if len(parts) < 3:
        return None
    try:
        alpha = 1.0
        if len(parts) > 3:
            a = parts[3]
            alpha = float(a[:-1]) / 100 if a.endswith("%") else float(a)
        if m.group(1).startswith("rgb"):
            rgb = [float(p[:-1]) * 2.55 if p.endswith("%") else float(p) for p in parts[:3]]
        else:
            hue = float(parts[0].removesuffix("deg")) / 360 % 1.0
            s, li = (float(p.rstrip("%")) / 100 for p in parts[1:3])
            rgb = [c * 255 for c in colorsys.hls_to_rgb(hue, li, s)]
        r, g, b = (int(max(0.0, min(255.0, c)) + 0.5) for c in rgb)
    except (ValueError, OverflowError):  # not numbers, NaN
        return None
    return (r, g, b, max(0.0, min(1.0, alpha)) if alpha == alpha else 1.0)


def _over(top: Colour, bottom: Colour) -> Colour:
    a = top[3]
    if a >= 1.0:
        return top
    return (round(top[0] * a + bottom[0] * (1 - a)), round(top[1] * a + bottom[1] * (1 - a)),
            round(top[2] * a + bottom[2] * (1 - a)), 1.0)


def _background(value: str, behind: Colour | None) -> tuple[bool, Colour | None]:
    """(set, colour) for a background/background-color value: an image or gradient makes it unknown (None)."""
    if "url(" in value or "gradient(" in value or "image-set(" in value:
        return True, None
    if value in ("none", "initial", "unset", "inherit", "transparent", "currentcolor"):
        return False, behind
    c = parse_colour(value)
    if c is None:
        for token in re.findall(r"(?:rgba?|hsla?)\([^)]*\)|#[0-9a-f]{3,8}\b|[a-z]+", value):
            c = parse_colour(token)
            if c is not None:
                break
    if c is None:
        return False, behind
    if behind is None:
        return True, (c if c[3] >= 1.0 else None)
    return True, _over(c, behind)


def _near(a: Colour, b: Colour) -> bool:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[2] - b[2])) <= NEAR_COLOUR


def _text_unseen(colour: Colour, bg: Colour | None) -> bool:
    if colour[3] < MIN_OPACITY:
        return True
    if bg is None:
        return False
    return _near(_over(colour, bg), bg)


def _v(d: dict, prop: str) -> str:
    x = d.get(prop)
    return x[0] if x else ""


def hides(d: dict[str, tuple[str, bool]]) -> bool:
    """True when declarations ``d`` (parse_declarations) put an element and all it holds out of sight."""
    if not d:
        return False
    display = _v(d, "display")
    if display.split(" ", 1)[0] == "none":
        return True
    if _v(d, "visibility") in ("hidden", "collapse") or _v(d, "content-visibility") == "hidden":
        return True
    if _v(d, "mso-hide") == "all":
        return True
    for prop in ("max-height", "max-width"):
        px = _px(_v(d, prop))
        if px is not None and px <= TINY:
            return True
    overflow = " ".join((_v(d, "overflow"), _v(d, "overflow-x"), _v(d, "overflow-y")))
    if "hidden" in overflow or "clip" in overflow:
        for prop in ("height", "width", "line-height"):
            val = _v(d, prop)
            px = _px(val)
            m = _LENGTH.match(val) if prop == "line-height" else None
            if m and not m.group(2):
                px = float(m.group(1)) * 16.0  # a unitless line height is a multiple of the font size
            if px is not None and px <= TINY:
                return True
        px = _px(_v(d, "text-indent"))
        if px is not None and px >= FAR:
            return True
    position = _v(d, "position")
    if position and position not in ("static", "initial", "unset", "inherit"):
        for prop in ("left", "top", "right", "bottom", "inset", "inset-inline-start", "inset-block-start"):
            val = _v(d, prop)
            if val:
                lens = _lengths(val)
                if any(abs(x) >= FAR for x in lens) or (prop in ("left", "top", "inset", "inset-inline-start",
                                                                  "inset-block-start")
                                                         and any(x <= OFF_LEFT for x in lens)):
                    return True
    for prop in ("text-indent", "margin-left", "margin-top", "margin", "margin-inline-start", "margin-block-start"):
        val = _v(d, prop)
        if val and "-" in val and any(x <= OFF_LEFT for x in _lengths(val)):
            return True
    transform = _v(d, "transform")
    if transform and transform != "none":
        for m in re.finditer(r"(translate[xyz3d]*|scale[xyz3d]*)\(([^)]*)\)", transform):
            if m.group(1).startswith("scale"):
                nums = [float(n) for n, u in _NUMBER.findall(m.group(2)) if u in (None, "")]
                pcts = [float(n) / 100 for n, u in _NUMBER.findall(m.group(2)) if u == "%"]
                if any(abs(x) < MIN_OPACITY for x in nums + pcts):
                    return True
            elif any(x <= OFF_LEFT or x >= FAR for x in _lengths(m.group(2))):
                return True
    clip = _v(d, "clip")
    if clip.startswith("rect("):
        lens = _lengths(clip)
        if lens and all(x <= 1.0 for x in lens):
            return True
    cp = _v(d, "clip-path")
    if cp:
        m = re.match(r"(inset|circle|ellipse|polygon)\((.*)\)", cp)
        if m:
            shape = _NUMBER.findall(m.group(2))  # (number, unit) pairs
            if m.group(1) == "inset":
                if shape and _unit(float(shape[0][0]), shape[0][1] or None, 16, 600) >= 300:  # 50% of 600px
                    return True
            elif m.group(1) in ("circle", "ellipse"):
                if shape and _unit(float(shape[0][0]), shape[0][1] or None, 16, 600) <= 1.0:
                    return True
            elif shape and all(float(n) == 0 for n, _ in shape):
                return True
    return False


def _font_size(d: dict, parent: float) -> float:
    sizes = []
    val = _v(d, "font-size")
    if val:
        sizes.append(_size_value(val, parent))
    short = _v(d, "font")
    if short:
        for token in re.split(r"[\s/]+", short):
            m = _LENGTH.match(token)
            if token in _FONT_KEYWORDS or token in ("smaller", "larger") or (
                    m and (m.group(2) or float(m.group(1)) == 0)):
                sizes.append(_size_value(token, parent))
                break
    size = min(sizes) if sizes else parent
    zoom = _v(d, "zoom")
    if zoom:
        z = _px(zoom, ref=1.0, pct_of=1.0)
        if z is not None and z > 0:
            size *= z
    return size


def _size_value(val: str, parent: float) -> float:
    if val in _FONT_KEYWORDS:
        return _FONT_KEYWORDS[val]
    if val == "smaller":
        return parent / 1.2
    if val == "larger":
        return parent * 1.2
    px = _px(val, ref=parent, pct_of=parent)
    return parent if px is None or px < 0 else px


def _opacity(d: dict) -> float:
    o = 1.0
    val = _v(d, "opacity")
    if val:
        try:
            o = float(val[:-1]) / 100 if val.endswith("%") else float(val)
        except ValueError:
            o = 1.0
    f = _v(d, "filter")
    if "opacity(" in f:
        m = re.search(r"opacity\(\s*([-+]?\d*\.?\d+)(%?)", f)
        if m:
            o *= float(m.group(1)) / (100 if m.group(2) else 1)
    return max(0.0, min(1.0, o))


# ------------------------------------------------------------------------------------------------ stylesheets

_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)(?:</style\s*>|\Z)", re.I | re.S)
_BRACE = re.compile(r"[{}]")
_CONTENT = re.compile(r"""content\s*:\s*(?:"((?:[^"\\]|\\.){0,500})"|'((?:[^'\\]|\\.){0,500})')""", re.I | re.S)
# states a reader's action brings about, and boxes of generated content: rules for them leave the element alone
_DYNAMIC = re.compile(r"::?(?:hover|focus|focus-within|focus-visible|active|visited|target|before|after|"
                      r"selection|placeholder|marker|backdrop|-[\w-]+)\b", re.I)
_PSEUDO = re.compile(r"::?[\w-]+(?:\([^)]*\))?")
_ATTR_SEL = re.compile(r"\[[^\]]*\]")
_COMPOUND = re.compile(r"^(\*|[a-z][\w-]*)?((?:[.#][\w-]+)*)$", re.I)
_RELEVANT = frozenset({"display", "visibility", "content-visibility", "mso-hide", "max-height", "max-width",
                       "overflow", "overflow-x", "overflow-y", "height", "width", "line-height", "position", "left",
                       "top", "right", "bottom", "inset", "inset-inline-start", "inset-block-start", "text-indent",
                       "margin", "margin-left", "margin-top", "margin-inline-start", "margin-block-start",
                       "transform", "clip", "clip-path", "opacity", "filter", "font-size", "font", "zoom", "color",
                       "-webkit-text-fill-color", "background", "background-color", "background-image",
                       "pointer-events"})


@dataclass(frozen=True)
class _Compound:
    tag: str | None
    ident: str | None
    classes: frozenset

    def matches(self, tag: str, ident: str | None, classes: frozenset) -> bool:
        return ((self.tag is None or self.tag == tag) and (self.ident is None or self.ident == ident)
                and self.classes <= classes)


_ANY = _Compound(None, None, frozenset())


@dataclass(frozen=True)
class _Rule:
    target: _Compound
    ancestors: tuple[_Compound, ...]   # nearest first
    specificity: tuple[int, int, int]
    order: int
    decls: tuple[tuple[str, str, bool], ...]
    approx: bool = False   # the model reads the selector only roughly (pseudo-classes, attributes, siblings...)


def _compound(text: str) -> _Compound:
    m = _COMPOUND.match(text)
    if not m:
        return _ANY  # a selector this model cannot read matches everything (errs towards hidden)
    tag = m.group(1).lower() if m.group(1) and m.group(1) != "*" else None
    ident, classes = None, set()
    for part in re.findall(r"[.#][\w-]+", m.group(2) or ""):
        if part[0] == "#":
            ident = part[1:].lower()
        else:
            classes.add(part[1:].lower())
    return _Compound(tag, ident, frozenset(classes))


def _blocks(css: str):
    """(prelude, declarations) of each innermost ``prelude { declarations }`` block, in one linear pass (a
    regular expression for it backtracks quadratically on an unbalanced brace)."""
    last = 0
    open_at = -1
    prelude = ""
    for m in _BRACE.finditer(css):
        if m.group() == "{":
            prelude, open_at = css[last:m.start()], m.end()
        elif open_at >= 0:
            yield prelude, css[open_at:m.start()]
            open_at = -1
        last = m.end()


def parse_stylesheet(css: str, start: int = 0) -> tuple[list[_Rule], list[str]]:
    """The rules of a style sheet that bear on visibility, and the strings of its ``content:`` declarations."""
    if "\\" in css:
        css = _unescape_css(css)
    css = _CSS_COMMENT.sub(" ", css).replace("<!--", " ").replace("-->", " ")
    contents = [a or b for a, b in _CONTENT.findall(css)]
    rules: list[_Rule] = []
    order = start
    for prelude, body in _blocks(css):
        decls = parse_declarations(body)
        rel = tuple((p, v, imp) for p, (v, imp) in decls.items() if p in _RELEVANT)
        if not rel:
            continue
        if "@" in prelude:  # the last selector list after an at-rule's prelude ("@media x { .a")
            prelude = prelude.rsplit(";", 1)[-1]
            if prelude.lstrip().startswith("@"):
                continue
        for sel in prelude.split(","):
            sel = sel.strip()
            if not sel or (_DYNAMIC.search(sel) and ":not(" not in sel.lower()):
                continue
            # read exactly: type, class and id selectors joined by descendant combinators (lower-case, as
            # classes and ids are case-sensitive outside quirks mode); anything else only roughly
            approx = bool(re.search(r"[:\[>+~*\\]|[.#][\w-]*[A-Z]", sel))
            spec = (sel.count("#"), sel.count(".") + sel.count("[") + len(re.findall(r"(?<!:):[\w-]", sel)),
                    len(re.findall(r"(?:^|[\s>+~])[a-z]", sel, re.I)))
            plain = _ATTR_SEL.sub("", _PSEUDO.sub("", sel))
            pieces = re.split(r"\s*([>+~])\s*|\s+", plain.strip())
            chain: list[_Compound] = []
            drop_next = False
            tokens = [p for p in pieces if p is not None]
            for tok in reversed(tokens):
                if tok in ("+", "~"):
                    drop_next = True  # a sibling: not an ancestor (dropped: the rule then matches more)
                    continue
                if tok in (">", ""):
                    continue
                if drop_next:
                    drop_next = False
                    continue
                c = _compound(tok)
                approx = approx or (c is _ANY and tok != "*")
                chain.append(c)
            if not chain:
                chain, approx = [_ANY], True
            order += 1
            rules.append(_Rule(chain[0], tuple(chain[1:]), spec, order, rel, approx))
    return rules, contents


class _Sheet:
    """The rules of the document's style sheets, indexed by the id, class or tag their target names."""

    def __init__(self, rules: list[_Rule]):
        self.by_id: dict[str, list[_Rule]] = {}
        self.by_class: dict[str, list[_Rule]] = {}
        self.by_tag: dict[str, list[_Rule]] = {}
        self.universal: list[_Rule] = []
        self.budget = CSS_BUDGET
        # a rule repeated: its last copy counts
        last = {(r.target, r.ancestors, r.decls, r.specificity, r.approx): r for r in rules}
        for r in sorted(last.values(), key=lambda r: r.order):
            t = r.target
            if t.ident:
                self.by_id.setdefault(t.ident, []).append(r)
            elif t.classes:
                self.by_class.setdefault(min(t.classes), []).append(r)
            elif t.tag:
                self.by_tag.setdefault(t.tag, []).append(r)
            else:
                self.universal.append(r)

    def matching(self, tag: str, ident: str | None, classes: frozenset, stack: list) -> list[_Rule] | None:
        """The rules that select this element; None once the document has used up its CSS_BUDGET."""
        if self.budget <= 0:
            return None
        cands = list(self.universal)
        cands += self.by_tag.get(tag, ())
        if ident:
            cands += self.by_id.get(ident, ())
        for c in classes:
            cands += self.by_class.get(c, ())
        out = []
        for r in cands:
            if not r.target.matches(tag, ident, classes):
                continue
            i = len(stack) - 1
            ok = True
            self.budget -= 1
            for anc in r.ancestors:
                while i >= 0 and not anc.matches(stack[i][0], stack[i][2], stack[i][3]):
                    i -= 1
                self.budget -= len(stack) - i
                if i < 0:
                    ok = False
                    break
                i -= 1
            if ok:
                out.append(r)
        return out


# ------------------------------------------------------------------------------------------------ the parser

class _State:
    """What an element passes to its content: hidden for good (``sticky``), font size, opacity, colours."""

    __slots__ = ("sticky", "font", "opacity", "colour", "bg", "text_hidden", "summary", "inert")

    def __init__(self, sticky: bool, font: float, opacity: float, colour: Colour, bg: Colour | None,
                 summary: "_State | None" = None, inert: bool = False):
        self.sticky, self.font, self.opacity, self.colour, self.bg = sticky, font, opacity, colour, bg
        self.summary = summary
        self.inert = inert  # pointer-events:none or the inert attribute: a link here cannot be clicked
        self.text_hidden = sticky or font <= TINY or opacity < MIN_OPACITY or _text_unseen(colour, bg)


ROOT = _State(False, 16.0, 1.0, BLACK, WHITE)
_HAS_STYLE = re.compile(r"<style", re.I)
_TAG = re.compile(r"<[^>]*>")
_COMMENT = re.compile(r"<!--(?:-?>|(.*?)(?:--!?>|\Z))", re.S)
_STYLED_ATTRS = ("style", "hidden", "bgcolor", "color", "text", "background", "inert")


def _first_attrs(attrs: list[tuple[str, str | None]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in attrs:
        if k not in out:  # a repeated attribute: the browser keeps the first
            out[k] = v or ""
    return out


class VisibilityParser(HTMLParser):
    """HTMLParser that knows, for every piece of text, whether a reader sees it. Subclasses override the hooks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._stack: list[list] = []   # [tag, state, id, classes, attributes]
        self._open: dict[str, int] = {}  # tag -> how many are on the stack
        self._sheet: _Sheet | None = None
        self._head = False  # a <head> may be open
        self.failed = False  # the parse broke off: what it read stands, the rest was not seen
        self.css_text: list[str] = []  # the strings of the style sheets' content: declarations

    # -- hooks
    def on_start(self, tag: str, attrs: dict[str, str], state: _State) -> None:
        """An element opened (void elements too)."""

    def on_pop(self, tag: str) -> None:
        """An element closed (by its end tag, or implied by another tag or the end of the document)."""

    def on_text(self, data: str, hidden: bool) -> None:
        """A piece of text and whether it is out of sight."""

    def on_comment(self, data: str) -> None:
        """The text of a comment (or CDATA section, processing instruction): never shown."""

    # -- driving
    def run(self, html: str) -> Self:
        try:
            if _HAS_STYLE.search(html):
                rules: list[_Rule] = []
                for m in _STYLE_BLOCK.finditer(html):
                    r, contents = parse_stylesheet(m.group(1), len(rules))
                    rules += r
                    self.css_text += contents
                if rules:
                    self._sheet = _Sheet(rules)
            if "<!--" in html:
                pos = 0
                for m in _COMMENT.finditer(html):
                    if m.start() > pos:
                        self.feed(html[pos:m.start()])
                    self.on_comment(m.group(1) or "")
                    pos = m.end()
                if pos < len(html):
                    self.feed(html[pos:])
            else:
                self.feed(html)
            self.close()
        except Exception:  # html.parser is lenient; never let a weird body crash the gate (what was read stands)
            self.failed = True
        while self._stack:
            self._pop()
        return self

    @property
    def state(self) -> _State:
        return self._stack[-1][1] if self._stack else ROOT

    def _push(self, entry: list) -> None:
        self._stack.append(entry)
        self._open[entry[0]] = self._open.get(entry[0], 0) + 1

    def _pop(self) -> None:
        tag = self._stack.pop()[0]
        self._open[tag] -= 1
        self.on_pop(tag)

    def _pop_to(self, i: int) -> None:
        while len(self._stack) > i:
            self._pop()

    def _close_at(self, i: int) -> None:
        """Close the element at ``i`` and those inside it. Formatting elements (``<b>``, ``<font>``...) closed
        this way are opened again around what follows, as the browser's "reconstruct the active formatting
        elements" does (``<p><font color=white>x<p>y``: y is white too)."""
        reopen = [e for e in self._stack[i + 1:] if e[0] in _FORMATTING]
        self._pop_to(i)
        for e in reopen:
            tag, attrs = e[0], e[4]
            parent = self.state
            state = self._derive(tag, attrs, parent, e[2], e[3]) if (attrs or self._sheet is not None) else parent
            self._push([tag, state, e[2], e[3], attrs])

    def _find(self, targets: frozenset | set, stops: frozenset | set) -> int:
        """The index of the nearest open element in ``targets`` not beyond one in ``stops`` (-1: none). Looks
        no deeper than MAX_SEARCH elements (what lies deeper stays open: hidden stays hidden)."""
        if not any(self._open.get(t) for t in targets):
            return -1
        stack = self._stack
        for i in range(len(stack) - 1, max(-1, len(stack) - 1 - MAX_SEARCH), -1):
            t = stack[i][0]
            if t in targets:
                return i
            if t in stops:
                return -1
        return -1

    def updatepos(self, i, j):  # line and column numbers are never asked for: skip counting them
        return j

    # -- HTMLParser callbacks
    def handle_starttag(self, tag, attrs):
        self._start(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag, attrs):
        self._start(tag, attrs, self_closing=True)

    def _start(self, tag: str, attrs: list, self_closing: bool) -> None:
        stack = self._stack
        if stack:
            # implied end tags, as the HTML tree builder does them
            if self._head and (tag == "body" or tag not in _HEAD_CONTENT):
                i = self._find({"head"}, set())
                if i >= 0:
                    self._pop_to(i)
                self._head = False
            if tag in _CLOSES_P:
                i = self._find({"p"}, _SCOPE | {"button"})
                if i >= 0:
                    self._close_at(i)
            auto = _AUTO_CLOSE.get(tag)
            if auto is not None:
                i = self._find(*auto)
                if i >= 0:
                    self._close_at(i)
        a = _first_attrs(attrs)
        parent = stack[-1][1] if stack else ROOT
        if tag == "summary" and stack and stack[-1][0] == "details" and parent.summary is not None:
            parent = parent.summary
        ident = a.get("id", "").lower() or None if "id" in a else None
        classes = frozenset(a.get("class", "").lower().split()) if "class" in a else frozenset()
        state = parent
        if tag in HIDDEN_TAGS or tag in ("a", "details", "font", "body") or self._sheet is not None or any(
                k in a for k in _STYLED_ATTRS):
            state = self._derive(tag, a, parent, ident, classes)
        if tag in VOID:
            self.on_start(tag, a, state)
            return
        self._push([tag, state, ident, classes, a])
        if tag == "head":
            self._head = True
        self.on_start(tag, a, state)
        if self_closing and (self._open.get("svg") or self._open.get("math")):
            self._pop()  # "<x/>" closes only in SVG and MathML; HTML ignores the slash

    def _derive(self, tag: str, a: dict, parent: _State, ident, classes) -> _State:
        matched: list[_Rule] = []
        if self._sheet is not None:
            rules = self._sheet.matching(tag, ident, classes, self._stack)
            if rules is None:  # a style sheet built to exhaust the model: what follows counts as hidden
                return _State(True, parent.font, parent.opacity, parent.colour, parent.bg, None, parent.inert)
            matched = rules
        state = self._compute(tag, a, parent, _cascade(matched, a))
        exact = [r for r in matched if not r.approx]
        if len(exact) < len(matched):
            # a rule whose selector the model reads only roughly may or may not apply: if it makes a difference
            # to what the reader sees, the element counts as hidden
            without = self._compute(tag, a, parent, _cascade(exact, a))
            if _seen(state) != _seen(without):
                return _State(True, state.font, state.opacity, state.colour, state.bg, None, state.inert)
        return state

    def _compute(self, tag: str, a: dict, parent: _State, d: dict) -> _State:
        sticky = parent.sticky or tag in HIDDEN_TAGS or "hidden" in a or hides(d)
        colour, bg = parent.colour, parent.bg
        if tag == "a" and "href" in a:
            colour = LINK
        if tag == "font" and a.get("color"):
            colour = parse_colour(a["color"]) or colour
        if tag == "body" and a.get("text"):
            colour = parse_colour(a["text"]) or colour
        if a.get("background"):
            bg = None
        elif a.get("bgcolor"):
            _, bg = _background(a["bgcolor"].strip().lower(), bg)
        font, opacity = parent.font, parent.opacity
        if d:
            cv = _v(d, "-webkit-text-fill-color") or _v(d, "color")
            if cv:
                if cv in ("inherit", "currentcolor", "unset"):
                    colour = parent.colour
                elif cv == "initial":
                    colour = BLACK
                else:
                    colour = parse_colour(cv) or colour
            bv = _v(d, "background-color")
            if _v(d, "background-image") not in ("", "none"):
                bg = None
            elif bv:
                _, bg = _background(bv, bg)
            elif _v(d, "background"):
                _, bg = _background(_v(d, "background"), bg)
            font = _font_size(d, parent.font)
            opacity = parent.opacity * _opacity(d)
        inert = parent.inert or "inert" in a or _v(d, "pointer-events") == "none"
        summary = None
        if tag == "details" and "open" not in a:
            summary = _State(sticky, font, opacity, colour, bg, None, inert)
            sticky = True
        return _State(sticky, font, opacity, colour, bg, summary, inert)

    def handle_endtag(self, tag):
        if tag in ("body", "html"):
            return  # what follows </body> still goes into the body
        if tag in _SPECIAL:
            stops = _TABLE_SCOPE if tag in ("table", "tbody", "thead", "tfoot", "tr", "td", "th", "caption") \
                else (_SCOPE | {"button"} if tag == "p" else (_SCOPE | {"ol", "ul"} if tag == "li" else _SCOPE))
            i = self._find({tag}, stops - {tag})
        else:
            # an inline element's end tag closes it only if no block or table boundary lies in between
            i = self._find({tag}, _SPECIAL | _SCOPE)
        if i >= 0:
            self._close_at(i)
        elif tag == "br":
            self.on_start("br", {}, self.state)

    def handle_data(self, data):
        self.on_text(data, self.state.text_hidden)

    def handle_comment(self, data):
        self.on_comment(data)

    def unknown_decl(self, data):
        self.on_comment(data[6:] if data.startswith("CDATA[") else data)

    def handle_pi(self, data):
        self.on_comment(data)


def _cascade(matched: list[_Rule], a: dict) -> dict[str, tuple[str, bool]]:
    """The declarations that win for an element: style sheet rules by importance, specificity and order, then
    its style attribute (which a sheet's !important still beats)."""
    d: dict[str, tuple[str, bool]] = {}
    if matched:
        best: dict[str, tuple] = {}
        for r in matched:
            for prop, val, imp in r.decls:
                key = (imp, r.specificity, r.order)
                if prop not in best or key > best[prop][0]:
                    best[prop] = (key, val, imp)
        d = {p: (v, imp) for p, (key, v, imp) in best.items()}
    if "style" in a:
        for prop, (val, imp) in parse_declarations(a["style"]).items():
            if imp or not d.get(prop, ("", False))[1]:
                d[prop] = (val, imp)
    return d


def _seen(s: _State) -> tuple:
    return s.sticky, s.text_hidden, s.font, s.opacity, s.colour, s.bg, s.summary is None, s.inert


class _Extractor(VisibilityParser):
    """Visible text, hidden text and links."""

    def __init__(self) -> None:
        super().__init__()
        self.visible: list[str] = []
        self.hidden: list[str] = []
        self.anchors: list[Anchor] = []
        self._anchor: tuple[list, str, list[str], bool] | None = None   # stack entry, href, text, hidden
        self._last_hidden = False

    def _close_anchor(self) -> None:
        if self._anchor is None:  # no link open
            return
        _, href, text, hidden = self._anchor
        self.anchors.append(Anchor(href, "".join(text).strip(), hidden))
        self._anchor = None

    def on_start(self, tag, attrs, state):
        if tag in BLOCK or tag == "br":
            self.visible.append("\n")
            self.hidden.append("\n")
        elif tag in CELL:
            self.visible.append(" ")
            self.hidden.append(" ")
        if tag == "a":
            if self._anchor is not None:
                self._close_anchor()
            self._anchor = (self._stack[-1], attrs.get("href", ""), [],
                            state.sticky or state.opacity < MIN_OPACITY or state.inert)

    def on_pop(self, tag):
        if self._anchor is not None and tag == "a" and not any(e is self._anchor[0] for e in self._stack):
            self._close_anchor()
        if tag in BLOCK:
            self.visible.append("\n")
            self.hidden.append("\n")

    def on_text(self, data, hidden):
        if hidden:
            if not self._last_hidden:
                self.hidden.append("\n")
            self.hidden.append(data)
        else:
            self.visible.append(data)
            if self._anchor is not None:
                self._anchor[2].append(data)
        self._last_hidden = hidden

    def on_comment(self, data):
        self.hidden.append("\n")
        self.hidden.append(data)
        self.hidden.append("\n")


def analyse(html: str) -> Visibility:
    """The visible text, hidden text and links of an HTML body."""
    p = _Extractor().run(html or "")
    if p._anchor is not None:
        p._close_anchor()
    hidden = "".join(p.hidden)
    if p.failed:  # what the parser did not get to is still scanned for spam, as hidden text
        hidden += "\n" + _TAG.sub(" ", html)
    if p.css_text:
        hidden += "\n" + "\n".join(p.css_text)
    return Visibility("".join(p.visible), hidden, tuple(p.anchors))
