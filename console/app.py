"""Operator console entry point. Run from the repository root:

    streamlit run console/app.py                 # users from config/users.yaml (`alpha users add ...`)
    ALPHA_DEMO=1 streamlit run console/app.py    # demo users ae/approver/ops/admin, password in the server log

Login and sessions: console.auth (a server-side session per login, carried by a cookie, so a reload, a direct link
or a new tab stays signed in; a growing lockout after failed logins). The pages each user sees depend on their
role, and every page checks the role again on the server (console.runtime.require_role).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run console/app.py` puts console/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from console import auth  # noqa: E402
from console.nav import NAV  # noqa: E402
from console.runtime import ROLE_LABELS, current_user, get_app, header  # noqa: E402
from engine.core.errors import AlphaError  # noqa: E402
from engine.adapters.users import (UsersFileInvalid, UsersFileMissing, demo_mode, demo_password, demo_users,  # noqa: E402
                          load_users, users_file)

# the pages: pages/ in a checkout; console/pages/ in an installed wheel (setup.py copies them there)
PAGES = Path(__file__).resolve().parent / "pages"
if not PAGES.is_dir():
    PAGES = ROOT / "pages"

st.set_page_config(page_title="Alpha console", page_icon=":material/shield:", layout="wide")


@st.cache_resource(show_spinner="Seeding demo users...")
def _seed_demo(path: str, env_password: str) -> str:  # env_password: part of the cache key only
    """Once per server process: the demo users get ALPHA_DEMO_PASSWORD (or a generated one, logged), in the demo
    users file ($ALPHA_DATA_DIR/demo_users.yaml), never in the production users file."""
    password, generated = demo_password()
    names = demo_users(password, path)
    src = "generated for this run" if generated else "from ALPHA_DEMO_PASSWORD"
    print(f"[alpha console] DEMO MODE: users {', '.join(names)} in {path}; password ({src}): "
          f"{password if generated else '(the value of ALPHA_DEMO_PASSWORD)'}", file=sys.stderr, flush=True)
    return path


def _no_users_page(path: Path) -> None:
    st.title("Alpha operator console")
    st.warning(f"No console users exist yet ({path} not found), so nobody can log in. "
               "There is no default password.")
    st.markdown("An admin creates the first account on the server, from the repository root:")
    st.code("alpha users add jane --name 'Jane Doe' --email jane@example.com --role admin", language="bash")
    st.markdown("Roles: `ae`, `approver`, `ops` (kill switch and rollout), `admin` (everything). "
                "Then reload this page. To try the console with demo accounts instead, start it with "
                "`ALPHA_DEMO=1 streamlit run console/app.py` (the password is printed in the server log).")
    st.stop()


def main() -> None:
    path = users_file()  # in demo mode always the demo file, whatever ALPHA_USERS_FILE says
    if demo_mode():
        try:
            _seed_demo(str(path), os.environ.get("ALPHA_DEMO_PASSWORD", ""))
        except AlphaError as e:
            st.error(f"Demo mode could not seed its users: {e}")
            st.stop()
    try:
        credentials = load_users(path)
    except UsersFileMissing:
        _no_users_page(path)
    except UsersFileInvalid as e:
        st.error(str(e))
        st.stop()
    if not credentials["credentials"]["usernames"]:
        _no_users_page(path)

    get_app()  # fail here, once, with an actionable message when the database or config is not usable
    auth.authenticate()  # the login form and st.stop() unless a valid server-side session
    user = current_user()
    if not user or not user["roles"]:
        st.error(f"User {st.session_state.get('username')!r} no longer exists or has no role. Ask an admin.")
        if st.button("Log out", key="logout_norole"):
            auth.logout()
            st.rerun()
        st.stop()
    roles = set(user["roles"])

    pages = [st.Page(PAGES / f"{spec.module}.py", title=spec.title, icon=spec.icon, url_path=spec.url_path,
                     default=spec.module == ("welcome" if demo_mode() else "status"))
             for spec in NAV if roles & set(spec.roles) and (PAGES / f"{spec.module}.py").is_file()]
    nav = st.navigation(pages, expanded=True)  # every page a role may open is listed, none folded away

    with st.sidebar:
        st.markdown(f"**{user['name']}**  \n{', '.join(ROLE_LABELS.get(r, r) for r in user['roles'])}")
        if st.button("Log out", key="console_logout", icon=":material/logout:"):
            auth.logout()
            st.rerun()
        auth.keep_cookie()

    header()
    st.session_state.pop("_page_roles", None)  # the page about to run sets its own (console.runtime.require_role)
    nav.run()


main()
