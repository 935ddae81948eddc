"""The engine's layers, enforced: no import cycles between engine modules, and every import points down (or
sideways) in core < rules < adapters < queries < services < app (engine/app.py) < entrypoints.

Every import counts: top-level, inside functions and classes, under try/except and ``if TYPE_CHECKING``. A
function-level import is still a dependency (it runs, or the type names what it needs), so hiding an import in a
function never makes a violation legal.

The check is a pure function (``problems``: the import edges in, the problems out, as sentences naming the file
and line); ``import_edges`` is the I/O edge that parses the files into edges. Checked elsewhere, not here:
tests/console/test_rules.py keeps streamlit (and console) out of engine/ and sqlmodel/sqlalchemy out of console/
and pages/; this file adds that console/ and pages/ never import the database adapters (engine.adapters.db,
engine.adapters.models) either.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
ORDER = ("core", "rules", "adapters", "queries", "services", "app", "entrypoints")
# importer prefix -> imported module prefixes it must never import
FORBIDDEN: Mapping[str, tuple[str, ...]] = {
    "console": ("engine.adapters.db", "engine.adapters.models"),
    "pages": ("engine.adapters.db", "engine.adapters.models"),
}


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (dotted module names) at ``path``:``line``; ``nested`` when the import is not
    at module level (in a function, a class, a try, an if)."""
    source: str
    target: str
    path: str = ""
    line: int = 0
    nested: bool = False

    def where(self) -> str:
        return f"{self.path}:{self.line} ({'function-level' if self.nested else 'top-level'})"


# ------------------------------------------------------------------------------------------ the pure check

def layer_of(module: str) -> str | None:
    """The layer of an engine module (``engine.app`` is the layer "app"); None outside the layers."""
    parts = module.split(".")
    if parts[0] != "engine" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ORDER else None


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def find_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """One cycle path ``[a, b, ..., a]`` per strongly connected group of engine modules (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.source != e.target and _under(e.source, "engine") and _under(e.target, "engine"):
            graph.setdefault(e.source, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return [_cycle_path(graph, set(g), g[0]) for g in groups]


def _cycle_path(graph: Mapping[str, set[str]], group: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside ``group`` (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def layer_violations(edges: Iterable[Edge]) -> list[str]:
    """Every engine import that points up the layer order."""
    out = []
    for e in edges:
        a, b = layer_of(e.source), layer_of(e.target)
        if a and b and ORDER.index(b) > ORDER.index(a):
            out.append(f"{e.source} ({a}) imports {e.target} ({b}) at {e.where()}: a layer may import only its own "
                       f"layer or lower ones ({' < '.join(ORDER)})")
    return out


def forbidden_imports(edges: Iterable[Edge], forbidden: Mapping[str, Sequence[str]]) -> list[str]:
    out = []
    for e in edges:
        for importer, banned in forbidden.items():
            if _under(e.source, importer):
                out += [f"{e.source} imports {e.target} at {e.where()}: {importer} must not import {b}"
                        for b in banned if _under(e.target, b)]
    return out


def problems(edges: Sequence[Edge], forbidden: Mapping[str, Sequence[str]] = FORBIDDEN) -> list[str]:
    """Every cycle (with its path), layer violation and forbidden import, as sentences."""
    cycles = [f"import cycle: {' -> '.join(c)}" for c in find_cycles(edges)]
    return cycles + layer_violations(edges) + forbidden_imports(edges, forbidden)


# ------------------------------------------------------------------------------------------ the I/O edge

def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(source: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an import statement names: ``from pkg import name`` is pkg.name when that is a module, else pkg;
    a name is trimmed to the longest known module it starts with (unknown names are kept as written)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = source.split(".") if is_package else source.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        names = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
    out = []
    for name in names:
        t = name
        while t not in known and "." in t:
            t = t.rsplit(".", 1)[0]
        out.append(t if t in known else name)
    return out


def import_edges(root: Path, packages: Sequence[str]) -> list[Edge]:
    """Every import statement anywhere in the .py files of ``packages`` (folders under ``root``) as edges
    (migration scripts excluded: alembic loads them, nothing imports them)."""
    files = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            if "migrations" not in p.parts:
                files[_module_name(root, p)] = p
    known = set(files)
    edges = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in dict.fromkeys(_resolve(name, path.name == "__init__.py", node, known)):
                    if target != name:
                        edges.append(Edge(name, target, str(path.relative_to(root)), node.lineno,
                                          id(node) not in top))
    return edges


# ------------------------------------------------------------------------------------------ tests

def test_the_checker_reports_a_cycle_with_its_path_and_an_upward_import():
    fake = [Edge("engine.services.a", "engine.services.b", "a.py", 3),
            Edge("engine.services.b", "engine.services.c", "b.py", 4, nested=True),
            Edge("engine.services.c", "engine.services.a", "c.py", 5),
            Edge("engine.services.c", "engine.core.clock", "c.py", 6),
            Edge("engine.rules.x", "engine.adapters.db", "x.py", 7, nested=True),
            Edge("engine.adapters.y", "engine.app", "y.py", 8),
            Edge("console.page", "engine.adapters.models", "page.py", 9),
            Edge("console.page", "engine.app", "page.py", 10)]
    got = problems(fake)
    assert got[0] == "import cycle: engine.services.a -> engine.services.b -> engine.services.c -> engine.services.a"
    assert len([p for p in got if p.startswith("import cycle")]) == 1
    assert any(p.startswith("engine.rules.x (rules) imports engine.adapters.db (adapters) at x.py:7 (function-level)")
               for p in got), got
    assert any(p.startswith("engine.adapters.y (adapters) imports engine.app (app) at y.py:8") for p in got), got
    assert any(p.startswith("console.page imports engine.adapters.models at page.py:9") for p in got), got
    assert len(got) == 4, got
    assert problems([e for e in fake if e.source != "engine.services.c" and "rules" not in e.source
                     and "adapters.y" not in e.source and e.target != "engine.adapters.models"]) == []


def test_the_graph_holds_every_kind_of_import(tmp_path):
    pkg = tmp_path / "engine"
    (pkg / "core").mkdir(parents=True)
    (pkg / "services").mkdir()
    for f in ("__init__.py", "core/__init__.py", "services/__init__.py", "core/clock.py", "app.py"):
        (pkg / f).write_text("")
    (pkg / "core" / "kinds.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from engine.app import App\n"
        "try:\n    import engine.services\nexcept ImportError:\n    pass\n"
        "def f():\n    from . import clock\n"
        "class C:\n    from engine import app\n")
    edges = import_edges(tmp_path, ["engine"])
    got = {(e.target, e.line, e.nested) for e in edges if e.source == "engine.core.kinds"}
    assert got == {("typing", 1, False), ("engine.app", 3, True), ("engine.services", 5, True),
                   ("engine.core.clock", 9, True), ("engine.app", 11, True)}
    assert len(layer_violations(edges)) == 3


def test_engine_layers_have_no_cycles_and_no_upward_imports():
    found = problems(import_edges(ROOT, ["engine", "console", "pages"]))
    assert not found, "\n".join(found)
