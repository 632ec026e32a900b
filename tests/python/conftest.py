"""Shared fixtures: a mock upstream and a gateway in front of it, one per session.

Both processes listen on 127.0.0.1:0; their ports are read from their log lines.
Nothing here touches the internet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

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
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY",
)


def _local_no_proxy() -> None:
    """Make sure HTTP clients in this process never send 127.0.0.1 via a proxy."""
    for var in ("NO_PROXY", "no_proxy"):
        cur = os.environ.get(var, "")
        parts = [p for p in cur.split(",") if p]
        for host in ("127.0.0.1", "localhost"):
            if host not in parts:
                parts.append(host)
        os.environ[var] = ",".join(parts)


def _binary() -> Path:
    env_bin = os.environ.get("TOKENROUTER_BIN")
    path = Path(env_bin) if env_bin else REPO_ROOT / "target" / "debug" / "tokenrouter"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(
            f"tokenrouter binary not found at {path}; run `cargo build -p tokenrouter` "
            "or set TOKENROUTER_BIN",
            returncode=1,
        )
    return path


def _child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env["NO_COLOR"] = "1"
    return env


class _Proc:
    """A background process whose stderr goes to a file we can scan."""

    def __init__(self, name: str, argv: list, cwd: Path, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.stderr.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=_child_env(),
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
        self.db_url = f"sqlite://{workdir / 'tokenrouter.db'}"
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
            env=_child_env(),
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

    # ---- HTTP ------------------------------------------------------------
    def client(self, key: str | None = None, **kw):
        import openai

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, **kw)

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


@pytest.fixture(scope="session")
def gateway():
    _local_no_proxy()
    binary = _binary()
    workdir = Path(tempfile.mkdtemp(prefix="tokenrouter-pytest-"))
    gw = Gateway(binary, workdir)
    ok = False
    try:
        mock = _Proc(
            "mock-upstream",
            [str(binary), "mock-upstream", "--listen", "127.0.0.1:0"],
            workdir,
            workdir,
        )
        gw.procs.append(mock)
        m = mock.wait_for(MOCK_RE)
        gw.mock_url = m.group(1)

        gw.config_path.write_text(
            f"""
[[providers]]
name = "mock"
kind = "openai"
base_url = "{gw.mock_url}"

[[models]]
id = "gpt-4o-mini"
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt" }} ]

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "{gw.mock_url}"
api_key = "mock-anthropic-key"

[[providers]]
name = "mock-gemini"
kind = "gemini"
base_url = "{gw.mock_url.removesuffix('/v1')}/v1beta"
api_key = "mock-gemini-key"

[[models]]
id = "claude-sonnet-4-5"
deployments = [ {{ provider = "mock-anthropic", upstream_model = "claude-mock" }} ]

[[models]]
id = "gemini-2.5-pro"
deployments = [ {{ provider = "mock-gemini", upstream_model = "gemini-mock" }} ]
"""
        )

        # Account and key exist before the gateway starts.
        gw.create_account(gw.account, 100)
        gw.key = gw.create_key(gw.account)

        server = _Proc(
            "gateway",
            [
                str(binary),
                "--database",
                gw.db_url,
                "--config",
                str(gw.config_path),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ],
            workdir,
            workdir,
        )
        gw.procs.append(server)
        m = server.wait_for(GATEWAY_RE)
        gw.root_url = m.group(1)
        gw.base_url = gw.root_url + "/v1"
        ok = True
        yield gw
    finally:
        gw.stop()
        if ok and os.environ.get("TOKENROUTER_KEEP_TMP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"\n[tokenrouter pytest] logs and database kept in {workdir}")


@pytest.fixture(scope="session")
def client(gateway):
    return gateway.client()


# ---- The compatibility matrix (docs/compatibility.md), written from this run's results. ----

_MATRIX: dict = {}


def record_matrix(feature: str, provider: str, outcome: str) -> None:
    """Tests of the provider matrix call this once their assertions passed."""
    _MATRIX[(feature, provider)] = outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("matrix")
    if marker and report.when == "call" and report.failed:
        feature, provider = marker.args
        _MATRIX[(feature, provider)] = "FAIL"


def pytest_collection_modifyitems(items):
    """Tie each provider-matrix test to its cell, so a failure shows as FAIL in the doc."""
    for item in items:
        feature = getattr(item.function, "matrix_feature", None)
        provider = getattr(item, "callspec", None) and item.callspec.params.get("provider")
        if feature and provider:
            item.add_marker(pytest.mark.matrix(feature, provider))


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix(feature, provider): a cell of docs/compatibility.md")


def pytest_sessionfinish(session, exitstatus):
    if not _MATRIX:
        return
    import test_providers  # the matrix's rows and columns live beside its tests

    lines = [
        "# Compatibility: feature × provider",
        "",
        "Generated by `tests/python/test_providers.py` (the official `openai` Python SDK, through the",
        "gateway, against the mock upstream speaking each provider's own API). Do not edit by hand:",
        "`scripts/test.sh` rewrites it.",
        "",
        "- **pass**: works, checked end to end by the test named in the first column.",
        "- **400**: refused with a clear `invalid_request_error` naming the field, because the",
        "  provider's API cannot express it.",
        "- **pass-through**: forwarded unchanged to the OpenAI-compatible upstream, which decides.",
        "",
        "| feature | " + " | ".join(test_providers.PROVIDERS) + " |",
        "|---|" + "---|" * len(test_providers.PROVIDERS),
    ]
    for feature in test_providers.FEATURES:
        cells = [_MATRIX.get((feature, p), "not run") for p in test_providers.PROVIDERS]
        lines.append(f"| {feature} | " + " | ".join(cells) + " |")
    out = REPO_ROOT / "docs" / "compatibility.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
