"""Every console page in a real browser, and XSS payloads in every lead field on every page that shows lead data.

1. Admin visits every page of console/nav.py through its navigation link (the URL is the page's url_path); each page
   settles with no exception and no error alert, full-page screenshot ``admin-<module>.png``. Each page again as the
   lowest role allowed there (``<role>-<module>.png``).
2. The seeded XSS leads (tests/e2e/conftest.py: every text field holds a payload naming the field; URL fields hold
   javascript: links; an RB2B visitor; pending sends of their drafts and hot-lead escalations) on Leads, Blind
   review, Comparison, Shadow review, Approvals and Audit log: no JavaScript dialog, no injected element (img,
   svg onload, javascript: link, script, KaTeX, markdown turning a marker into a link/colour/bold/code), and the
   literal payload text on screen (so the test fails if the data is not shown at all). Table cells are drawn on a
   canvas (no DOM to inject into): for them the payload must reach the browser in the websocket frames.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
from urllib.parse import urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from console.nav import NAV
from tests.e2e.conftest import (ROLES, ROOT, TIMEOUT_MS, XSS_HOT, XSS_KINDS, XSS_RB2B, _slug, drawn, login,
                                screenshot, settle, xss_lead, xss_value)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = [s for s in NAV if (ROOT / "pages" / f"{s.module}.py").is_file()]
DEFAULT = "status"  # the navigation's default page is served at /
LOWEST = {s.module: min(s.roles, key=ROLES.index) for s in PAGES}
ALL_PAYLOADS = ([v for kind in XSS_KINDS for v in xss_lead(kind).values()] + [str(v) for v in XSS_RB2B.values()]
                + list(XSS_HOT.values()))
# Markdown would turn these into a link, coloured text, math, bold, emphasis, strike-through or code of their own.
MARKERS = sorted(set(re.findall(r"\b(?:md|red|math|bold|em|del|code)_[a-z0-9_]+", " ".join(ALL_PAYLOADS)))
                 | {"math_header", "em_header", "del_header", "bold_file", "math_file"})
FIELDS = {"first_name", "last_name", "title", "company", "industry", "country", "region"}


# ------------------------------------------------------------------------------------------ helpers

def db(console):
    return sqlite3.connect(console.env["DATABASE_URL"].removeprefix("sqlite:///"))


def calm(page) -> None:
    """Settled: connected, no script run, no spinner or skeleton, tables and charts drawn."""
    settle(page)
    page.wait_for_function("""() => !document.querySelector(
        '[data-testid="stSpinner"], [data-testid="stSkeleton"], [data-testid="stStatusWidget"]')""")
    drawn(page)


def healthy(page, where: str) -> None:
    """No Streamlit exception and no error alert a crash would show (the kill switch's own alarm is not one)."""
    assert page.locator('[data-testid="stException"]').count() == 0, \
        f"{where}: exception shown: {page.locator('[data-testid=stException]').all_inner_texts()}"
    errors = [t for t in page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
              if "KILL SWITCH ON" not in t]
    assert not errors, f"{where}: error alert(s): {errors}"
    assert "Traceback" not in page.inner_text("body"), f"{where}: a traceback is on the page"


def visit(page, spec) -> None:
    """Open a page through its navigation link and check the URL is the page's url_path."""
    want = "" if spec.module == DEFAULT else spec.url_path
    more = page.locator('[data-testid="stSidebarNavViewButton"]')
    if more.count() and "more" in more.inner_text().lower():  # a long navigation shows "View N more" first
        more.click()
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=spec.title).first
    assert urlparse(link.get_attribute("href")).path.strip("/") == want
    link.click()
    page.wait_for_url(lambda url: urlparse(url).path.strip("/") == want)
    page.get_by_role("heading", name=spec.title.split(" & ")[0]).first.wait_for()
    calm(page)


