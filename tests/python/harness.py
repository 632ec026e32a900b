"""Boots a mock upstream and a gateway in front of it, for the Python and Codex suites.

Both processes listen on 127.0.0.1:0; their ports are read from their log lines.
Nothing here touches the internet. `tests/python/conftest.py` and
`tests/codex/conftest.py` build their fixtures from this module; `tests/node/harness.mjs`
does the same in JavaScript (its config is the first part of the one below: keep them alike).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

import conformance

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MOCK_RE = re.compile(r"mock upstream listening on (http://127\.0\.0\.1:(\d+)/v1)")
GATEWAY_RE = re.compile(r"tokenrouter listening on (http://127\.0\.0\.1:(\d+))")

# Environment that could point the binary elsewhere or at real providers.
_SCRUB_ENV = (
    "TOKENROUTER_DATABASE_URL",
    "TOKENROUTER_CONFIG",
    "TOKENROUTER_LISTEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY",
)


def local_no_proxy() -> None:
    """Make sure HTTP clients in this process never send 127.0.0.1 via a proxy."""
    for var in ("NO_PROXY", "no_proxy"):
        cur = os.environ.get(var, "")
        parts = [p for p in cur.split(",") if p]
        for host in ("127.0.0.1", "localhost"):
            if host not in parts:
                parts.append(host)
        os.environ[var] = ",".join(parts)


def binary_path() -> Path | None:
    """The tokenrouter binary (TOKENROUTER_BIN, else target/debug), or None if missing."""
    env_bin = os.environ.get("TOKENROUTER_BIN")
    path = Path(env_bin) if env_bin else REPO_ROOT / "target" / "debug" / "tokenrouter"
    if not path.is_file() or not os.access(path, os.X_OK):
        return None
    return path


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env["NO_COLOR"] = "1"
    return env


def gateway_config(mock_url: str, server: str = "", extra: str = "") -> str:
    """The gateway config every suite uses: one provider of each kind, all on the mock.

    Models: the chat models `gpt-4o-mini` (openai kind), `claude-sonnet-4-5` (anthropic),
    `gemini-2.5-pro` (gemini); the embedding models `text-embedding-3-small` (openai) and
    `gemini-embedding-001` (gemini); the legacy completions model
    `gpt-3.5-turbo-instruct` (openai); and `codex-mock-{openai,anthropic,gemini}`, whose
    upstream calls at most one tool per turn (the mock's `calls=1` knob), for Codex CLI.
    `extra` is appended (more models).
    """
    gemini_url = mock_url.removesuffix("/v1") + "/v1beta"
    return f"""
[server]
{server}

[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "{mock_url}"
api_key = "mock-anthropic-key"

[[providers]]
name = "mock-gemini"
kind = "gemini"
base_url = "{gemini_url}"
api_key = "mock-gemini-key"

[[models]]
id = "gpt-4o-mini"
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt" }} ]

[[models]]
id = "claude-sonnet-4-5"
deployments = [ {{ provider = "mock-anthropic", upstream_model = "claude-mock" }} ]

[[models]]
id = "gemini-2.5-pro"
deployments = [ {{ provider = "mock-gemini", upstream_model = "gemini-mock" }} ]

[[models]]
id = "text-embedding-3-small"
deployments = [ {{ provider = "mock", upstream_model = "mock-embedding" }} ]

[[models]]
id = "gemini-embedding-001"
deployments = [ {{ provider = "mock-gemini", upstream_model = "gemini-embedding-001" }} ]

[[models]]
id = "gpt-3.5-turbo-instruct"
deployments = [ {{ provider = "mock", upstream_model = "mock-instruct" }} ]

[[models]]
id = "codex-mock-openai"
context_window = 272000
max_output_tokens = 128000
input_price = 1.25
output_price = 10
capabilities = ["tools", "reasoning"]
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt@calls=1" }} ]

[[models]]
id = "codex-mock-anthropic"
context_window = 200000
max_output_tokens = 64000
input_price = 3
output_price = 15
capabilities = ["tools", "reasoning"]
deployments = [ {{ provider = "mock-anthropic", upstream_model = "claude-mock@calls=1" }} ]

[[models]]
id = "background-slow"
context_window = 128000
max_output_tokens = 4096
input_price = 1
output_price = 1
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt@latency_ms=3000" }} ]

[[models]]
id = "codex-mock-gemini"
context_window = 1048576
max_output_tokens = 65536
input_price = 1.25
output_price = 10
capabilities = ["tools", "reasoning"]
deployments = [ {{ provider = "mock-gemini", upstream_model = "gemini-mock@calls=1" }} ]
{extra}
"""


UPSTREAMS = {"openai": ("mock", "mock-gpt"), "anthropic": ("mock-anthropic", "claude-mock"), "gemini": ("mock-gemini", "gemini-mock")}
FAULTS = {"stream_error": "stream_error", "cut": "cut:3", "500": "500"}


def fault_models(surfaces=("responses", "messages", "gemini")) -> str:
    """Config of models `SURFACE-fault-KIND-NAME` whose upstream always fails: NAME
    `stream_error` (an error event after one token), `cut` (the connection drops after
    three tokens) or `500` (the answer is a 500). Translated APIs drop the body's `mock`
    knobs; model names keep them. One set per surface, since a deployment that keeps
    failing is rested (503) for a while: one upstream model name per surface too."""
    out = []
    for surface in surfaces:
        for kind, (provider, upstream) in UPSTREAMS.items():
            for name, fault in FAULTS.items():
                out.append(
                    f'''
[[models]]
id = "{surface}-fault-{kind}-{name}"
context_window = 128000
max_output_tokens = 4096
input_price = 1
output_price = 1
capabilities = ["tools"]
deployments = [ {{ provider = "{provider}", upstream_model = "{upstream}-{surface}@fault={fault}" }} ]
'''
                )
    return "".join(out)


class Proc:
    """A background process whose stderr goes to a file we can scan."""

    def __init__(self, name: str, argv: list, cwd: Path, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.stderr.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        try:
            return ANSI_RE.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: re.Pattern, timeout: float = START_TIMEOUT_S) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.log_text())
            if m:
                return m
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready; "
                    f"log:\n{self.log_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not log a listen address within {timeout:.0f}s; "
                    f"log:\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


class Gateway:
    """What tests get: addresses, a key, and helpers around the CLI."""

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.db_path = workdir / "tokenrouter.db"
        self.db_url = f"sqlite://{self.db_path}"
        self.config_path = workdir / "tokenrouter.toml"
        self.base_url = ""  # http://127.0.0.1:PORT/v1
        self.root_url = ""  # http://127.0.0.1:PORT
        self.mock_url = ""  # http://127.0.0.1:MOCKPORT/v1
        self.account = "pytest"
        self.key = ""
        self.procs: list = []

    # ---- CLI -------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(self.binary), "--database", self.db_url]
        if self.config_path.exists():
            argv += ["--config", str(self.config_path)]
        argv += list(args)
        res = subprocess.run(
            argv,
            cwd=str(self.workdir),
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`tokenrouter {' '.join(args)}` exited {res.returncode}\n"
                f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    def create_account(self, name: str, balance_usd: float = 100) -> None:
        self.cli("accounts", "create", name, "--balance", str(balance_usd))

    def create_key(self, account: str) -> str:
        """Mint a key; returns the secret (the last stdout line)."""
        out = self.cli("keys", "create", "--account", account).stdout
        lines = [l.strip() for l in out.strip().splitlines() if l.strip()]
        assert lines, f"keys create printed nothing: {out!r}"
        key = lines[-1]
        assert key.startswith("sk-tr-"), f"unexpected key line {key!r}"
        return key

    def create_key_json(self, account: str) -> dict:
        """Mint a key with --json; returns {"id", "key", "prefix", ...}."""
        out = self.cli("keys", "create", "--account", account, "--json").stdout
        return json.loads(out.strip().splitlines()[-1])

    def account_show(self, name: str) -> dict:
        out = self.cli("accounts", "show", name, "--json").stdout
        return json.loads(out)

    def usage_rows(self, account: str, timeout: float = 5.0, at_least: int = 0) -> list:
        """The gateway's usage records of `account`, oldest first, read from its database
        (polled until there are `at_least` of them: they are written just after the answer)."""
        deadline = time.monotonic() + timeout
        while True:
            con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
            try:
                con.row_factory = sqlite3.Row
                rows = [
                    dict(r)
                    for r in con.execute(
                        "SELECT u.* FROM usage u JOIN accounts a ON a.id = u.account_id "
                        "WHERE a.name = ? ORDER BY u.created_at, u.rowid",
                        (account,),
                    )
                ]
            finally:
                con.close()
            if len(rows) >= at_least or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    # ---- HTTP ------------------------------------------------------------
    def client(self, key: str | None = None, **kw):
        import openai

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, **kw)

    def anthropic(self, key: str | None = None, **kw):
        import anthropic

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 30.0)
        return anthropic.Anthropic(base_url=self.root_url, api_key=key or self.key, **kw)

    def genai(self, key: str | None = None):
        """A `google-genai` client on the gateway's Gemini routes (`/v1beta`)."""
        from google import genai
        from google.genai import types

        options = types.HttpOptions(base_url=self.root_url, timeout=30_000, retry_options=types.HttpRetryOptions(attempts=1))
        return genai.Client(api_key=key or self.key, http_options=options)

    def wait_key_usable(self, key: str, timeout: float = 3.0) -> float:
        """Poll /v1/models with `key` until it answers 200; returns seconds waited."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            last = httpx.get(
                f"{self.base_url}/models",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
                trust_env=False,
            )
            if last.status_code == 200:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(
            f"new key still rejected after {timeout}s: "
            f"{last.status_code if last else None} {last.text if last else ''}"
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def start_mock(binary: Path, workdir: Path) -> tuple:
    """Starts `tokenrouter mock-upstream` on 127.0.0.1:0; returns (proc, base_url)."""
    mock = Proc("mock-upstream", [str(binary), "mock-upstream", "--listen", "127.0.0.1:0"], workdir, workdir)
    try:
        return mock, mock.wait_for(MOCK_RE).group(1)
    except BaseException:
        mock.stop()
        raise


def start_gateway(
    binary: Path, mock_url: str, server: str = "", prefix: str = "tokenrouter-pytest-", extra: str = ""
) -> Gateway:
    """A gateway (own work dir, database, account `pytest` and key) in front of the mock
    at `mock_url`; `server` is extra lines for the config's `[server]` table, `extra` more
    config (models) at the end. The caller stops it with `.stop()`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    gw = Gateway(binary, workdir)
    gw.mock_url = mock_url
    try:
        gw.config_path.write_text(gateway_config(mock_url, server, extra))
        # Account and key exist before the gateway starts.
        gw.create_account(gw.account, 100)
        gw.key = gw.create_key(gw.account)
        proc = Proc(
            "gateway",
            [str(binary), "--database", gw.db_url, "--config", str(gw.config_path), "serve", "--listen", "127.0.0.1:0"],
            workdir,
            workdir,
        )
        gw.procs.append(proc)
        gw.root_url = proc.wait_for(GATEWAY_RE).group(1)
        gw.base_url = gw.root_url + "/v1"
        conformance.watch(gw.root_url)
        return gw
    except BaseException:
        gw.stop()
        raise


# ---- docs/compatibility.md: each suite rewrites its own section. -----------------------

COMPAT_DOC = REPO_ROOT / "docs" / "compatibility.md"
# Sections in the order they appear; each is written by one suite.
COMPAT_SECTIONS = ("python", "node", "codex")
COMPAT_HEADER = """# Compatibility: what each client and API surface does with each provider kind

Generated by the client test suites run by `scripts/test.sh`: the official `openai`,
`anthropic` and `google-genai` Python SDKs (`tests/python`), the official `openai` Node SDK (`tests/node`) and
Codex CLI (`tests/codex`), each through the gateway, against the mock upstream speaking
each provider's own API (OpenAI, Anthropic Messages, Gemini). Do not edit by hand: each
suite rewrites its own section when it runs.

- **pass**: works, checked end to end by the test named in the first column.
- **400**: refused, as it should be, with a clear `invalid_request_error` naming the field:
  the provider's API cannot express it, or (Responses) the request names a response that
  was not kept, or a hosted tool the gateway is configured to refuse.
- **pass-through**: forwarded unchanged to the OpenAI-compatible upstream, which decides.
- **FAIL**: the test failed in the last run; **not run**: the last run did not include it.

In the Python and Node suites, every answer and every streamed event the gateway sends is also checked
against the published shape of its API (`tests/schemas`, differences listed in
`tests/schemas/EXCEPTIONS.md`): a test fails if one does not conform.

Known differences, by design (tested in `crates/server/tests/it`):
- `/v1/messages` with Anthropic's server tools (`web_search_20250305`, …): an Anthropic
  upstream is sent the client's own body and answers as itself (server tool blocks, its
  own `id` and `model`); other upstreams never see those tools (dropped, named in
  `X-TokenRouter-Dropped-Tools`). Only web search and fetch go that way (other server
  tools dropped, named); a request with other top-level fields than the gateway reads
  (and `top_k`) or `cache_control.ttl: "1h"` is translated instead (its server tools
  dropped, named), and `anthropic-beta` values but `web-fetch-2025-09-10` are left out. Web searches and fetches are charged per call, at most as many as offered, and held
  for (`max_uses`, sent as 10 when absent; 20,000 input tokens per fetch). OpenAI
  Responses `web_search` runs only on a `responses_api` upstream (held for
  `max_tool_calls`, sent as 10 when absent); Gemini's `googleSearch` is never forwarded.
- `parallel_tool_calls: false` with a Gemini upstream: Gemini cannot be told to make one
  call, so the gateway keeps the first call of each answer and drops the others; the
  dropped calls' tokens (their name and arguments, 4 characters a token) are taken out of
  the answer's `completion_tokens` and are not billed.
- Which stop sequence ended an answer (`/v1/messages` `stop_reason: "stop_sequence"`, Chat
  Completions `choices[].stop_reason`) is said only when the upstream says it: Anthropic
  and vLLM-like servers do; Gemini (`finishReason: STOP`) and OpenAI do not, so such an
  answer says `end_turn` (the text is still cut before the sequence).
"""


def table(columns: list, rows: list, cells: dict) -> list:
    """Markdown lines of a feature × column table; `cells[(row, column)]` is the outcome."""
    lines = ["| feature | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cells.get((row, c), "not run") for c in columns) + " |")
    return lines


def write_compat_section(name: str, body: str) -> None:
    """Replaces section `name` of docs/compatibility.md, keeping the others."""
    assert name in COMPAT_SECTIONS, name
    sections: dict = {}
    if COMPAT_DOC.exists():
        text = COMPAT_DOC.read_text()
        for s in COMPAT_SECTIONS:
            m = re.search(rf"<!-- section:{s} -->\n(.*?)<!-- /section:{s} -->\n", text, re.S)
            if m:
                sections[s] = m.group(1)
    sections[name] = body.rstrip("\n") + "\n"
    out = [COMPAT_HEADER]
    for s in COMPAT_SECTIONS:
        if s in sections:
            out.append(f"<!-- section:{s} -->\n{sections[s]}<!-- /section:{s} -->\n")
    COMPAT_DOC.parent.mkdir(exist_ok=True)
    COMPAT_DOC.write_text("\n".join(out))
