"""Project rules the console must keep: engine/ stays headless, pages/ and console/ never touch SQL."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out.add(n.module.split(".")[0])
    return out


def test_engine_never_imports_streamlit():
    bad = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
           if _imports(p) & {"streamlit", "streamlit_authenticator", "console"}]
    assert not bad, f"engine/ must stay headless: {bad}"


def test_pages_and_console_call_engine_services_not_sql():
    sql = re.compile(r"\bselect\(|session\.exec|\.exec\(|create_engine|sqlalchemy|sqlmodel"
                     r"|text\(\s*['\"]\s*(SELECT|UPDATE|INSERT|DELETE)", re.I)
    bad = [f"{p.relative_to(ROOT)}:{i}" for d in ("pages", "console") for p in (ROOT / d).rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1) if sql.search(line)]
    assert not bad, f"SQL in the console: {bad}"


def test_every_page_checks_the_role_first():
    for p in (ROOT / "pages").glob("*.py"):
        calls = [n for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "require_role"]
        assert calls, f"{p.name} must call require_role(...)"


def test_each_page_checks_exactly_the_roles_the_navigation_gives_it():
    from console.nav import NAV

    for spec in NAV:
        p = ROOT / "pages" / f"{spec.module}.py"
        if not p.is_file():
            continue
        calls = [n for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "require_role"]
        if any(isinstance(a, ast.Starred) for c in calls for a in c.args):  # require_role(*ROLES): every role
            got = {"ae", "approver", "ops", "admin"}
        else:
            got = {a.value for c in calls for a in c.args if isinstance(a, ast.Constant)}
        assert got == set(spec.roles), (f"pages/{spec.module}.py checks {sorted(got)}; "
                                        f"console/nav.py gives {sorted(spec.roles)}")
    extra = {p.stem for p in (ROOT / "pages").glob("*.py")} - {s.module for s in NAV}
    assert not extra, f"pages not in console/nav.py: {extra}"


def test_pages_never_hand_the_database_to_anything():
    """Pages call engine services with the App; the store (the database) stays inside the engine."""
    bad = [f"{p.relative_to(ROOT)}:{i}" for d in ("pages", "console") for p in (ROOT / d).rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\.store\b", line)]
    assert not bad, f"the console reaches into the database: {bad}"
