"""Every page, on a desktop and on a phone: it loads with the CSP header, nothing fails
or comes from another origin, it does not scroll sideways at 390 px, the keyboard reaches
the navigation; screenshots of each (artifacts, and docs/screenshots/ for the README).
Then signing out through the account menu.
"""

from __future__ import annotations

import shutil
import socket
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
