"""Fixtures for the Codex CLI test: the mock and gateway of tests/python/harness.py."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from harness import binary_path, local_no_proxy, start_gateway, start_mock, table, write_compat_section  # noqa: E402

KEEP = os.environ.get("TOKENROUTER_KEEP_TMP") == "1"


@pytest.fixture(scope="session")
def gateway():
    local_no_proxy()
    binary = binary_path()
    if binary is None:
        pytest.exit("tokenrouter binary not found; run `cargo build -p tokenrouter` or set TOKENROUTER_BIN", returncode=1)
    mock_dir = Path(tempfile.mkdtemp(prefix="tokenrouter-codex-mock-"))
    mock, url = start_mock(binary, mock_dir)
    gw = None
    try:
        gw = start_gateway(binary, url, prefix="tokenrouter-codex-")
        yield gw
    finally:
        if gw is not None:
            gw.stop()
        mock.stop()
        for d in [mock_dir] + ([gw.workdir] if gw else []):
            if KEEP:
                print(f"\n[tokenrouter codex] logs and database kept in {d}")
            else:
                shutil.rmtree(d, ignore_errors=True)


# ---- docs/compatibility.md, section "codex" ----

_CELLS: dict = {}


def record(row: str, provider: str, outcome: str) -> None:
    _CELLS[(row, provider)] = outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    row = getattr(getattr(item, "function", None), "matrix_row", None)
    provider = getattr(item, "callspec", None) and item.callspec.params.get("provider")
    if row and provider and report.failed and report.when in ("setup", "call"):
        _CELLS[(row, provider)] = "FAIL"


def pytest_sessionfinish(session, exitstatus):
    if not _CELLS:
        return
    import test_codex_exec as t

    lines = [
        "## Codex CLI",
        "",
        f"`tests/codex/test_codex_exec.py`: `codex exec` {t.CODEX_VERSION_NOTE} with `wire_api = \"responses\"`,"
        " a model whose upstream calls one tool per turn.",
        "",
    ]
    lines += table(list(t.PROVIDERS), t.ROWS, _CELLS)
    write_compat_section("codex", "\n".join(lines))