def injected(page) -> list[str]:
    """Elements the payloads would create if a page rendered lead data as HTML or markdown."""
    return page.evaluate("""(markers) => {
        const bad = [];
        const all = s => [...document.querySelectorAll(s)];
        all('img[src="x"], [onerror], [onload], a[href^="javascript:" i], .katex')
            .forEach(e => bad.push(e.outerHTML.slice(0, 160)));
        all('script').filter(s => s.textContent.includes('alert('))
            .forEach(e => bad.push(e.outerHTML.slice(0, 160)));
        const set = new Set(markers);  // a marker that is an element's whole text: markdown made it an element
        for (const e of document.body.querySelectorAll('*')) {
            const t = e.textContent;
            if (t.length < 40 && set.has(t.trim())) bad.push(e.outerHTML.slice(0, 160));
        }
        return bad;
    }""", MARKERS)


def shown_as_text(page, payloads, where: str) -> None:
    """The literal payloads are on screen (waiting for the rerun that shows them), nothing was injected, and no
    dialog opened."""
    try:
        page.wait_for_function("""(payloads) => {
            const text = document.querySelector('[data-testid="stMain"]').innerText;
            return payloads.every(p => text.includes(p));
        }""", arg=list(payloads), timeout=10_000)
    except PlaywrightTimeout:
        text = page.inner_text('[data-testid="stMain"]')
        missing = [p for p in payloads if p not in text]
        assert not missing, f"{where}: payload(s) not shown as text: {missing}"
    calm(page)
    bad = injected(page)
    assert not bad, f"{where}: lead data rendered as HTML/markdown: {bad}"
    assert not page.dialogs, f"{where}: a JavaScript dialog fired: {page.dialogs}"


def delivered(page, payloads, where: str) -> None:
    """Table cells (canvas): the payloads reached the browser as data (Arrow strings in the websocket frames)."""
    received = b"".join(page.frames_in)
    missing = [p for p in payloads if p.encode() not in received]
    assert not missing, f"{where}: payload(s) never sent to the browser: {missing}"


def pick(page, key: str, starts: str) -> None:
    """Choose the option of a keyed selectbox whose label starts with ``starts``."""
    box = page.locator(f".st-key-{key} input[role='combobox']")
    box.click()
    box.fill(starts)
    option = page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(starts))).first
    option.wait_for()
    bad = injected(page)  # the open list shows lead data too
    assert not bad, f"options of {key}: lead data rendered as HTML/markdown: {bad}"
    option.click()
    expect(box).to_have_value(re.compile("^" + re.escape(starts)))
    calm(page)


def shot(page, name: str) -> None:
    screenshot(page, name, prefix=False)


@contextlib.contextmanager
def engine(console):
    """An engine on the console's database, to arrange data the way a second user would."""
    from engine.app import App
    from engine.core.config import load_settings
    from engine.adapters.db import Store

    with pytest.MonkeyPatch.context() as mp:
        for k, v in console.env.items():
            mp.setenv(k, v)
        app = App(settings=load_settings(console.env["ALPHA_CONFIG_DIR"]), store=Store(console.env["DATABASE_URL"]),
                  env_file=console.env["ALPHA_ENV_FILE"])
        try:
            yield app
        finally:
            app.store.dispose()


