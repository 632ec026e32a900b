"""Codex CLI (`codex exec`, Responses API) through the gateway, for each provider kind.

The model `codex-mock-KIND` (see tests/python/harness.py) is the mock with the `calls=1`
knob: on the first turn it calls Codex's first function tool (`exec_command` with
`{"cmd": "mock"}`); Codex runs it and sends the `function_call_output` back in a second
request; the mock, whose last input is now a tool result, answers with text, which Codex
prints before exiting 0. Codex gets a throwaway HOME and CODEX_HOME, so nothing of the
user's configuration, credentials or history is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import KEEP, record
from harness import REPO_ROOT, child_env

PROVIDERS = {"openai": "codex-mock-openai", "anthropic": "codex-mock-anthropic", "gemini": "codex-mock-gemini"}
ROWS = [
    "exec --json: a tool call, its output sent back, the answer",
    "exec: the answer printed on stdout",
]
CODEX_TIMEOUT_S = 120
_PINNED = json.loads((Path(__file__).parent / "package.json").read_text())["dependencies"]["@openai/codex"]
CODEX_VERSION_NOTE = f"{_PINNED}"


def _codex() -> str:
    path = os.environ.get("CODEX_BIN") or str(Path(__file__).parent / "node_modules" / ".bin" / "codex")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.exit(f"codex not found at {path}; run scripts/codex-tests.sh (it installs it) or set CODEX_BIN", returncode=1)
    return path


def _run_codex(gateway, model: str, key: str, prompt: str, json_events: bool = True) -> tuple:
    """Runs `codex exec` (with `--json` unless told otherwise) in a fresh home; returns
    (completed process, JSON events, the last message Codex wrote to --output-last-message)."""
    # Not under /tmp: Codex refuses to create its helper binaries under a temporary dir.
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tokenrouter"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="codex-home-", dir=base))
    try:
        home, codex_home, work = root / "home", root / "home" / ".codex", root / "work"
        for d in (codex_home, work):
            d.mkdir(parents=True)
        last_message = root / "last-message.txt"
        env = child_env()
        for var in list(env):
            if var.startswith(("CODEX_", "OPENAI_", "XDG_")):
                del env[var]
        env.update(HOME=str(home), CODEX_HOME=str(codex_home), GW_API_KEY=key, RUST_LOG="warn")
        provider = (
            f'model_providers.gw={{name="gw",base_url="{gateway.base_url}",env_key="GW_API_KEY",'
            'wire_api="responses",request_max_retries=0,stream_max_retries=0}'
        )
        argv = [
            _codex(), "exec", *(["--json"] if json_events else []), "--skip-git-repo-check", "--ephemeral",
            "-c", "model_provider=gw", "-c", f"model={model}", "-c", provider,
            # Nothing but the gateway: no plugin or app sync, no update check, no analytics.
            "--disable", "plugins", "--disable", "remote_plugin", "--disable", "apps",
            "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false",
            "--output-last-message", str(last_message),
            prompt,
        ]  # fmt: skip
        # Its own process group: on timeout, the node wrapper and the native binary both go.
        child = subprocess.Popen(
            argv,
            cwd=str(work),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = child.communicate(timeout=CODEX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, err = child.communicate()
            pytest.fail(f"codex did not finish within {CODEX_TIMEOUT_S} s\n--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}")
        proc = subprocess.CompletedProcess(argv, child.returncode, out, err)
        events = []
        for line in proc.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        text = last_message.read_text() if last_message.exists() else None
        return proc, events, text
    finally:
        if KEEP:
            print(f"\n[tokenrouter codex] codex home kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _row(name):
    def mark(test):
        test.matrix_row = name
        return test

    return mark


@pytest.mark.parametrize("provider", list(PROVIDERS))
@_row(ROWS[0])
def test_codex_exec_runs_a_tool_and_prints_the_answer(gateway, provider):
    account = f"codex-{provider}"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)

    proc, events, last_message = _run_codex(gateway, PROVIDERS[provider], key, "Run the command `echo hi`, then tell me what it printed.")
    report = (
        f"codex exited {proc.returncode}\n--- stdout (JSON events) ---\n{proc.stdout[-6000:]}\n"
        f"--- stderr ---\n{proc.stderr[-4000:]}\n--- gateway log ---\n{gateway.procs[-1].log_text()[-3000:]}"
    )
    assert proc.returncode == 0, report

    completed = [e["item"] for e in events if e.get("type") == "item.completed"]
    commands = [i for i in completed if i.get("type") == "command_execution"]
    assert len(commands) == 1, f"expected one command execution, got {commands}\n{report}"
    assert "mock" in commands[0].get("command", ""), f"the mock's tool call runs `mock`: {commands[0]}"

    answers = [i for i in completed if i.get("type") == "agent_message"]
    assert answers and answers[-1].get("text", "").strip(), f"no final answer\n{report}"
    assert last_message is not None and last_message.strip() == answers[-1]["text"].strip(), (
        f"the printed last message {last_message!r} differs from the answer {answers[-1]!r}"
    )
    assert any(e.get("type") == "turn.completed" for e in events), report
    assert not [e for e in events if e.get("type") in ("error", "turn.failed")], report

    # The gateway served exactly two Responses API turns: the tool call, then (with the
    # function_call_output appended to the history) the answer.
    rows = [r for r in gateway.usage_rows(account, at_least=2) if "responses" in r["endpoint"]]
    assert len(rows) == 2, f"expected 2 /v1/responses requests, usage rows: {rows}"
    assert all(r["status"] == 200 and r["stream"] for r in rows), rows
    assert all(r["model"] == PROVIDERS[provider] for r in rows), rows
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"], (
        f"the second request should carry the tool call and its output on top of the first's input: {rows}"
    )
    record(ROWS[0], provider, "pass")


@pytest.mark.parametrize("provider", list(PROVIDERS))
@_row(ROWS[1])
def test_codex_exec_prints_the_answer(gateway, provider):
    """What a person running `codex exec` sees: the model's final answer on stdout."""
    account = f"codex-plain-{provider}"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    proc, _, last_message = _run_codex(gateway, PROVIDERS[provider], key, "Run `echo hi` and report.", json_events=False)
    assert proc.returncode == 0, f"codex exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert last_message and last_message.strip(), proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(last_message.strip()), f"stdout: {proc.stdout!r}\nanswer: {last_message!r}"
    assert len(gateway.usage_rows(account, at_least=2)) == 2
    record(ROWS[1], provider, "pass")
