"""Mutated configuration files: every loader refuses with a ``ConfigError`` whose problems name the file and the
key path, never another exception; ``alpha config-check`` prints them without a traceback.

Loaders: ``load_settings`` (production.json, warmup_plan.json, permissions.json, the word lists), ``load_icp``
(icp.json), ``load_roster`` (approvers.json) and ``load_pack`` (templates/pack.json). Each example mutates one file
of a private copy of config/: a value replaced by one of the wrong type or out of range, a key deleted, an unknown
key added, a key misspelt, or the file's text itself broken (truncated, garbage inserted, invalid UTF-8, nested
too deep, NaN, huge numbers).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.services.approvals import load_roster
from engine.core.config import load_settings
from engine.core.errors import ConfigError
from engine.rules.icp import load_icp
from engine.rules.messaging import load_pack
from tests.badinput.strategies import COMMON, storable
from tests.conftest import CONFIG
from tests.helpers import alpha, alpha_env

LOADERS = {
    "production.json": load_settings, "warmup_plan.json": load_settings, "permissions.json": load_settings,
    "icp.json": load_icp, "approvers.json": load_roster, "templates/pack.json": load_pack,
}
ORIGINAL = {name: json.loads((CONFIG / name).read_text(encoding="utf-8")) for name in LOADERS}

WRONG = ["yes", "150", "", "x" * 5000, "Mars/Base", "25:99", "not an email", "a\x00b", "\ud800",
         -5, -1, 0, 10 ** 12, 10 ** 30, 1.5, -0.5, 1e308, True, False, None, [], [1, "a", None], {}, {"unknown": 1}]


@pytest.fixture(scope="module")
def cdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("badconfig") / "config"
    shutil.copytree(CONFIG, d)
    return d


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out


def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


PATHS = {name: list(_paths(data)) for name, data in ORIGINAL.items()}


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _components(key: str) -> list[str]:
    return [c for c in re.split(r"\.|\[|\]", key) if c != ""]


def _related(a: str, b: str) -> bool:
    """One key path is the other or contains it (component-wise: a parent's rule, a child's error), or they are
    keys of the same object (a rule across fields, such as two templates claiming one slot)."""
    ca, cb = _components(a), _components(b)
    n = min(len(ca), len(cb))
    if n > 0 and ca[:n] == cb[:n]:
        return True
    return len(ca) == len(cb) >= 2 and ca[:-1] == cb[:-1]


def _load(name: str, cdir: Path):
    return LOADERS[name](cdir)


def _refusal(name: str, cdir: Path) -> ConfigError | None:
    try:
        _load(name, cdir)
    except ConfigError as e:
        assert e.problems, "a ConfigError must list its problems"
        for p in e.problems:
            assert str(cdir) in p, f"every problem names its file: {p!r}"
            assert storable(p), f"problem text must be printable: {p!r}"
        return e
    return None


def _write(cdir: Path, name: str, data) -> None:
    (cdir / name).write_text(json.dumps(data, indent=1), encoding="utf-8")  # a lone surrogate as a \\ud800 escape


def _restore(cdir: Path, name: str) -> None:
    shutil.copyfile(CONFIG / name, cdir / name)


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(v)]


@st.composite
def mutation(draw):
    name = draw(st.sampled_from(sorted(LOADERS)))
    data = json.loads(json.dumps(ORIGINAL[name]))
    path = draw(st.sampled_from(PATHS[name]))
    parent, last = _get(data, path[:-1]), path[-1]
    old = parent[last]
    kind = draw(st.sampled_from(["replace", "replace", "delete", "unknown key", "misspell"]))
    if kind == "replace":
        new = draw(st.sampled_from(WRONG))
        parent[last] = new
        # a strict loader must refuse a value of another JSON type (None may be a valid "unset")
        must = new is not None and last != "note" and _json_type(old) != _json_type(new)
        return name, data, kind, path, must
    if kind == "delete":
        del parent[last]
        return name, data, kind, path, False
    target = old if isinstance(old, dict) else parent if isinstance(parent, dict) else None
    if target is None:  # a list item: replace it with an object instead
        parent[last] = {"unknown": 1}
        return name, data, "replace", path, not isinstance(old, dict)  # an object where a list item was
    tpath = path if target is old else path[:-1]
    if kind == "misspell" and target:
        key = draw(st.sampled_from(sorted(target)))
        typo = key[:-1] + ("x" if key[-1:] != "x" else "y") if key else "x"
        if typo not in target:
            target[typo] = target.pop(key)
            return name, data, kind, tpath + (typo,), False  # may be valid when the key had a default... not here
    new_key = draw(st.sampled_from(["unknown_setting", "daly_limt", "Note", "enabled ", "\u00e9t\u00e9", "k\x00"]))
    if new_key in target:
        new_key += "_2"
    target[new_key] = 12345
    return name, data, "unknown key", tpath + (new_key,), True


@settings(max_examples=700, **COMMON)
@given(mutation())
@example(("production.json", {**ORIGINAL["production.json"], "email_limits": {
    **ORIGINAL["production.json"]["email_limits"], "limits_timezone": "x" * 5000}}, "replace",
          ("email_limits", "limits_timezone"), True))  # was OSError (file name too long) from ZoneInfo
@example(("approvers.json", {"action_types": {**ORIGINAL["approvers.json"]["action_types"], "hot_lead": {
    **ORIGINAL["approvers.json"]["action_types"]["hot_lead"], "coverage": {
        **ORIGINAL["approvers.json"]["action_types"]["hot_lead"]["coverage"], "timezone": "Europe/" + "x" * 300}}}},
          "replace", ("action_types", "hot_lead", "coverage", "timezone"), True))
def test_mutated_value_or_key_is_named(cdir, case):
    name, data, kind, path, must = case
    _write(cdir, name, data)
    try:
        err = _refusal(name, cdir)
    finally:
        _restore(cdir, name)
    if err is None:
        assert not must, f"{name}: {kind} at {_fmt(path)} was accepted"
        return
    file = str(cdir / name)
    mine = [p for p in err.problems if p.startswith(file) or f"({Path(name).name})" in p or file in p]
    assert mine, (file, err.problems)
    keys = [k for p in mine for k in re.findall(r"key '([^']*)'", p)]
    want = _fmt(path)
    if storable(want):
        top = _components(want)[0]  # a rule about the whole file names the keys it is about in its text
        assert (any(_related(k, want) for k in keys) or any(want in p for p in mine)
                or any("key '" not in p and re.search(rf"\b{re.escape(top)}\b", p) for p in mine)), \
            (kind, want, err.problems)


# ------------------------------------------------------------------------------------------ broken text

@st.composite
def broken_text(draw):
    name = draw(st.sampled_from(sorted(LOADERS)))
    text = (CONFIG / name).read_bytes()
    how = draw(st.sampled_from(["truncate", "insert", "bytes", "deep", "nan", "huge int", "not an object",
                                "empty", "bom"]))
    if how == "truncate":
        cut = draw(st.integers(0, len(text) - 2))
        return name, text[:cut], how
    if how == "insert":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([b"}", b"{", b",", b'"', b"\\", b"//comment\n", b"#", b"'", b":", b"]]"]))
        return name, text[:at] + junk + text[at:], how
    if how == "bytes":
        return name, text[:20] + b"\xff\xfe\x80" + text[20:], how
    if how == "deep":
        return name, b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", how
    if how == "nan":
        return name, text.replace(b"{", b'{"x": NaN, ', 1), how
    if how == "huge int":
        return name, text.replace(b"{", b'{"x": ' + b"9" * 5000 + b", ", 1), how
    if how == "not an object":
        return name, draw(st.sampled_from([b"[]", b"null", b"42", b'"x"', b"true"])), how
    if how == "empty":
        return name, b"", how
    return name, b"\xef\xbb\xbf" + text, how


@settings(max_examples=300, **COMMON)
@given(broken_text())
@example(("production.json", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deep"))  # was RecursionError
@example(("icp.json", b'{"x": ' + b"9" * 5000 + b"}", "huge int"))  # was ValueError (int digits limit)
@example(("templates/pack.json", b"\xef\xbb\xbf" + (CONFIG / "templates/pack.json").read_bytes(), "bom"))
def test_broken_file_text_is_named(cdir, case):
    name, raw, how = case
    (cdir / name).write_bytes(raw)
    try:
        err = _refusal(name, cdir)
    finally:
        _restore(cdir, name)
    if how == "bom":  # a UTF-8 byte-order mark (Windows editors add one) is not an error
        assert err is None, err.problems
        return
    if err is None:  # a cut or an insertion can leave valid JSON (e.g. inside a string): nothing to name
        assert how in ("truncate", "insert")
        return
    file = str(cdir / name)
    assert any(p.startswith(file) for p in err.problems), err.problems
    if how in ("bytes",):
        assert any("cannot be read" in p or "not valid" in p for p in err.problems), err.problems
    if how in ("deep", "nan", "huge int", "empty"):
        assert any("not valid JSON" in p for p in err.problems), err.problems
    if how == "not an object":
        assert any("JSON object at the top level" in p for p in err.problems), err.problems
    jsonish = [p for p in err.problems if "not valid JSON at line" in p]
    for p in jsonish:
        assert re.search(r"line \d+, column \d+", p), p


# ------------------------------------------------------------------------------------------ word lists

@pytest.mark.parametrize("name,raw,needle", [
    ("spam_words.txt", b"free\n\xff\xfe broken\n", "cannot be read"),
    ("forbidden_claims.txt", b"ok\n" + b"x" * 300 + b"\n", "line 2 is longer than 200 characters"),
    ("spam_words.txt", b"# only comments\n\n", "holds no terms"),
])
def test_word_lists(cdir, name, raw, needle):
    (cdir / name).write_bytes(raw)
    try:
        with pytest.raises(ConfigError) as ei:
            load_settings(cdir)
    finally:
        _restore(cdir, name)
    assert any(str(cdir / name) in p and needle in p for p in ei.value.problems), ei.value.problems


# ------------------------------------------------------------------------------------------ alpha config-check

@pytest.mark.parametrize("name,raw,needles", [
    ("production.json", json.dumps({**ORIGINAL["production.json"], "email_limits": {
        **ORIGINAL["production.json"]["email_limits"], "daily_limit": -5, "daly_limt": 10}}).encode(),
     ["key 'email_limits.daily_limit' = -5", "key 'email_limits.daly_limt'", "did you mean 'daily_limit'"]),
    ("production.json", json.dumps({**ORIGINAL["production.json"], "working_hours": {
        # was OSError (name too long)
        **ORIGINAL["production.json"]["working_hours"], "default_timezone": "Europe/" + "x" * 400}}).encode(),
     ["key 'working_hours.default_timezone'", "IANA time zone"]),
    ("warmup_plan.json", b'{"enabled": true, "phases": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
     ["warmup_plan.json: not valid JSON"]),
    ("permissions.json", b'{"agents": {"X": {"actions": ["send_emial"], "platforms": ["ghl"]}}}',
     ["key 'agents.X.actions[0]' = \"send_emial\": unknown action"]),
])
def test_config_check_prints_problems_without_a_traceback(tmp_path, name, raw, needles):
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    (d / name).write_bytes(raw)
    p = alpha(alpha_env(f"sqlite:///{tmp_path / 'a.db'}", d, tmp_path), "config-check")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "invalid configuration" in p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
