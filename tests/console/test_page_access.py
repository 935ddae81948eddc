"""Role bypass attempts on every console page: each page, loaded directly (a URL typed by hand), refuses every
role the navigation does not give it, anonymous sessions, users removed from the users file, and a session that
claims a role it does not have. A refused page renders nothing but the refusal: no data, no buttons."""
from __future__ import annotations

import pytest

from console.nav import NAV
from engine.adapters.users import ROLES
from tests.console.conftest import ROOT

# Refusal happens before the page touches the engine: one backend is enough here.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

PAGES = [s for s in NAV if (ROOT / "pages" / f"{s.module}.py").is_file()]
REFUSED = [(s.module, role) for s in PAGES for role in ROLES if role not in s.roles]


def refused_only(at) -> str:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors, "the page rendered without a refusal"
    assert not at.title and not at.dataframe and not at.button and not at.text_input and not at.metric, (
        "a refused page leaked content")
    return "\n".join(errors)


@pytest.mark.parametrize("module,role", REFUSED, ids=[f"{m}-{r}" for m, r in REFUSED])
def test_every_page_refuses_the_roles_it_does_not_allow(ctx, module, role):
    msg = refused_only(ctx.page(f"pages/{module}.py", role))
    assert "Access refused" in msg and f"signed in as {role} with {role}" in msg


@pytest.mark.parametrize("module", [s.module for s in PAGES])
def test_every_page_refuses_anonymous_removed_and_forged_sessions(ctx, module):
    from streamlit.testing.v1 import AppTest

    path = f"pages/{module}.py"
    assert "not signed in" in refused_only(ctx.page(path, None))
    assert "no role" in refused_only(ctx.page(path, "mallory"))  # a name that is not in the users file
    # a session that says "authenticated" with a role claim but no valid username
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = ""
    at.session_state["roles"] = ["admin"]
    assert "not signed in" in refused_only(at.run())


def test_every_page_is_covered(db_url):
    assert {s.module for s in PAGES} == {p.stem for p in (ROOT / "pages").glob("*.py")}
