"""Every page, on a desktop and on a phone: it loads with the CSP header, nothing fails
or comes from another origin, it does not scroll sideways at 390 px, the keyboard reaches
the navigation; screenshots of each (artifacts, and docs/screenshots/ for the README).
Then signing out through the account menu. The Jobs pages, in light and dark, with every
control named and every text readable; a running job followed to its answer, and cancelled.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from checks import DOCS_SCREENSHOTS, PAGES, README_PAGES, assert_no_sideways_scroll, goto, visit
from conftest import DESKTOP, PHONE, Session, sign_in_with_github



def all_pages(session, shared) -> dict:
    pages = dict(PAGES)
    request_id = shared.get("request_id")
    if request_id is None:
        rows = session.api("GET", "/api/requests?limit=1")["data"]
        request_id = rows[0]["id"] if rows else None
    if request_id is not None:
        pages["request-detail"] = f"/dashboard/requests/{request_id}"
    return pages


@pytest.mark.parametrize("name", [*PAGES, "request-detail"])
def test_page_on_desktop(desktop, shared, artifacts, name):
    path = all_pages(desktop, shared).get(name)
    if path is None:
        pytest.fail("no request in the log to open (the key test makes one)")
    page = desktop.page
    page.set_viewport_size(DESKTOP["viewport"])
    visit(page, desktop.watcher, path, shot=artifacts / "desktop" / f"{name}.png", full_page=True)
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("main#main")).to_be_visible()
    if name in README_PAGES and not (name == "playground" and shared.get("playground_shot")):
        # The README's picture: the first screen, as someone opening the page sees it.
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"))
        shutil.copy(DOCS_SCREENSHOTS / f"{name}.png", artifacts / "desktop" / f"{name}-first-screen.png")


@pytest.mark.parametrize("name", [*PAGES, "request-detail"])
def test_page_on_a_phone(phone, desktop, shared, artifacts, name):
    path = all_pages(desktop, shared).get(name)
    if path is None:
        pytest.fail("no request in the log to open (the key test makes one)")
    visit(phone.page, phone.watcher, path, shot=artifacts / "phone" / f"{name}.png")
    # The page asks for the device's width (meta viewport): the check above was at 390 px.
    assert phone.page.evaluate("window.innerWidth") == 390


def test_login_page_on_desktop_and_phone(browser, stack, watcher, artifacts):
    for kind, options in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(**options)
        try:
            session = Session(stack, context, watcher)
            page = session.open_page()
            visit(page, watcher, "/login", shot=artifacts / kind / "login.png")
            expect(page.get_by_role("link", name="Sign in with GitHub")).to_be_visible()
        finally:
            context.close()


def test_runs_in_a_network_namespace_with_only_loopback():
    """scripts/browser-tests.sh runs pytest under `unshare --net`: nothing but loopback."""
    names = [name for _, name in socket.if_nameindex()]
    assert names == ["lo"], f"network interfaces {names}: run the suite with scripts/browser-tests.sh"


def test_keyboard_reaches_the_navigation(desktop):
    page = desktop.page
    goto(page, desktop.origin + "/dashboard")
    first_link = page.locator("nav a").first
    expect(first_link).to_have_attribute("href", "/dashboard")
    reached = False
    for _ in range(8):
        page.keyboard.press("Tab")
        if first_link.evaluate("el => el === document.activeElement"):
            reached = True
            break
    assert reached, "Tab does not reach the first navigation link"
    outline = first_link.evaluate("el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).boxShadow")
    assert outline != "none none", "the focused link shows no focus ring"


def test_menu_sign_out_ends_the_session(browser, stack, watcher):
    """Its own context and session, so the other tests keep theirs."""
    context = browser.new_context(**DESKTOP)
    try:
        session = Session(stack, context, watcher)
        page = session.open_page()
        sign_in_with_github(session, page)
        page.get_by_label("Account menu").click()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(stack.origin + "/login")
        response = goto(page, stack.origin + "/dashboard/keys")
        assert response.status == 200
        url = urlsplit(page.url)
        assert (url.path, parse_qs(url.query).get("next")) == ("/login", ["/dashboard/keys"]), page.url
        assert_no_sideways_scroll(page, "/login")
    finally:
        context.close()


# --- Jobs -----------------------------------------------------------------------------

# The shared config's model that answers after 3 s: a job on it stays unfinished that long.
SLOW_JOB_MODEL = "background-slow"

# The background of the page per scheme (app.css's --bg).
BACKGROUNDS = {"light": "rgb(247, 247, 248)", "dark": "rgb(16, 18, 23)"}

# Every control without a name, duplicate ids, and text whose contrast with what is
# behind it is under 4.5:1 (WCAG AA), as axe checks them.
AXE_LIKE = r"""() => {
    const named = (el) => {
        const aria = (el.getAttribute('aria-label') || '').trim();
        if (aria) return aria;
        const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
            .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
        if (by) return by;
        const labels = [...(el.labels || [])].map((l) => l.textContent).join(' ').trim();
        if (labels) return labels;
        if (!['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) return (el.textContent || '').trim();
        return (el.getAttribute('title') || '').trim();
    };
    const unnamed = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')]
        .filter((el) => !named(el)).map((el) => el.outerHTML.slice(0, 120));
    const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
    const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
    const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
        const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const behind = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const bg = rgb(getComputedStyle(e).backgroundColor);
            if (bg.length >= 3 && (bg.length < 4 || bg[3] > 0)) return bg;
        }
        return [255, 255, 255];
    };
    const faint = [];
    for (const el of document.querySelectorAll('main *')) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length) continue;
        const a = luminance(rgb(getComputedStyle(el).color)), b = luminance(behind(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) faint.push(el.tagName.toLowerCase() + '.' + el.className + ' ' + ratio.toFixed(2));
        if (faint.length >= 6) break;
    }
    return {unnamed, duplicates, faint, background: getComputedStyle(document.body).backgroundColor};
}"""


def jobs_key(session, shared) -> str:
    """An inference key of the signed-in account, made once through the API."""
    if "jobs_key" not in shared:
        shared["jobs_key"] = session.api("POST", "/api/keys", {"name": "browser-jobs", "scope": "inference"})["key"]
    return shared["jobs_key"]


def queue_job(session, shared, model: str, text: str) -> str:
    """Queues a chat completion with `Prefer: respond-async` (as the Jobs page's curl line
    does); its job id. A new key may take up to a second to work."""
    deadline = time.monotonic() + 3
    while True:
        resp = session.context.request.post(
            session.origin + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {jobs_key(session, shared)}", "Prefer": "respond-async"},
            data={"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 32},
        )
        if resp.status != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert resp.status == 202, f"{resp.status}: {resp.text()}"
    return resp.json()["id"]


def job_when(session, job_id: str, done, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        job = session.api("GET", f"/api/jobs/{job_id}")
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.1)


def check_page(page, path: str, scheme: str) -> None:
    found = page.evaluate(AXE_LIKE)
    assert not found["unnamed"], f"{path}: controls without a name: {found['unnamed']}"
    assert not found["duplicates"], f"{path}: duplicate ids: {found['duplicates']}"
    assert not found["faint"], f"{path} ({scheme}): text under 4.5:1 contrast: {found['faint']}"
    assert found["background"] == BACKGROUNDS[scheme], f"{path} is not in its {scheme} colours: {found['background']}"


def test_jobs_pages_in_light_and_dark_on_desktop_and_phone(desktop, phone, shared, artifacts):
    job_id = queue_job(desktop, shared, "gpt-4o-mini", "Say hello to the jobs page.")
    job = job_when(desktop, job_id, lambda j: j["status"] == "completed")
    answer = job["result"]["choices"][0]["message"]["content"]
    assert answer, job
    for session, kind in ((desktop, "desktop"), (phone, "phone")):
        for scheme in ("light", "dark"):
            page = session.open_page()  # its own page: the shared one keeps the light scheme
            try:
                page.emulate_media(color_scheme=scheme)
                visit(page, session.watcher, "/dashboard/jobs", shot=artifacts / kind / f"jobs-{scheme}.png")
                expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
                row = page.locator(f'tr[data-job-id="{job_id}"]')
                expect(row).to_contain_text("completed")
                expect(row).to_contain_text("$" + job["cost_usd"])
                expect(row.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
                expect(page.get_by_label("Status")).to_be_visible()
                check_page(page, "/dashboard/jobs", scheme)

                row.get_by_role("link", name=job_id).click()
                page.wait_for_url(f"{desktop.origin}/dashboard/jobs/{job_id}")
                path = f"/dashboard/jobs/{job_id}"
                visit(page, session.watcher, path, shot=artifacts / kind / f"job-detail-{scheme}.png")
                expect(page.locator("#job-status")).to_have_text("completed")
                expect(page.locator("#job-result .answer").first).to_contain_text(answer)
                expect(page.locator("#job-cost")).to_have_text("$" + job["cost_usd"])
                check_page(page, path, scheme)
            finally:
                page.close()


def test_a_running_job_is_followed_to_its_answer_and_another_is_cancelled(desktop, shared):
    page = desktop.page
    followed = queue_job(desktop, shared, SLOW_JOB_MODEL, "Take your time.")
    goto(page, f"{desktop.origin}/dashboard/jobs/{followed}")
    expect(page.locator("#job-status")).to_have_text(re.compile("queued|in progress"))
    expect(page.get_by_role("button", name=f"Cancel job {followed}")).to_be_visible()
    # jobs.js polls the job and reloads the page when it changes: the answer appears.
    expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#job-result .answer").first).not_to_be_empty()
    expect(page.get_by_role("button", name=f"Cancel job {followed}")).to_have_count(0)

    cancelled = queue_job(desktop, shared, SLOW_JOB_MODEL, "Never mind.")
    goto(page, f"{desktop.origin}/dashboard/jobs/{cancelled}")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.get_by_role("button", name=f"Cancel job {cancelled}").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    assert asked and cancelled in asked[0], asked
    expect(page.get_by_role("button", name=f"Cancel job {cancelled}")).to_have_count(0)
    assert desktop.api("GET", f"/api/jobs/{cancelled}")["status"] == "cancelled"
