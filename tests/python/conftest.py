"""Shared fixtures: a mock upstream and gateways in front of it, one per session.

The processes listen on 127.0.0.1:0; their ports are read from their log lines (see
harness.py). Nothing here touches the internet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import conformance
from harness import binary_path, fault_models, local_no_proxy, start_gateway, start_mock, table, write_compat_section


def _binary():
    path = binary_path()
    if path is None:
        pytest.exit(
            "tokenrouter binary not found; run `cargo build -p tokenrouter` or set TOKENROUTER_BIN",
            returncode=1,
        )
    return path


conformance.install()


@pytest.fixture(autouse=True)
def conformant_answers():
    """Fails the test if any answer a gateway gave during it breaks the published shape of
    its API surface (tests/schemas; see conformance.py)."""
    conformance.take_violations()
    yield
    found = conformance.take_violations()
    if found:
        pytest.fail("answers that break their API's published shape:\n" + "\n".join(found[:20]), pytrace=False)


@pytest.fixture(scope="session")
def mock_upstream():
    """(binary, mock base URL): one mock for every gateway of the session."""
    local_no_proxy()
    binary = _binary()
    workdir = Path(tempfile.mkdtemp(prefix="tokenrouter-pytest-mock-"))
    proc, url = start_mock(binary, workdir)
    try:
        yield binary, url
    finally:
        proc.stop()
        if os.environ.get("TOKENROUTER_KEEP_TMP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def _gateway(mock_upstream, server: str = "", extra: str = ""):
    binary, url = mock_upstream
    gw = start_gateway(binary, url, server, extra=extra)
    try:
        yield gw
    finally:
        gw.stop()
        if os.environ.get("TOKENROUTER_KEEP_TMP") != "1":
            shutil.rmtree(gw.workdir, ignore_errors=True)
        else:
            print(f"\n[tokenrouter pytest] logs and database kept in {gw.workdir}")


@pytest.fixture(scope="session")
def gateway(mock_upstream):
    """The gateway with the default server settings (and models that always fail)."""
    yield from _gateway(mock_upstream, extra=fault_models(("responses", "messages", "gemini", "chat", "completions")))


@pytest.fixture(scope="session")
def strict_gateway(mock_upstream):
    """A second gateway that refuses hosted tools and keeps stored responses two seconds."""
    yield from _gateway(mock_upstream, 'unsupported_tools = "reject"\nresponse_retention_secs = 2')


@pytest.fixture(scope="session")
def client(gateway):
    return gateway.client()


@pytest.fixture(scope="session")
def anthropic_client(gateway):
    return gateway.anthropic()


# ---- The compatibility matrix (docs/compatibility.md), written from this run's results. ----
#
# Each module named in _TABLE_MODULES defines MATRIX = {"id", "title", "intro", "columns",
# "rows"}; its tests are tagged with @feature(table_id, row) and parametrized over
# `provider` (a column), and call record_matrix once their assertions passed.

_TABLE_MODULES = ("test_providers", "test_responses", "test_anthropic_sdk", "test_genai_sdk", "test_completions_embeddings")
_MATRIX: dict = {}


def record_matrix(feature: str, provider: str, outcome: str, table: str = "chat") -> None:
    """Tests of the provider matrix call this once their assertions passed."""
    _MATRIX[(table, feature, provider)] = outcome


def feature(name: str, table: str = "chat"):
    """Names the matrix row a test fills (a failing test shows FAIL in that row)."""

    def mark(test):
        test.matrix_feature = (table, name)
        return test

    return mark


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("matrix")
    if marker and report.failed and report.when in ("setup", "call"):
        table, name, provider = marker.args
        _MATRIX[(table, name, provider)] = "FAIL"


def pytest_collection_modifyitems(items):
    """Tie each provider-matrix test to its cell, so a failure shows as FAIL in the doc."""
    for item in items:
        tagged = getattr(getattr(item, "function", None), "matrix_feature", None)
        provider = getattr(item, "callspec", None) and item.callspec.params.get("provider")
        if tagged and provider:
            table, name = tagged if isinstance(tagged, tuple) else ("chat", tagged)
            item.add_marker(pytest.mark.matrix(table, name, provider))


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix(table, feature, provider): a cell of docs/compatibility.md")
    # The anthropic SDK warns on every call naming a model it knows to be retiring.
    config.addinivalue_line("filterwarnings", "ignore:The model .* is deprecated:DeprecationWarning")


def pytest_sessionfinish(session, exitstatus):
    if not _MATRIX:
        return
    import importlib

    lines: list = []
    for module_name in _TABLE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        spec = module.MATRIX
        cells = {(f, p): o for (t, f, p), o in _MATRIX.items() if t == spec["id"]}
        lines += [f"## {spec['title']}", "", spec["intro"].strip(), ""]
        lines += table(list(spec["columns"]), list(spec["rows"]), cells)
        lines.append("")
    write_compat_section("python", "\n".join(lines))