def _new_page(browser, console, role: str, request):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    p.dialogs, p.frames_in, p.test_name = [], [], _slug(request.node.name)
    p.on("dialog", lambda d: (p.dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
    p.on("websocket", lambda ws: ws.on(
        "framereceived", lambda f: p.frames_in.append(f if isinstance(f, bytes) else f.encode())))
    login(p, console, role)
    return context, p


@pytest.fixture(scope="module")
def admin(browser, console, request):
    """One admin session for the module (logins are the slow part); any JavaScript dialog fails the test."""
    context, p = _new_page(browser, console, "admin", request)
    try:
        yield p
    finally:
        context.close()


@pytest.fixture
def as_admin(admin, request):
    admin.dialogs.clear()
    admin.frames_in.clear()
    admin.test_name = _slug(request.node.name)
    yield admin
    assert not admin.dialogs, f"a JavaScript dialog fired (injected script ran?): {admin.dialogs}"


# ------------------------------------------------------------------------------------------ every page

def test_admin_visits_every_page(as_admin, console):
    page = as_admin
    log_start = console.log.stat().st_size
    for spec in PAGES:
        visit(page, spec)
        healthy(page, f"admin on {spec.module}")
        shot(page, f"admin-{spec.module}")
    assert "Traceback" not in console.log.read_text()[log_start:], "the server logged a traceback"


@pytest.mark.parametrize("role", [r for r in ROLES if r in LOWEST.values()])
def test_each_page_as_the_lowest_role_allowed(page, console, role):
    login(page, console, role)
    mine = [s for s in PAGES if LOWEST[s.module] == role]
    assert mine
    for spec in mine:
        visit(page, spec)
        healthy(page, f"{role} on {spec.module}")
        assert page.get_by_text("Access refused").count() == 0
        shot(page, f"{role}-{spec.module}")


# ------------------------------------------------------------------------------------------ XSS in lead fields

def open_page(page, module: str) -> None:
    visit(page, next(s for s in PAGES if s.module == module))


def test_xss_leads_list_and_icp_breakdown(as_admin, console):
    page = as_admin
    open_page(page, "leads")
    search = page.get_by_label("Search email or company")
    search.fill("xss")
    search.press("Enter")
    expect(page.get_by_text(f"{len(console.xss)} lead(s) · page 1 of 1")).to_be_visible()
    calm(page)
    page.get_by_text("Lead record").click()  # the record table of the selected lead, kept open
    emails = list(console.xss.values())
    for n, email in enumerate(reversed(emails)):  # newest first: the RB2B visitor is selected first
        if n:
            pick(page, "leads_selected", f"#{lead_id(console, email)} ")
        calm(page)
        kind = next((k for k, e in console.xss.items() if e == email), "rb2b")
        if kind == "rb2b":
            v = {f: XSS_RB2B[k] for f, k in (("company", "company name"), ("title", "title"),
                                             ("industry", "industry"), ("country", "country"))}
            cells = [XSS_RB2B[k] for k in ("first name", "last name", "linkedin url")] + [
                "javascript:alert(document.domain)", XSS_RB2B["captured url"], XSS_RB2B["referrer"]]
        else:
            v = {f: xss_value(kind, f) for f in FIELDS}
            cells = [v[f] for f in ("first_name", "last_name", "region")] + [
                xss_value(kind, f) for f in ("source", "notes")] + [xss_lead(kind)["linkedin_url"]]
        cells += [v["industry"], v["country"]]  # the explanation shortens them: whole in the lead record
        literal = [f"{email} · {v['company']} · {v['title']}",  # the selected lead's line
                   f"industry 25/25 ({v['industry'][:30]}", f"geography 5/10 ({v['country'][:30]}"]
        shown_as_text(page, literal, f"leads, ICP breakdown of {kind}")
        delivered(page, cells, f"leads, lead record of {kind}")
        if n == 0:
            shot(page, "xss-leads")
    delivered(page, emails + [xss_value(k, "company") for k in XSS_KINDS], "leads list")
    assert not injected(page)


def lead_id(console, email: str) -> int:
    with db(console) as c:
        return c.execute("SELECT id FROM lead WHERE email = ?", (email,)).fetchone()[0]


def test_xss_blind_review_and_comparison(as_admin, console):
    """The XSS leads are last in the blind set: the items before them are labelled by a second reviewer first, the
    admin labels the XSS leads (a note with a payload too, for the comparison's disagreements); all undone after."""
    page = as_admin
    from engine.services import blind_review as review

    set_id = console.review_set["set_id"]
    with engine(console) as app:
        try:
            while (item := review.next_item(app, set_id)) is not None and item.position < 1000:
                review.label(app, item.item_id, "3", "e2e")
            open_page(page, "blind_review")
            kinds = [*XSS_KINDS, "rb2b"]
            for n, kind in enumerate(kinds):
                expect(page.get_by_text(f"Lead {item.labeled + n + 1} of {item.total}", exact=True)).to_be_visible()
                calm(page)
                if kind == "rb2b":
                    payloads = [f"{XSS_RB2B['first name']} {XSS_RB2B['last name']}", XSS_RB2B["title"],
                                XSS_RB2B["company name"], "javascript:alert(document.domain)", XSS_RB2B["industry"],
                                XSS_RB2B["country"], XSS_RB2B["linkedin url"]]
                else:
                    row = xss_lead(kind)
                    payloads = [f"{row['first_name']} {row['last_name']}", row["linkedin_url"],
                                *(row[f] for f in ("title", "company", "industry", "country", "region"))]
                shown_as_text(page, payloads, f"blind review of {kind}")
                if kind == "md":
                    shot(page, "xss-blind-review")
                page.get_by_label("Note (optional, saved with your label)").fill(XSS_HOT["why"])
                page.locator(".st-key-blind_disqualified button:visible").click()  # the AI said tier 1
            expect(page.get_by_text(f"Review set {set_id} is complete")).to_be_visible()
            with db(console) as c:
                notes = c.execute("SELECT note FROM review_item WHERE set_id = ? AND labeled_by = 'console:admin'",
                                  (set_id,)).fetchall()
            assert notes == [(XSS_HOT["why"],)] * len(kinds)

            page.frames_in.clear()  # what the comparison sends, not what the blind review sent
            open_page(page, "comparison")
            healthy(page, "comparison")
            expect(page.get_by_text(re.compile(r"^Disagreements \(\d+\)$"))).to_be_visible()
            delivered(page, [XSS_HOT["why"], *console.xss.values(), XSS_RB2B["company name"],
                             *(xss_value(k, f) for k in XSS_KINDS for f in ("company", "title"))], "comparison")
            assert not injected(page) and not page.dialogs
            shot(page, "xss-comparison")
        finally:
            while review.undo(app, set_id, "console:admin") is not None:
                pass
            while review.undo(app, set_id, "e2e") is not None:
                pass


def xss_draft_ids(console) -> dict[str, int]:
    with db(console) as c:
        rows = c.execute("SELECT l.email, d.id FROM draft d JOIN lead l ON l.id = d.lead_id WHERE l.email IN "
                         f"({','.join('?' * len(console.xss))})", list(console.xss.values())).fetchall()
    by_email = dict(rows)
    return {kind: by_email[email] for kind, email in console.xss.items()}


def test_xss_shadow_review(as_admin, console):
    page = as_admin
    open_page(page, "shadow_review")
    drafts = xss_draft_ids(console)  # a KeyError if the shadow run drafted none for a lead
    for kind, draft_id in drafts.items():
        pick(page, "sr_pick", f"#{draft_id} ·")
        page.get_by_role("heading", name=f"Draft #{draft_id}").wait_for()
        calm(page)
        if kind == "rb2b":
            name = f"{XSS_RB2B['first name']} {XSS_RB2B['last name']}"
            payloads = [f"To: {name} <{console.xss[kind]}>",
                        f"Company: {XSS_RB2B['company name']} · {XSS_RB2B['title']}", f"Hi {XSS_RB2B['first name']},"]
        else:
            v = {f: xss_value(kind, f) for f in FIELDS}
            payloads = [f"To: {v['first_name']} {v['last_name']} <{console.xss[kind]}>",
                        f"Company: {v['company']} · {v['title']}",
                        f"{v['company']} and governed outbound",  # the subject
                        f"Hi {v['first_name']},",  # the body, rendered as escaped markdown
                        f"because {v['company']} looks like the kind of {v['industry']} company"]
        shown_as_text(page, payloads, f"shadow review of {kind}")
        if kind == "svg":  # the edit form puts the email in a textarea: </textarea> must not close it
            page.get_by_text("Edit, then approve").click()
            body = page.get_by_label("Body (plain text; links stay links)")
            expect(body).to_have_value(re.compile(re.escape(f"Hi {xss_value(kind, 'first_name')},")))
            assert not injected(page) and not page.dialogs
            shot(page, "xss-shadow-review-edit")
        if kind == "md":  # the email body is escaped markdown: the markdown payloads are the test of it
            shot(page, "xss-shadow-review")
    delivered(page, [xss_value(k, "company") for k in XSS_KINDS], "shadow review list")


def xss_approvals(console) -> list[tuple[int, str, str, str]]:
    """(approval id, kind, lead kind, lead email) of every queue item about an XSS lead."""
    kinds = {e: k for k, e in console.xss.items()}
    with db(console) as c:
        rows = c.execute(
            "SELECT a.id, a.kind, l.email FROM approval a LEFT JOIN outbox o ON o.id = a.outbox_id "
            "JOIN lead l ON l.id = COALESCE(a.lead_id, CAST(o.lead_id AS INTEGER)) "
            "WHERE a.status = 'pending' ORDER BY a.id").fetchall()
    return [(i, kind, kinds[email], email) for i, kind, email in rows if email in kinds]


def test_xss_approvals_sends_and_hot_leads(as_admin, console):
    page = as_admin
    open_page(page, "approvals")
    items = xss_approvals(console)
    assert sorted((k, lk) for _, k, lk, _ in items) == sorted(
        [("send", k) for k in console.xss] + [("hot_lead", k) for k in console.xss]), items
    for approval_id, kind, lead_kind, email in items:
        pick(page, "appr_open", f"#{approval_id} ·")
        page.get_by_role("heading", name=re.compile(rf"#{approval_id} ·")).wait_for()
        calm(page)
        if lead_kind == "rb2b":
            company, title = XSS_RB2B["company name"], XSS_RB2B["title"]
        else:
            company, title = xss_value(lead_kind, "company"), xss_value(lead_kind, "title")
        payloads = [email, f"{title} at {company}"]
        if kind == "send":
            payloads += [f"{company} and governed outbound" if lead_kind != "rb2b"
                         else f"A closer look for {company}"]
            if lead_kind != "rb2b":
                payloads.append(f"Hi {xss_value(lead_kind, 'first_name')},")
        elif lead_kind == "rb2b":
            payloads += [XSS_RB2B["captured url"], XSS_RB2B["industry"]]
        else:
            payloads += [XSS_HOT["title"].format(email=email), XSS_HOT["why"]]
        shown_as_text(page, payloads, f"approvals, {kind} #{approval_id} of {lead_kind}")
        if kind == "send" and lead_kind == "svg":  # the edit form: subject in an input, HTML source in a textarea
            page.get_by_text("Edit before approval").click()
            expect(page.locator(f".st-key-edit_subject_{approval_id} input")).to_have_value(
                f"{company} and governed outbound")
            expect(page.locator(f".st-key-edit_html_{approval_id} textarea")).to_have_value(
                re.compile(re.escape("&lt;/textarea&gt;&lt;svg onload=")))
            assert not injected(page) and not page.dialogs
        if lead_kind == "md":
            shot(page, f"xss-approvals-{kind}")
    delivered(page, [xss_value(k, "company") for k in XSS_KINDS], "approvals queue")


def test_xss_audit_log(as_admin, console):
    page = as_admin
    open_page(page, "audit_log")
    events = page.locator(".st-key-audit_events input[role='combobox']")
    events.click()
    events.fill("approval.hot_lead")
    page.get_by_role("option", name="approval.hot_lead", exact=True).click()
    page.keyboard.press("Escape")
    calm(page)
    expect(page.get_by_text("Rows 1-4 of 4 matching, newest first.")).to_be_visible()
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.click(position={"x": 18, "y": 35 + 17})  # the first row's selection box
    expect(page.locator('[data-testid="stJson"]')).to_be_visible()
    calm(page)
    newest = console.xss["svg"]  # the last hot lead raised
    title = XSS_HOT["title"].format(email=newest)
    shown_as_text(page, [title], "audit log row")
    delivered(page, [XSS_HOT["title"].format(email=e) for e in console.xss.values() if e != console.xss["rb2b"]],
              "audit log table")
    shot(page, "xss-audit-log")


HEADERLESS = "xss5.$math_header$*em_header*~~del_header~~@xss5.example"  # a valid address, first row of the file


def test_xss_in_an_import_refusal(as_admin, console):
    """A CSV whose first row is already a lead is refused with a message quoting that row's email and the file's
    name: both must read as text in the error, not as markdown."""
    page = as_admin
    open_page(page, "leads")
    name = "__bold_file__ $math_file$.csv"
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(files=[{
        "name": name, "mimeType": "text/csv",
        "buffer": f"{HEADERLESS},First,Last,Acme\n".encode()}])
    page.get_by_role("button", name="Import leads").click()
    error = page.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("has no header row")
    calm(page)
    shown_as_text(page, [f"'{name}' has no header row", f"email address ('{HEADERLESS}')"], "leads, import refusal")
    assert not injected(page)
    shot(page, "xss-leads-import-refusal")
    with db(console) as c:
        assert c.execute("SELECT count(*) FROM lead WHERE email = ?", (HEADERLESS,)).fetchone() == (0,)
