"""Helpers for sending what real clients send: recorded bodies (tests/python/fixtures) made
sendable again, and a plain SSE reader for checking streams byte by byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_PLACEHOLDER = re.compile(r"^<text (\d+) chars>$")
_WORDS = (
    "the quick brown fox jumps over a lazy dog while every tool call and its output "
    "travel through the gateway to the upstream and back again without loss"
).split()

# Placeholders whose real value matters to a server, by the key that holds them.
_KNOWN = {
    "include": "reasoning.encrypted_content",
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "arguments": '{"cmd":"echo hi","workdir":"/tmp","yield_time_ms":1000}',
}


def filler(n: int, seed: int = 0) -> str:
    """Plain English-looking text of exactly `n` characters."""
    out: list = []
    size = 0
    i = seed
    while size < n:
        word = _WORDS[i % len(_WORDS)]
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)[:n]


def expand(value, key: str | None = None, _counter=None):
    """`value` with every `<text N chars>` replaced by text of N characters (or, where the
    key says what the value must be, by a real value of that kind)."""
    counter = _counter if _counter is not None else [0]
    if isinstance(value, dict):
        return {k: expand(v, k, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, key, counter) for v in value]
    if isinstance(value, str):
        m = _PLACEHOLDER.match(value)
        if not m:
            return value
        if key in _KNOWN:
            return _KNOWN[key]
        counter[0] += 1
        if key == "id":
            return f"msg_{counter[0]:08d}".ljust(int(m.group(1)), "0")
        return filler(int(m.group(1)), counter[0])
    return value


def fixture(name: str) -> dict:
    """A recorded request body, expanded."""
    return expand(json.loads((FIXTURES / name).read_text()))


def sse_events(response: httpx.Response) -> list:
    """Reads a whole SSE stream: [(event name or None, parsed JSON data or raw string)]."""
    events = []
    name = None
    data: list = []
    for line in response.iter_lines():
        if line == "":
            if data:
                raw = "\n".join(data)
                try:
                    parsed = json.loads(raw)
                except json.JSONDecodeError:
                    parsed = raw
                events.append((name, parsed))
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        raw = "\n".join(data)
        try:
            events.append((name, json.loads(raw)))
        except json.JSONDecodeError:
            events.append((name, raw))
    return events


def in_order(seen: list, expected: list) -> bool:
    """Whether the first occurrence of each of `expected` is in `seen`, in that order."""
    positions = []
    for e in expected:
        if e not in seen:
            return False
        positions.append(seen.index(e))
    return positions == sorted(positions)


def anthropic_message(events: list) -> dict:
    """The message an Anthropic Messages stream carried, rebuilt from its events the way a
    client does (blocks from content_block_start, grown by each delta)."""
    message: dict = {}
    partial_json: dict = {}
    for name, data in events:
        if not isinstance(data, dict):
            continue
        kind = data.get("type", name)
        if kind == "message_start":
            message = dict(data["message"], content=[])
        elif kind == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = block.get("signature", "") + delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial_json[data["index"]] = partial_json.get(data["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and data["index"] in partial_json:
            message["content"][data["index"]]["input"] = json.loads(partial_json.pop(data["index"]) or "{}")
        elif kind == "message_delta":
            message.update(data.get("delta", {}))
            message["usage"] = dict(message.get("usage", {}), **data.get("usage", {}))
    return message
