"""What every page visited must satisfy, watched on every page the tests open: no console
error, no uncaught exception, no failed request, no response >= 400 unless the test said
it expects one, no request to another origin, and a Content-Security-Policy header on
every document. `visit()` adds the per-visit checks (status 200, the CSP naming
`script-src 'self'`, no horizontal scroll, at 390 px or on a desktop) and takes the screenshots.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The pages every run visits (name → path), screenshots named after them.
PAGES = {
    "overview": "/dashboard",
    "keys": "/dashboard/keys",
    "usage": "/dashboard/usage",
    "requests": "/dashboard/requests",
    "models": "/dashboard/models",
    "instances": "/dashboard/instances",
    "balance": "/dashboard/balance",
    "connect": "/dashboard/connect",
    "playground": "/dashboard/playground",
    "admin": "/dashboard/admin",
}
# Copied to docs/screenshots/ (desktop) for the README.
README_PAGES = ("overview", "keys", "usage", "requests", "models", "connect", "playground", "balance")


class Watcher:
    """Collects what goes wrong in the pages it is attached to, until `take()`."""

    def __init__(self, origin: str):
        self.origin = origin
        self.problems: list = []
        self.other_origins: set = set()
        self.expected: list = []  # (status, url regex) of deliberate error answers
        self.documents: dict = {}  # url → CSP header of the document

    def _same_origin(self, url: str) -> bool:
        if url.startswith(("data:", "blob:", "about:")):
            return True
        if url == self.origin or url.startswith(self.origin + "/"):
            return True
        return any(url == o or url.startswith(o + "/") for o in self.other_origins)

    def attach(self, page) -> None:
        def console(msg):
            if msg.type == "error":
                text = msg.text
                if any(re.search(pattern, text) for _, pattern in self.expected if pattern.startswith("console:")):
                    return
                self.problems.append(f"console error on {page.url}: {text}")

        def response(resp):
            url, status = resp.url, resp.status
            if status >= 400 and not any(s == status and re.search(p, url) for s, p in self.expected):
                self.problems.append(f"{resp.request.method} {url} answered {status} (on {page.url})")
            if resp.request.resource_type == "document" and url.startswith(self.origin) and status < 300:
                csp = resp.headers.get("content-security-policy")
                self.documents[url] = csp
                if not csp:
                    self.problems.append(f"document {url} has no Content-Security-Policy header")

        def request(req):
            if not self._same_origin(req.url):
                self.problems.append(f"request to another origin: {req.method} {req.url} (on {page.url})")

        def failed(req):
            # ERR_ABORTED: the page was left (or a script aborted its own fetch) before the
            # answer came, e.g. the favicon of a page the test navigates away from at once.
            if req.failure == "net::ERR_ABORTED":
                return
            self.problems.append(f"request failed: {req.method} {req.url}: {req.failure} (on {page.url})")

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception on {page.url}: {error}"))
        page.on("request", request)
        page.on("requestfailed", failed)
        page.on("response", response)

    @contextlib.contextmanager
    def allow_origin(self, origin: str):
        """Requests to `origin` are expected inside the block (the GitHub sign-in)."""
        self.other_origins.add(origin)
        try:
            yield
        finally:
            self.other_origins.discard(origin)

    @contextlib.contextmanager
    def expect_status(self, status: int, url_pattern: str):
        """A deliberate error answer (and the console line the browser logs for it)."""
        entries = [(status, url_pattern), (0, f"console:Failed to load resource.*{status}")]
        self.expected.extend(entries)
        try:
            yield
        finally:
            for e in entries:
                self.expected.remove(e)

    def take(self) -> list:
        out, self.problems = self.problems, []
        return out

    def check(self) -> None:
        problems = self.take()
        assert not problems, "problems in the pages:\n" + "\n".join(problems)


def goto(page, url: str):
    """`page.goto`, once more if a reload the page itself started (after a change made
    through the API, several pages reload) interrupted it."""
    try:
        return page.goto(url, wait_until="load")
    except Exception as e:  # playwright's Error
        if "interrupted by another navigation" not in str(e):
            raise
        page.wait_for_load_state("load")
        return page.goto(url, wait_until="load")


def visit(page, watcher: Watcher, path: str, *, shot: Path | None = None, full_page: bool = True):
    """Opens `path` (on the gateway); checks status 200, the CSP and that the page does not
    scroll sideways; saves a screenshot to `shot` when given."""
    response = goto(page, watcher.origin + path)
    assert response is not None, f"no response for {path}"
    assert response.status == 200, f"{path} answered {response.status} (ended at {page.url})"
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, (
        f"{path}: Content-Security-Policy {csp!r}"
    )
    # A phone (390 px) above all, but a desktop page should not scroll sideways either.
    assert_no_sideways_scroll(page, path)
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=full_page)
    return response


def assert_no_sideways_scroll(page, what: str) -> None:
    width, inner, culprits = page.evaluate(
        """() => {
            const inner = window.innerWidth;
            const width = document.documentElement.scrollWidth;
            const wide = [];
            if (width <= inner) return [width, inner, wide];
            const clipped = (el) => {
                for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                    if (getComputedStyle(p).overflowX !== 'visible') return true;
                }
                return false;
            };
            for (const el of document.querySelectorAll('body *')) {
                const r = el.getBoundingClientRect();
                if (r.right > inner + 1 && r.width > 0 && !clipped(el)) {
                    const cls = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
                    wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls + ' right=' + Math.round(r.right));
                }
                if (wide.length >= 6) break;
            }
            return [width, inner, wide];
        }"""
    )
    assert width <= inner, f"{what} scrolls sideways at {inner}px: scrollWidth {width}; too wide: {culprits}"
