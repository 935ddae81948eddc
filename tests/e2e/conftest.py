"""Browser tests: Debian's chromium, driven by Playwright, against a real ``streamlit run console/app.py``.

One server for the session (a free port, a prepared SQLite database in tmp, its own config, data dir, users
file and cookie key), one browser for the session, a new browser context (fresh cookies) per test. Playwright
never downloads a browser: chromium comes from the system (``apt-get install -y chromium``); without it the
tests skip with that message, except under CI=true, where they fail.

The database holds ten ordinary leads and four XSS leads (every text field a payload naming the field: three from
a CSV import, one from an RB2B visit with javascript: URLs), one shadow run over all of them, a pending send of
each XSS lead's draft and a hot-lead escalation for each, and a blind review set of every lead, the XSS leads last.

Full-page screenshots of every page a test visits go to ``test-output/screenshots/`` (git-ignored).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import IN_CI, write_config

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ALPHA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking"]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
PASSWORD = "e2e-browser-password-42"
ROLES = ("ae", "approver", "ops", "admin")  # username = role
XSS = "<img src=x onerror=alert(1)>"
BOOT_TIMEOUT = 60.0
TIMEOUT_MS = 20_000


def _bin(name: str) -> str:
    venv = ROOT / ".venv" / "bin" / name
    return str(venv if venv.exists() else Path(sys.executable).parent / name)


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} is missing: install Debian's chromium with `apt-get install -y chromium`"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing: `.venv/bin/pip install -e '.[dev]'` (make setup)"
    if problem is None:
        return
    msg = f"browser tests need a browser: {problem} (Playwright never downloads one here)."
    if IN_CI:
        pytest.fail("CI=true: browser tests must not be skipped. " + msg, pytrace=False)
    pytest.skip(msg)


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ test data

LEADS = [  # title, company, employees, industry, country
    ("VP Sales", "Acme Analytics", "120", "B2B SaaS", "US"),
    ("CTO", XSS, "300", "Software", "US"),
    ("Head of Revenue Operations", "Globex", "80", "B2B SaaS", "GB"),
    ("Sales Manager", "Initech", "40", "Fintech", "CA"),
    ("CEO", "Umbrella Retail", "5", "Retail", "US"),
    ("Marketing Intern", "Hooli", "1000", "Software", "DE"),
    ("VP Sales", "Stark Industries", "250", "B2B SaaS", "US"),
    ("Director of Sales", "Wayne Enterprises", "600", "Software", "US"),
    ("Chief Revenue Officer", "Soylent", "150", "B2B SaaS", "US"),
    ("Account Executive", "Tyrell", "90", "Software", "GB"),
]


# Untrusted lead data: every text field of these leads holds a payload naming the field, one kind per lead, so a
# leak says which field and which kind. Injected HTML would fire alert(); markdown would turn md_/red_/math_/bold_
# markers into a link, coloured text, KaTeX or bold. The pages must show all of it as the literal text.
XSS_KINDS = {
    "img": "<img src=x onerror=alert('{f}')>",
    "md": "[md_{f}](javascript:alert('{f}')) :red[red_{f}] $math_{f}$ **bold_{f}**",
    "svg": "<script>alert('{f}')</script></textarea><svg onload=alert('{f}')>",
}
# The CSV import takes any text in these; title, industry and country keep a word the ICP reads, so the leads are
# scored tier 1 and drafted (the templates insert first_name, title, company, industry: the emails hold payloads).
XSS_TEXT_FIELDS = ("first_name", "last_name", "title", "company", "industry", "country", "region", "source", "notes")
XSS_PREFIX = {"title": "VP Sales ", "industry": "Software ", "country": "US "}
# Email addresses accept markdown specials, quotes and backticks in the local part (not <, >, parentheses, spaces).
XSS_EMAILS = {"img": "xss1'onmouseover=alert`email`'@xss1.example",
              "md": "xss2.$math_email$*em_email*~~del_email~~@xss2.example",
              "svg": "xss3.{svg}|'`code_email`@xss3.example"}
# An RB2B visitor: the webhook stores its URL fields as sent (the import would refuse these), javascript: included.
XSS_RB2B = {
    "business email": "xss4.visitor@xss4.example",
    "first name": "<img src=x onerror=alert('rb2b_first_name')>",
    "last name": "[md_rb2b_last_name](javascript:alert('rb2b_last_name')) :red[red_rb2b_last_name]",
    "title": "VP Sales <svg onload=alert('rb2b_title')>",
    "company name": "<script>alert('rb2b_company')</script>",
    "website": "javascript:alert(document.domain)",
    "industry": "Software $math_rb2b_industry$ **bold_rb2b_industry**",
    "employee count": "120",
    "linkedin url": "javascript:alert('rb2b_linkedin_url')",
    "country": "US </textarea><svg onload=alert('rb2b_country')>",
    "captured url": "javascript:alert('rb2b_page')",
    "referrer": "[md_rb2b_referrer](javascript:alert('rb2b_referrer'))",
}
XSS_HOT = {  # a hot-lead escalation's title and why (a reply's text, say)
    "title": "Reply from {email}: <img src=x onerror=alert('hot_title')>",
    "why": "[md_hot_why](javascript:alert('hot_why')) </textarea><svg onload=alert('hot_why')> :red[red_hot_why]",
}


def xss_value(kind: str, field: str) -> str:
    return XSS_PREFIX.get(field, "") + XSS_KINDS[kind].format(f=field)


def xss_lead(kind: str) -> dict:
    """The CSV row of the XSS lead of one kind."""
    n = list(XSS_KINDS).index(kind) + 1
    return {"email": XSS_EMAILS[kind], **{f: xss_value(kind, f) for f in XSS_TEXT_FIELDS},
            "company_domain": f"xss{n}.example", "employee_count": "120", "timezone": "America/New_York",
            "linkedin_url": "https://www.linkedin.com/in/" + XSS_KINDS[kind].format(f="linkedin_url")}


def _seed_xss(app, d: Path) -> dict:
    """The XSS leads (three imported from a CSV, one from an RB2B visit), before the shadow run drafts them."""
    from engine.services.events import EventService
    from engine.adapters.leads_csv import import_leads

    path = d / "xss-leads.csv"
    rows = [xss_lead(kind) for kind in XSS_KINDS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    imported = import_leads(app.store, path, app.clock)
    assert imported["imported"] == len(rows) and not imported["errors"], imported
    visit = EventService(app, alert=lambda alert: None).rb2b(XSS_RB2B, json.dumps(XSS_RB2B).encode())
    assert "queued as approval" in visit.detail, visit  # an ICP-fit visitor: a hot lead, raised by the engine
    return {kind: row["email"] for kind, row in zip(XSS_KINDS, rows)} | {"rb2b": XSS_RB2B["business email"]}


def _xss_queue(app, d: Path, env: dict, emails: dict) -> None:
    """A pending send of each XSS lead's shadow draft and of each ordinary lead's (the gateway in the assisted
    phase, through a second engine with assisted settings; the phase goes back to shadow after) and a hot-lead
    escalation for each CSV lead."""
    from sqlmodel import select

    from engine.app import App
    from engine.core.config import load_settings
    from engine.adapters.models import Draft, Lead
    from engine.services.pipeline import lead_action
    from tests.conftest import LIVE, deep_merge

    assisted = App(settings=load_settings(write_config(
        d / "config-assisted", production=deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}}),
        warmup={"enabled": False})), store=app.store, env_file=env["ALPHA_ENV_FILE"])
    with app.store.read() as s:
        pairs = s.exec(select(Draft, Lead).join(Lead, Lead.id == Draft.lead_id)
                       .where(Lead.email.in_(list(emails.values()))).order_by(Lead.id)).all()
    assert len(pairs) == len(emails), "the shadow run drafted every XSS lead"
    for phase in ("parallel", "assisted"):
        app.control.set_phase(phase, "e2e: pending sends to the XSS leads", "e2e", force=True)
    with app.store.read() as s:  # the ordinary leads' drafts too: a queue to filter and bulk-approve
        volume = s.exec(select(Draft, Lead).join(Lead, Lead.id == Draft.lead_id)
                        .where(Lead.email.like("person%@company%.example")).order_by(Lead.id)).all()
    assert len(volume) >= 5, "the shadow run drafted most ordinary leads"
    try:
        for draft, lead in pairs:
            r = assisted.gateway.submit(lead_action(assisted, lead, assisted.score(lead), draft, assisted.clock(),
                                                    idempotency_key=f"e2e-xss-{draft.id}"))
            assert r.status == "pending_approval", r
        for draft, lead in volume:
            r = assisted.gateway.submit(lead_action(assisted, lead, assisted.score(lead), draft, assisted.clock(),
                                                    idempotency_key=f"e2e-volume-{draft.id}"))
            assert r.status == "pending_approval", r
    finally:
        app.control.set_phase("shadow", "e2e: back to shadow after queueing the XSS sends", "e2e", force=True)
    now = app.clock()
    with app.store.write() as s:
        for kind in XSS_KINDS:
            lead = s.exec(select(Lead).where(Lead.email == emails[kind])).one()
            assert app.approvals.raise_hot_lead(s, lead, XSS_HOT["title"].format(email=lead.email), XSS_HOT["why"],
                                                "webhook:ghl", now)


def _xss_last_in_review(app, set_id: int, emails: dict) -> None:
    """The XSS leads go last in the blind review set, in XSS_KINDS order then the RB2B visitor (the AE test labels
    the first items)."""
    from sqlmodel import select

    from engine.adapters.models import Lead, ReviewItem

    order = list(emails.values())
    with app.store.write() as s:
        items = s.exec(select(ReviewItem, Lead).join(Lead, Lead.id == ReviewItem.lead_id)
                       .where(ReviewItem.set_id == set_id, Lead.email.in_(order))).all()
        assert len(items) == len(order), "every XSS lead is in the blind review set"
        for item, lead in items:
            item.position = 1000 + order.index(lead.email)
            s.add(item)


def _seed(d: Path, env: dict) -> dict:
    """The database, users and data the browser tests need; returns what the tests check against."""
    import engine.adapters.users as users
    from engine.services import blind_review as review
    from engine.app import App
    from engine.core.config import load_settings
    from engine.adapters.db import Store
    from engine.adapters.leads_csv import import_leads
    from engine.services.pipeline import shadow_run

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("EMERGENCY_STOP", raising=False)
        mp.setattr(users, "BCRYPT_ROUNDS", 4)  # quick logins
        for role in ROLES:
            users.add_user(role, f"E2E {role}", f"{role}@example.com", role, PASSWORD, path=env["ALPHA_USERS_FILE"])
        app = App(settings=load_settings(env["ALPHA_CONFIG_DIR"]), store=Store(env["DATABASE_URL"]),
                  env_file=env["ALPHA_ENV_FILE"])
        try:
            app.init("e2e")
            path = d / "leads.csv"
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["email", "first_name", "last_name", "title", "company", "company_domain",
                            "employee_count", "industry", "country", "timezone"])
                for i, (title, company, n, industry, country) in enumerate(LEADS):
                    w.writerow([f"person{i}@company{i}.example", f"First{i}", f"Last{i}", title, company,
                                f"company{i}.example", n, industry, country, "America/New_York"])
            imported = import_leads(app.store, path, app.clock)
            assert imported["imported"] == len(LEADS), imported
            xss = _seed_xss(app, d)
            total = len(LEADS) + len(xss)
            shadow = shadow_run(app, total)
            _xss_queue(app, d, env, xss)
            review_set = review.generate(app, total, seed=7, actor="e2e")
            _xss_last_in_review(app, review_set["set_id"], xss)
        finally:
            app.store.dispose()
    return {"shadow": shadow, "review_set": review_set, "xss": xss}


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def console(tmp_path_factory):
    """A real console server on a free port, against a prepared database; stopped at the end of the session."""
    _require_browser()
    d = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMERGENCY_STOP", "ALPHA_DEMO", "ALPHA_DEMO_PASSWORD")}
    env.update({
        "DATABASE_URL": f"sqlite:///{d / 'alpha.db'}",
        "ALPHA_CONFIG_DIR": str(write_config(d / "config")),
        "ALPHA_DATA_DIR": str(d / "data"),
        "ALPHA_ENV_FILE": str(d / "test.env"),  # not the developer's .env
        "ALPHA_USERS_FILE": str(d / "users.yaml"),
        "ALPHA_UNSUBSCRIBE_SECRET": "e2e-unsubscribe-secret-0123456789",
        "PYTHONUNBUFFERED": "1",
    })
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = d / "streamlit.log"
    log = open(log_path, "w")
    # The server boots while the database is prepared: nothing reads it before the first browser session.
    proc = subprocess.Popen(
        [_bin("streamlit"), "run", "console/app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seeded = _seed(d, env)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer {url}/_stcore/health within {BOOT_TIMEOUT:.0f} s:\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield SimpleNamespace(url=url, env=env, dir=d, log=log_path, **seeded)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def chromium_browser():
    """One Playwright and one Debian chromium for the whole session (Playwright's sync API allows one per
    process: every browser test, with or without the shared console, uses this one)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture(scope="session")
