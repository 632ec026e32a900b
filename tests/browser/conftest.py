"""Fixtures of the browser tests: one stack (mock upstream, fake GitHub, gateway), one
Chromium, and two browser contexts signed in as the fake GitHub's user (an admin): a
desktop one (1280×800) and a phone one (390×844, touch). Every page opened through
`open_page` is watched (checks.Watcher); each test ends by asserting nothing went wrong.

Run by scripts/browser-tests.sh inside a network namespace that holds only loopback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from checks import Watcher, goto
from stack import CHROMIUM_ARGS, Stack, chromium_binary

import harness  # tests/python, put on sys.path by stack

KEEP = os.environ.get("TOKENROUTER_KEEP_TMP") == "1"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and logs of this run go: $TOKENROUTER_ARTIFACTS/browser."""
    base = os.environ.get("TOKENROUTER_ARTIFACTS") or tempfile.mkdtemp(prefix="tokenrouter-artifacts-")
    out = Path(base) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def stack(artifacts):
    harness.local_no_proxy()
    binary = harness.binary_path()
    if binary is None:
        pytest.exit("tokenrouter binary not found; run `cargo build -p tokenrouter` or set TOKENROUTER_BIN", returncode=1)
    s = Stack(binary)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        for name, text in s.logs().items():
            (artifacts / f"{name}.log").write_text(text)
        if KEEP:
            print(f"\n[tokenrouter browser] logs and database kept in {s.workdir}")
        else:
            shutil.rmtree(s.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def watcher(stack) -> Watcher:
    return Watcher(stack.origin)


class Session:
    """A signed-in browser context and what tests share through it."""

    def __init__(self, stack, context, watcher):
        self.stack = stack
        self.context = context
        self.watcher = watcher
        self.origin = stack.origin
        self.page = None

    def open_page(self):
        page = self.context.new_page()
        self.watcher.attach(page)
        return page

    def api(self, method: str, path: str, body=None):
        """The management API with this context's session cookie (and the Origin a
        cookie-authenticated change needs)."""
        req = self.context.request
        headers = {"Origin": self.origin, "Accept": "application/json"}
        url = self.origin + path
        if method == "GET":
            resp = req.get(url, headers=headers)
        else:
            resp = req.fetch(url, method=method, headers=headers, data=body)
        assert resp.ok, f"{method} {path} answered {resp.status}: {resp.text()}"
        return resp.json()


def sign_in_with_github(session: Session, page) -> None:
    """From a protected page to /login?next=…, then "Sign in with GitHub": the fake
    authorizes at once and the gateway sends the browser back to /dashboard."""
    origin = session.origin
    goto(page, origin + "/dashboard")
    assert page.url.startswith(origin + "/login?next="), page.url
    with session.watcher.allow_origin(session.stack.github_url):
        page.get_by_role("link", name="Sign in with GitHub").click()
        page.wait_for_url(origin + "/dashboard", timeout=10_000)


@pytest.fixture(scope="session")
def desktop(browser, stack, watcher):
    """The signed-in desktop context, with $20 granted to the signed-in account (through
    the admin API: the tests of the UI spend it)."""
    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(10_000)
    session = Session(stack, context, watcher)
    session.page = session.open_page()
    sign_in_with_github(session, session.page)
    me = session.api("GET", "/api/me")
    session.me = me
    session.api("POST", f"/api/admin/accounts/{me['id']}/credit", {"amount_usd": "20", "memo": "browser tests"})
    yield session
    context.close()


@pytest.fixture(scope="session")
def phone(browser, stack, watcher, desktop):
    """A phone-sized context with the desktop context's session."""
    context = browser.new_context(storage_state=desktop.context.storage_state(), **PHONE)
    context.set_default_timeout(10_000)
    session = Session(stack, context, watcher)
    session.page = session.open_page()
    yield session
    context.close()


@pytest.fixture(scope="session")
def shared() -> dict:
    """What one test leaves for a later one (e.g. a request id for the detail page)."""
    return {}


@pytest.fixture(autouse=True)
def _pages_stay_clean(request):
    """Every test ends with no console error, failed request or foreign request seen."""
    yield
    if "watcher" in request.fixturenames:
        w = request.getfixturevalue("watcher")
        problems = w.take()
        assert not problems, "problems in the pages:\n" + "\n".join(problems)
