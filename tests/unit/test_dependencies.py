"""Every package the shipped code imports is declared in pyproject.toml's dependencies (not only installed because
something else pulls it in), and every pinned version in requirements.lock satisfies the declared floor.

Seen before: click, rich, yaml and bcrypt were imported but not declared; typer and pandas floors were lower than
versions that work."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "console", "pages")
FIRST_PARTY = {"engine", "console", "pages", "tests", "benchmarks"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(group: str | None = None) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    out = {}
    for r in reqs:
        m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$", r)
        out[_norm(m.group(1))] = m.group(3).strip()
    return out


def _imports(folder: str) -> set[str]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        if "migrations" in path.parts and "versions" in path.parts:
            pass  # migrations ship too: they count
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_third_party_import_of_the_shipped_code_is_declared():
    """engine/ needs only the required dependencies (a worker host installs plain alpha-swarm); the console and
    its pages may also use the `console` extra."""
    dists = packages_distributions()
    missing = {}
    for folder in SHIPPED:
        declared = set(_declared()) | (set(_declared("console")) if folder in ("console", "pages") else set())
        for mod in sorted(_imports(folder)):
            if mod in sys.stdlib_module_names or mod in FIRST_PARTY or mod == "__future__":
                continue
            names = {_norm(d) for d in dists.get(mod, [])}
            assert names, f"{folder}: imports {mod!r}, which no installed distribution provides"
            if not names & declared:
                missing[f"{folder}: {mod}"] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml (dependencies, or the console extra for " \
                        f"console/ and pages/): {missing}"


def test_the_console_extra_holds_the_consoles_own_dependencies_and_dev_includes_it():
    assert {"streamlit", "plotly"} <= set(_declared("console"))
    assert not {"streamlit", "plotly"} & set(_declared()), "a worker host would install the console's dependencies"
    assert "alpha-swarm" in _declared("dev"), "make setup installs .[dev]: it must include the console extra"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"alpha-swarm\[([\w,-]*,)?console(,[\w,-]*)?\]", r.replace(" ", "")) for r in extras)


def test_the_lock_pins_every_declared_dependency_at_or_above_its_floor():
    from packaging.specifiers import SpecifierSet

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = version
    for group in (None, "console", "dev"):
        for name, spec in _declared(group).items():
            if name == "alpha-swarm":  # dev includes the project's own console extra (checked above)
                continue
            assert name in pins, f"{name} is declared but not pinned in requirements.lock (make lock)"
            assert pins[name] in SpecifierSet(spec.split(";")[0]), \
                f"requirements.lock pins {name}=={pins[name]}, outside the declared {spec!r}"