def browser(console, chromium_browser):
    return chromium_browser


@pytest.fixture
def page(browser, console, request):
    """A fresh context (no cookies) per test; any JavaScript dialog (alert/confirm/prompt) fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    p.on("dialog", on_dialog)
    p.dialogs = dialogs
    p.test_name = _slug(request.node.name)
    try:
        yield p
        assert not dialogs, f"a JavaScript dialog fired (injected script ran?): {dialogs}"
    finally:
        context.close()


# ------------------------------------------------------------------------------------------ helpers

def settle(page, timeout: int = TIMEOUT_MS) -> None:
    """Wait until the app is connected and no script run is in progress (the running-man widget is gone)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') !== 'running'
                && !document.querySelector('[data-testid="stStatusWidget"]');
        }""", timeout=timeout)


def drawn(page, timeout: int = TIMEOUT_MS) -> None:
    """Wait until the elements Streamlit draws after the script run are drawn: tables (a lazily loaded grid) and
    plotly charts, where they are visible (not in a collapsed expander)."""
    page.wait_for_function(
        """() => {
            const shown = e => e.checkVisibility({checkVisibilityCSS: true, visibilityProperty: true});
            const all = sel => [...document.querySelectorAll(sel)].filter(shown);
            return all('[data-testid="stDataFrame"]').every(d => d.querySelector('[data-testid="data-grid-canvas"]'))
                && all('[data-testid="stPlotlyChart"]').every(c => c.querySelector('.main-svg'));
        }""", timeout=timeout)


def screenshot(page, name: str, prefix: bool = True) -> Path:
    """A full-page screenshot: Streamlit scrolls inside its main container, so the viewport is stretched to the
    content's height for the shot. Named ``<test>--<name>.png``, or ``<name>.png`` without the prefix."""
    settle(page)
    drawn(page)
    size = page.viewport_size
    height = page.evaluate("""() => {
        const m = document.querySelector('[data-testid="stMain"]') || document.body;
        return Math.max(m.scrollHeight, document.body.scrollHeight);
    }""")
    path = SCREENSHOTS / (f"{page.test_name}--{_slug(name)}.png" if prefix else f"{_slug(name)}.png")
    try:
        page.set_viewport_size({"width": size["width"], "height": min(max(height + 40, size["height"]), 8000)})
        drawn(page)
        page.wait_for_timeout(250)  # let the grids repaint at the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def login(page, console, username: str) -> None:
    page.goto(console.url)
    settle(page)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)


def nav_labels(page) -> list[str]:
    """The page titles in the sidebar navigation (all of them: a collapsed list is expanded first)."""
    more = page.locator('[data-testid="stSidebarNavViewButton"]')
    if more.count() and "more" in more.inner_text().lower():
        more.click()
    texts = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    return [t.strip().splitlines()[-1].strip() for t in texts]  # the icon's ligature text comes first


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    settle(page)


def alpha_cli(console, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_bin("alpha"), *args], cwd=ROOT, env=console.env, capture_output=True, text=True,
                          timeout=60)


def alpha_json(console, *args: str) -> dict:
    out = alpha_cli(console, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
