"""Runs Codex CLI (tests/codex's pinned copy, or CODEX_BIN) with a config.toml that is
exactly the Connect page's Codex snippet, in a throwaway HOME and CODEX_HOME, with the key
in TOKENROUTER_API_KEY as the snippet expects. The model is `codex-mock-openai` (whose mock
calls at most one tool a turn); the provider, its URL and wire API come from the snippet.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from harness import REPO_ROOT, child_env

CODEX_MODEL = "codex-mock-openai"
CODEX_TIMEOUT_S = 120


def codex_binary() -> str:
    path = os.environ.get("CODEX_BIN") or str(REPO_ROOT / "tests" / "codex" / "node_modules" / ".bin" / "codex")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"codex not found at {path}; scripts/browser-tests.sh installs it (or set CODEX_BIN)")
    return path


def selection(config: dict, origin: str) -> list:
    """The `codex exec` options that pick CODEX_MODEL through the snippet's provider: its
    profile for that model when it has one, else `-m`."""
    providers = config.get("model_providers", {})
    ours = [name for name, p in providers.items() if str(p.get("base_url", "")).startswith(origin)]
    assert ours, f"no model provider in the snippet points at {origin}: {providers}"
    for name, profile in config.get("profiles", {}).items():
        if profile.get("model") == CODEX_MODEL:
            return ["--profile", name]
    args = ["-m", CODEX_MODEL]
    if config.get("model_provider") not in ours:
        args += ["-c", f"model_provider={ours[0]}"]
    return args


def run_codex(snippet: str, key: str, origin: str, prompt: str = "Run `echo hi` and report.") -> tuple:
    """(completed process, the last message Codex wrote) of `codex exec` with `snippet`
    as config.toml."""
    config = tomllib.loads(snippet)  # the snippet is valid TOML
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tokenrouter"
    base.mkdir(parents=True, exist_ok=True)
    # Not under /tmp: Codex refuses to create its helper binaries under a temporary dir.
    root = Path(tempfile.mkdtemp(prefix="codex-browser-", dir=base))
    try:
        home, codex_home, work = root / "home", root / "home" / ".codex", root / "work"
        for d in (codex_home, work):
            d.mkdir(parents=True)
        (codex_home / "config.toml").write_text(snippet)
        last = root / "last-message.txt"
        env = child_env()
        for var in list(env):
            if var.startswith(("CODEX_", "OPENAI_", "XDG_", "TOKENROUTER_")):
                del env[var]
        env.update(HOME=str(home), CODEX_HOME=str(codex_home), TOKENROUTER_API_KEY=key, RUST_LOG="warn")
        argv = [
            codex_binary(), "exec", "--skip-git-repo-check", "--ephemeral", *selection(config, origin),
            "--disable", "plugins", "--disable", "remote_plugin", "--disable", "apps",
            "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false",
            "--output-last-message", str(last), prompt,
        ]  # fmt: skip
        child = subprocess.Popen(
            argv, cwd=str(work), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = child.communicate(timeout=CODEX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, err = child.communicate()
            pytest.fail(f"codex did not finish within {CODEX_TIMEOUT_S}s\n{out[-3000:]}\n{err[-3000:]}")
        answer = last.read_text() if last.exists() else None
        return subprocess.CompletedProcess(argv, child.returncode, out, err), answer
    finally:
        shutil.rmtree(root, ignore_errors=True)
