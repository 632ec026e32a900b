"""What a person does in the dashboard, through the pages in a real Chromium: sign in with
GitHub, create a key and use it with the official `openai` SDK, find that request in the
log and the usage numbers, revoke the key, redeem a code, grant credit as an admin, paste
the Codex snippet into Codex CLI, and chat in the playground with a streamed answer.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal

import openai
from playwright.sync_api import expect

from checks import DOCS_SCREENSHOTS, goto
from codex_run import run_codex
from stack import GITHUB_LOGIN, OTHER_ACCOUNT, SLOW_MODEL

NANO = Decimal(1_000_000_000)
# "see that request in the log and in the usage numbers within 5 s"
VISIBLE_WITHIN_S = 5.0


def money(text: str) -> Decimal:
    """`$1,234.5600` → Decimal("1234.5600")."""
    return Decimal(text.strip().replace("$", "").replace(",", ""))


def number(text: str) -> int:
    return int(text.strip().replace(",", ""))


def create_key_in_ui(session, name: str, rpm: str = "") -> tuple:
    """Creates a key with the "Create a key" form; returns (id, secret) as the one-time
    dialog shows it, and checks the secret is gone once the dialog is closed."""
    page = session.page
    goto(page, session.origin + "/dashboard/keys")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Create key"))
    form.get_by_label("Name", exact=True).fill(name)
    expect(form.get_by_label("Allow community instances")).to_be_checked()
    if rpm:
        form.get_by_label("Requests per minute").fill(rpm)
    form.get_by_role("button", name="Create key").click()
    dialog = page.locator("dialog[open]")
    expect(dialog.get_by_role("heading", name="Copy your new key")).to_be_visible()
    expect(dialog.get_by_role("button", name="Copy key")).to_be_visible()
    expect(dialog).to_contain_text(re.compile(r"shown only once|only time .* shown", re.I))
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("sk-tr-"), secret
    dialog.get_by_role("button", name="Done").click()
    row = page.locator("tr[data-key-id]").filter(has_text=name)
    expect(row).to_have_count(1)
    page.wait_for_load_state("load")
    assert secret not in page.content(), "the secret is shown only once"
    return row.get_attribute("data-key-id"), secret


def sdk(session, key: str):
    return openai.OpenAI(base_url=session.origin + "/v1", api_key=key, max_retries=0, timeout=30)


def test_sign_in_lands_on_the_overview(desktop):
    page = desktop.page
    assert page.url == desktop.origin + "/dashboard"
    assert desktop.me["login"] == GITHUB_LOGIN and desktop.me["role"] == "admin", desktop.me
    expect(page.locator("summary[aria-label='Account menu']")).to_be_visible()


def test_key_created_used_seen_and_revoked(desktop, shared):
    page = desktop.page
    key_id, secret = create_key_in_ui(desktop, "browser-sdk", rpm="600")
    client = sdk(desktop, secret)
    deadline = time.monotonic() + 3
    while True:  # a new key works on every replica within a second
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello from the browser tests."}]
            )
            break
        except openai.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(100)
    done_at = time.monotonic()
    answer = raw.parse()
    assert answer.choices[0].message.content
    request_id = raw.headers.get("x-request-id")
    assert request_id and request_id.startswith("req_"), raw.headers
    shared["request_id"] = request_id

    # The request log shows it within 5 s.
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    while True:
        goto(page, desktop.origin + "/dashboard/requests")
        if row.count() == 1:
            break
        assert time.monotonic() - done_at < VISIBLE_WITHIN_S, f"{request_id} not in the request log after {VISIBLE_WITHIN_S}s"
        page.wait_for_timeout(250)
    expect(row).to_contain_text("gpt-4o-mini")
    expect(row.locator(f'a[href="/dashboard/requests/{request_id}"]')).to_have_count(1)

    # The usage page's totals equal /api/usage, and count it, within 5 s.
    while True:
        goto(page, desktop.origin + "/dashboard/usage")
        api = desktop.api("GET", "/api/usage")["data"]
        requests = sum(b["requests"] for b in api)
        if requests >= 1 and number(page.locator("#usage-total-requests").inner_text()) == requests:
            break
        assert time.monotonic() - done_at < VISIBLE_WITHIN_S, f"usage does not count the request after {VISIBLE_WITHIN_S}s: {api}"
        page.wait_for_timeout(250)
    assert number(page.locator("#usage-total-tokens").inner_text()) == sum(
        b["prompt_tokens"] + b["completion_tokens"] for b in api
    )
    cost = page.locator("#usage-total-cost").inner_text()
    assert money(cost) == sum(Decimal(b["cost_usd"]) for b in api), (cost, api)
    assert money(cost) > 0, cost
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()

    # Revoke it (confirming the dialog): the SDK gets 401.
    goto(page, desktop.origin + "/dashboard/keys")
    confirmed = []
    page.once("dialog", lambda d: (confirmed.append(d.message), d.accept()))
    page.locator(f'tr[data-key-id="{key_id}"]').get_by_role("button", name=re.compile(r"^Revoke\b")).click()
    deadline = time.monotonic() + 3
    while True:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "still there?"}])
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        page.wait_for_timeout(100)
    assert confirmed, "Revoke asks for confirmation"
    expect(page.locator(f'tr[data-key-id="{key_id}"]')).to_contain_text("revoked")
    key = next(k for k in desktop.api("GET", "/api/keys")["data"] if k["id"] == key_id)
    assert key["revoked_at"], key


def test_admin_codes_redeemed_raise_the_balance_exactly(desktop):
    page = desktop.page
    goto(page, desktop.origin + "/dashboard/admin")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Create codes"))
    form.get_by_label("Amount (USD)").fill("1.25")
    form.get_by_label("How many").fill("1")
    form.get_by_role("button", name="Create codes").click()
    codes = page.locator("#new-codes")
    expect(codes).to_contain_text("-", timeout=5_000)
    code = codes.inner_text().strip().splitlines()[0].strip()

    goto(page, desktop.origin + "/dashboard/balance")
    balance = page.locator("#balance")
    before = int(balance.get_attribute("data-nano-usd"))
    assert before == desktop.api("GET", "/api/me")["balance_nano_usd"]
    form = page.locator("form").filter(has=page.get_by_role("button", name="Redeem"))
    form.get_by_label("Code").fill(code)
    form.get_by_role("button", name="Redeem").click()
    expect(balance).not_to_have_attribute("data-nano-usd", str(before), timeout=5_000)
    after = int(page.locator("#balance").get_attribute("data-nano-usd"))
    assert after - before == 1_250_000_000, (before, after)
    expect(page.locator("tr[data-ledger-id]").filter(has_text="redemption")).not_to_have_count(0)


def test_admin_grants_credit(desktop):
    page = desktop.page
    accounts = desktop.api("GET", "/api/admin/accounts")["data"]
    target = next(a for a in accounts if a["name"] == OTHER_ACCOUNT)
    goto(page, desktop.origin + "/dashboard/admin")
    expect(page.get_by_label("Search accounts")).to_be_visible()
    row = page.locator(f'tr[data-account-id="{target["id"]}"]')
    shown_before = row.inner_text()
    row.get_by_label("Amount (USD)").fill("2.5")
    row.get_by_label("Memo").fill("browser test grant")
    row.get_by_role("button", name="Grant").click()
    deadline = time.monotonic() + 5
    while True:
        now = next(a for a in desktop.api("GET", "/api/admin/accounts")["data"] if a["id"] == target["id"])
        if now["balance_nano_usd"] != target["balance_nano_usd"]:
            break
        assert time.monotonic() < deadline, "the grant did not change the balance"
        page.wait_for_timeout(100)
    assert now["balance_nano_usd"] - target["balance_nano_usd"] == 2_500_000_000
    page.wait_for_load_state("load")
    goto(page, desktop.origin + "/dashboard/admin")
    assert row.inner_text() != shown_before, "the row shows the new balance"
    expect(page.locator(f'tr[data-account-id="{target["id"]}"]').get_by_role("button", name="Disable")).to_be_visible()


def test_codex_snippet_runs_codex_exec(desktop):
    page = desktop.page
    desktop.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=desktop.origin)
    goto(page, desktop.origin + "/dashboard/connect")
    expect(page.locator("#base-url")).to_have_text(desktop.origin + "/v1")
    snippet = page.locator("pre#snippet-codex")
    text = snippet.inner_text()
    assert "TOKENROUTER_API_KEY" in text and "sk-tr-" not in text, text
    assert 'wire_api = "responses"' in text, text
    page.locator('button[data-copy="#snippet-codex"]').click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == text.strip(), "the Copy button copies the snippet"

    _, key = create_key_in_ui(desktop, "browser-codex")
    proc, answer = run_codex(copied, key, desktop.origin)
    assert proc.returncode == 0, f"codex exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert answer and answer.strip(), proc.stderr[-3000:]


def test_playground_streams_and_shows_cost(desktop, shared):
    page = desktop.page
    goto(page, desktop.origin + "/dashboard/playground")
    page.get_by_label("Model").select_option(SLOW_MODEL)
    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("Max tokens").fill("64")
    page.get_by_label("Message").fill("Tell me something in thirty words.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-log .msg.user")).to_contain_text("thirty words")

    lengths = []
    meta = page.locator("#chat-log .msg.assistant .meta")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lengths.append(
            page.evaluate(
                "() => { const m = [...document.querySelectorAll('#chat-log .msg.assistant')].pop();"
                " if (!m) return -1; const c = m.cloneNode(true); c.querySelectorAll('.meta').forEach(e => e.remove());"
                " return c.textContent.trim().length; }"
            )
        )
        if meta.count() and meta.last.inner_text().strip():
            break
        page.wait_for_timeout(150)
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 4, f"the answer did not stream in: lengths sampled {lengths}"
    assert lengths == sorted(lengths), f"the answer shrank while streaming: {lengths}"
    # Tokens at the end of the stream; the cost once the gateway has settled the turn.
    expect(meta.last).to_contain_text(re.compile(r"tokens?", re.I))
    expect(meta.last).to_contain_text(re.compile(r"\$\d"), timeout=5_000)
    # The README's picture of the playground: a finished turn.
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SCREENSHOTS / "playground.png"))
    shared["playground_shot"] = True
    errors = [e.inner_text().strip() for e in page.locator("[data-error]").all()]
    assert not any(errors), errors


def test_filters_search_csv_and_key_edit(desktop, tmp_path):
    page = desktop.page
    # Models: searchable.
    goto(page, desktop.origin + "/dashboard/models")
    page.get_by_label("Search models").fill("codex")
    page.get_by_label("Search models").press("Enter")
    page.wait_for_url(re.compile(r"q=codex"))
    ids = [r.get_attribute("data-model-id") for r in page.locator("tr[data-model-id]").all()]
    assert sorted(ids) == ["codex-mock-anthropic", "codex-mock-gemini", "codex-mock-openai"], ids

    # Request log: filtered by model, the rows /api/requests answers.
    goto(page, desktop.origin + "/dashboard/requests")
    page.get_by_label("Model").fill("gpt-4o-mini")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"model=gpt-4o-mini"))
    shown = [r.get_attribute("data-request-id") for r in page.locator("tr[data-request-id]").all()]
    api = [r["id"] for r in desktop.api("GET", "/api/requests?model=gpt-4o-mini")["data"]]
    assert shown and shown == api[: len(shown)], (shown, api)
    page.locator("tr[data-request-id] a").first.click()
    page.wait_for_url(re.compile(r"/dashboard/requests/req_"))
    expect(page.locator("main")).to_contain_text(shown[0])

    # Usage: grouped by model, the same totals as /api/usage; the CSV downloads.
    goto(page, desktop.origin + "/dashboard/usage")
    page.get_by_label("Group by").select_option("model")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"group_by=model"))
    data = desktop.api("GET", "/api/usage?group_by=model")["data"]
    assert number(page.locator("#usage-total-requests").inner_text()) == sum(b["requests"] for b in data)
    assert money(page.locator("#usage-total-cost").inner_text()) == sum(Decimal(b["cost_usd"]) for b in data)
    expect(page.locator("main")).to_contain_text("gpt-4o-mini")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv = tmp_path / "usage.csv"
    download.value.save_as(csv)
    lines = csv.read_text().strip().splitlines()
    assert len(lines) == 1 + len(data) and "gpt-4o-mini" in csv.read_text(), lines

    # Keys: edit a limit.
    key_id, _ = create_key_in_ui(desktop, "browser-limits")
    row = page.locator(f'tr[data-key-id="{key_id}"]')
    row.get_by_role("button", name=re.compile(r"^Edit\b")).click()
    form = page.locator("form").filter(has=page.get_by_role("button", name="Save changes")).filter(visible=True)
    form.get_by_label("Requests per minute").fill("120")
    form.get_by_role("button", name="Save changes").click()
    deadline = time.monotonic() + 5
    while next(k for k in desktop.api("GET", "/api/keys")["data"] if k["id"] == key_id)["rpm"] != 120:
        assert time.monotonic() < deadline, "the edit did not reach /api/keys"
        page.wait_for_timeout(100)
    expect(page.locator(f'tr[data-key-id="{key_id}"]')).to_contain_text("120")
