"""Boots what the browser tests drive: the mock upstream, the fake GitHub
(`tokenrouter mock-github`) and a gateway signing in with it, all on loopback.

The gateway needs its own address in its config (`public_url`: the OAuth redirect and the
CSRF origin), so its port is chosen before it starts. The config is the one every client
suite uses (tests/python/harness.py) plus GitHub sign-in (the fake's user is an admin) and
`playground-slow`, a model whose mock streams 10 tokens a second.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from harness import Gateway, Proc, gateway_config, start_mock  # noqa: E402

GITHUB_LOGIN = "octocat"
GITHUB_ID = 583231
GITHUB_RE = re.compile(r"mock github listening on (http://127\.0\.0\.1:\d+)")
GATEWAY_RE = re.compile(r"tokenrouter listening on (http://127\.0\.0\.1:\d+)")
# What the playground streams: 30 tokens at 10 a second, so a browser sees it grow.
SLOW_MODEL = "playground-slow"
# A CLI-made account the admin test grants credit to.
OTHER_ACCOUNT = "pytest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extra_config(github_url: str) -> str:
    return f"""
[[models]]
id = "{SLOW_MODEL}"
context_window = 32000
max_output_tokens = 4096
input_price = 2
output_price = 8
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt@tokens_per_second=10,reply_tokens=30" }} ]

[auth.github]
client_id = "browser-tests"
client_secret = "github-secret"
base_url = "{github_url}"
api_base_url = "{github_url}"
admins = ["{GITHUB_LOGIN}"]
"""


class Stack:
    """The running processes and their addresses."""

    def __init__(self, binary: Path):
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="tokenrouter-browser-"))
        self.gateway = Gateway(binary, self.workdir)
        self.github_url = ""
        self.procs: list = []

    @property
    def origin(self) -> str:
        return self.gateway.root_url

    def start(self) -> "Stack":
        mock, mock_url = start_mock(self.binary, self.workdir)
        self.procs.append(mock)
        github = Proc(
            "mock-github",
            [str(self.binary), "mock-github", "--login", GITHUB_LOGIN, "--id", str(GITHUB_ID), "--name", "The Octocat"],
            self.workdir,
            self.workdir,
        )
        self.procs.append(github)
        self.github_url = github.wait_for(GITHUB_RE).group(1)

        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        gw = self.gateway
        gw.mock_url = mock_url
        gw.config_path.write_text(gateway_config(mock_url, f'public_url = "{origin}"', extra_config(self.github_url)))
        gw.create_account(OTHER_ACCOUNT, 5)
        proc = Proc(
            "gateway",
            [str(self.binary), "--database", gw.db_url, "--config", str(gw.config_path), "serve", "--listen", f"127.0.0.1:{port}"],
            self.workdir,
            self.workdir,
        )
        self.procs.append(proc)
        gw.procs.append(proc)
        gw.root_url = proc.wait_for(GATEWAY_RE).group(1)
        gw.base_url = gw.root_url + "/v1"
        assert gw.root_url == origin, (gw.root_url, origin)
        return self

    def logs(self) -> dict:
        return {p.name: p.log_text() for p in self.procs}

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def chromium_binary() -> str:
    """The real browser binary of Debian's `chromium` package (`/usr/bin/chromium` is a
    wrapper script), or CHROMIUM_BIN."""
    env = os.environ.get("CHROMIUM_BIN")
    if env:
        return env
    try:
        files = subprocess.run(["dpkg", "-L", "chromium"], capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"Debian's chromium is not installed (scripts/browser-tests.sh installs it): {e}") from e
    for path in files:
        if path.endswith("/chromium") and os.path.isfile(path) and os.access(path, os.X_OK):
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return path
    raise RuntimeError(f"no chromium executable among the files of the chromium package: {files}")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
