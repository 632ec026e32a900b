"""The Anthropic Messages API inbound (`/v1/messages`, what Claude Code speaks) with the
official `anthropic` Python SDK, for every provider kind: `Anthropic(base_url=GATEWAY,
api_key=KEY)`. Each test asserts what a user of the SDK would notice and records its cell
of docs/compatibility.md."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from clients import anthropic_message, filler, fixture, in_order, sse_events
from conftest import feature, record_matrix
from test_providers import PIXEL

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
FEATURES = [
    "text",
    "stream helper (text_stream = final text)",
    "tool use round trip",
    "tool use, stream",
    "tool_choice (any, tool, none)",
    "image (base64 block)",
    "max_tokens → stop_reason max_tokens",
    "upstream fails mid-stream → error event",
    "upstream 500 → 502, Anthropic-shaped",
    "thinking (enabled, budget_tokens)",
    "thinking + tool use round trip",
    "count_tokens",
    "Claude Code body (~105 KB, ?beta=true): tool call, then answer",
]
MATRIX = {
    "id": "messages",
    "title": "Anthropic Messages API (`/v1/messages`, official `anthropic` Python SDK)",
    "intro": "`tests/python/test_anthropic_sdk.py`: the client speaks Anthropic Messages; the gateway translates it for OpenAI and Gemini upstreams.",
    "columns": list(PROVIDERS),
    "rows": FEATURES,
}
ALL = pytest.mark.parametrize("provider", list(PROVIDERS))
TABLE = "messages"

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
STREAM_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "prompt-caching-scope-2026-01-05,effort-2025-11-24,fine-grained-tool-streaming-2025-05-14",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.0 (external, cli)",
    "accept": "application/json",
}


def cell(feature_name: str, provider: str, outcome: str = "pass") -> None:
    record_matrix(feature_name, provider, outcome, TABLE)


def _blocks(message, kind: str) -> list:
    return [b for b in message.content if b.type == kind]


def _text(message) -> str:
    return "".join(b.text for b in _blocks(message, "text"))


@ALL
@feature("text", TABLE)
def test_text(anthropic_client, provider):
    m = anthropic_client.messages.create(
        model=PROVIDERS[provider], max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.id.startswith("msg_"), m.id
    assert m.model == PROVIDERS[provider]
    assert _text(m).strip()
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    cell("text", provider)


@ALL
@feature("stream helper (text_stream = final text)", TABLE)
def test_stream_helper(anthropic_client, provider):
    model = PROVIDERS[provider]
    args = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "Stream something"}]}
    whole = anthropic_client.messages.create(**args)
    with anthropic_client.messages.stream(**args) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == _text(final) == _text(whole)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    cell("stream helper (text_stream = final text)", provider)


@ALL
@feature("tool use round trip", TABLE)
def test_tool_round_trip(anthropic_client, provider):
    model = PROVIDERS[provider]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = anthropic_client.messages.create(model=model, max_tokens=512, messages=messages, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    (use,) = _blocks(first, "tool_use")
    assert use.name == "get_weather" and use.id
    assert use.input == {"city": "mock"}
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 degrees"}]},
    ]
    second = anthropic_client.messages.create(model=model, max_tokens=512, messages=messages, tools=[WEATHER])
    assert second.stop_reason == "end_turn" and not _blocks(second, "tool_use")
    assert _text(second).strip()
    cell("tool use round trip", provider)


@ALL
@feature("tool use, stream", TABLE)
def test_tool_use_stream(anthropic_client, provider):
    model = PROVIDERS[provider]
    args = {"model": model, "max_tokens": 512, "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER]}
    partial = []
    with anthropic_client.messages.stream(**args) as stream:
        for event in stream:
            if event.type == "input_json":
                partial.append(event.partial_json)
        final = stream.get_final_message()
    (use,) = _blocks(final, "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "mock"}
    assert json.loads("".join(partial)) == use.input
    assert final.stop_reason == "tool_use"
    cell("tool use, stream", provider)


@ALL
@feature("tool_choice (any, tool, none)", TABLE)
def test_tool_choice(anthropic_client, provider):
    time_tool = {"name": "get_time", "description": "Time in a zone", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
    args = {"model": PROVIDERS[provider], "max_tokens": 512, "messages": [{"role": "user", "content": "Weather and time?"}], "tools": [WEATHER, time_tool]}
    any_ = anthropic_client.messages.create(tool_choice={"type": "any"}, **args)
    assert [b.name for b in _blocks(any_, "tool_use")] == ["get_weather", "get_time"]
    one = anthropic_client.messages.create(tool_choice={"type": "tool", "name": "get_time"}, **args)
    assert [(b.name, b.input) for b in _blocks(one, "tool_use")] == [("get_time", {"tz": "mock"})]
    none = anthropic_client.messages.create(tool_choice={"type": "none"}, **args)
    assert not _blocks(none, "tool_use") and _text(none).strip() and none.stop_reason == "end_turn"
    cell("tool_choice (any, tool, none)", provider)


@ALL
@feature("image (base64 block)", TABLE)
def test_image(anthropic_client, provider):
    m = anthropic_client.messages.create(
        model=PROVIDERS[provider],
        max_tokens=256,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                    {"type": "text", "text": "What is in this image?"},
                ],
            }
        ],
    )
    assert _text(m).strip() and m.stop_reason == "end_turn"
    cell("image (base64 block)", provider)


@ALL
@feature("max_tokens → stop_reason max_tokens", TABLE)
def test_max_tokens(anthropic_client, provider):
    args = {"model": PROVIDERS[provider], "max_tokens": 3, "messages": [{"role": "user", "content": "Write a long story"}]}
    m = anthropic_client.messages.create(**args)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens <= 3 and _text(m).strip()
    with anthropic_client.messages.stream(**args) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and _text(final) == _text(m)
    cell("max_tokens → stop_reason max_tokens", provider)


@ALL
@feature("upstream fails mid-stream → error event", TABLE)
def test_mid_stream_failure(anthropic_client, provider):
    """The answer had begun; the SDK raises instead of returning a truncated message."""
    for fault in ("stream_error", "cut"):
        seen = []
        with pytest.raises(anthropic.APIStatusError) as e:
            with anthropic_client.messages.stream(model=f"messages-fault-{provider}-{fault}", max_tokens=256, messages=[{"role": "user", "content": "hi"}]) as stream:
                for event in stream:
                    seen.append(event.type)
        assert "message_start" in seen and "message_stop" not in seen, seen
        assert e.value.body["type"] == "error" and e.value.body["error"]["message"], e.value.body
    cell("upstream fails mid-stream → error event", provider)


@ALL
@feature("upstream 500 → 502, Anthropic-shaped", TABLE)
def test_upstream_500(anthropic_client, provider):
    for stream in (False, True):
        with pytest.raises(anthropic.InternalServerError) as e:
            anthropic_client.messages.create(
                model=f"messages-fault-{provider}-500", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=stream
            )
        assert e.value.status_code == 502
        assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "api_error", e.value.body
    cell("upstream 500 → 502, Anthropic-shaped", provider)


@ALL
@feature("thinking (enabled, budget_tokens)", TABLE)
def test_thinking(anthropic_client, provider):
    args = {
        "model": PROVIDERS[provider],
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "Think first"}],
    }
    m = anthropic_client.messages.create(**args)
    kinds = [b.type for b in m.content]
    assert kinds[0] == "thinking" and "text" in kinds, kinds
    assert m.content[0].thinking.strip()
    assert _text(m).strip()
    with anthropic_client.messages.stream(**args) as stream:
        thoughts = [e.thinking for e in stream if e.type == "thinking"]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == kinds
    assert "".join(thoughts) == final.content[0].thinking
    cell("thinking (enabled, budget_tokens)", provider)


@ALL
@feature("thinking + tool use round trip", TABLE)
def test_thinking_tool_round_trip(anthropic_client, provider):
    """Thinking blocks handed back with the tool result let the turn continue (Anthropic
    refuses a tool result whose thinking was dropped)."""
    model = PROVIDERS[provider]
    args = {"model": model, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048}, "tools": [WEATHER]}
    messages = [{"role": "user", "content": "Weather in Paris? Think first."}]
    first = anthropic_client.messages.create(messages=messages, **args)
    kinds = [b.type for b in first.content]
    assert kinds[0] == "thinking" and "tool_use" in kinds, kinds
    if provider == "anthropic":
        assert first.content[0].signature
    (use,) = _blocks(first, "tool_use")
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    second = anthropic_client.messages.create(messages=messages, **args)
    assert _text(second).strip() and second.stop_reason == "end_turn"
    cell("thinking + tool use round trip", provider)


@ALL
@feature("count_tokens", TABLE)
def test_count_tokens(anthropic_client, provider):
    model = PROVIDERS[provider]
    short = anthropic_client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
    long = anthropic_client.messages.count_tokens(
        model=model,
        system="You are a helpful assistant who answers questions about the weather.",
        messages=[{"role": "user", "content": "hi " * 200}],
        tools=[WEATHER],
    )
    assert short.input_tokens > 0
    assert long.input_tokens > short.input_tokens + 150
    cell("count_tokens", provider)


@ALL
@feature("Claude Code body (~105 KB, ?beta=true): tool call, then answer", TABLE)
def test_claude_code_body(gateway, provider):
    """Claude Code's own bodies: `system` blocks with cache_control, a `role: "system"`
    message, `thinking: {type: adaptive}`, `output_config`, `context_management`,
    `metadata.user_id`, 24 tools, max_tokens 64000, streamed; with its headers."""
    headers = dict(CLAUDE_CODE_HEADERS, **{"x-api-key": gateway.key})
    url = f"{gateway.root_url}/v1/messages?beta=true"

    assert httpx.head(gateway.root_url + "/", timeout=10, trust_env=False).status_code == 200

    def post(body):
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60, trust_env=False) as r:
            if r.status_code != 200:
                r.read()
                raise AssertionError(f"{r.status_code}: {r.text}")
            return sse_events(r)

    first = fixture("messages.claude-cli__claude_0002.json")
    first["model"] = PROVIDERS[provider]
    # Plus a pasted file, as when a user asks about one: ~105 KB in all.
    first["messages"][0]["content"].insert(1, {"type": "text", "text": "<file>" + filler(30_000, 7) + "</file>"})
    assert len(json.dumps(first)) > 100_000
    events = post(first)
    names = [name for name, _ in events]
    assert in_order(names, STREAM_EVENTS) and names[-1] == "message_stop", names
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    uses = [b for b in starts if b["type"] == "tool_use"]
    assert [u["name"] for u in uses] == ["Agent"], starts
    (delta,) = [d for n, d in events if n == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] > 0

    # Its second turn: its answer (thinking included) and the tool's result, answered
    # with text. Non-stream this time.
    answer = anthropic_message(events)
    (use,) = [b for b in answer["content"] if b["type"] == "tool_use"]
    assert use["input"] == {"description": "mock", "prompt": "mock"}, use
    second = fixture("messages.claude-cli__claude_tool_0003.json")
    assert second["messages"][2]["role"] == "assistant" and second["messages"][3]["content"][0]["type"] == "tool_result"
    second["messages"][2] = {"role": "assistant", "content": answer["content"]}
    second["messages"][3]["content"][0].update(tool_use_id=use["id"], content="the agent is done")
    second.update(model=PROVIDERS[provider], stream=False)
    r = httpx.post(url, json=second, headers=headers, timeout=60, trust_env=False)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "message" and body["stop_reason"] == "end_turn", body
    assert any(b["type"] == "text" and b["text"].strip() for b in body["content"]), body
    assert body["usage"]["input_tokens"] > 5_000
    cell("Claude Code body (~105 KB, ?beta=true): tool call, then answer", provider)


# ---- not per provider -------------------------------------------------------------------


def test_bearer_auth_too(gateway):
    """`auth_token=` (Authorization: Bearer, what ANTHROPIC_AUTH_TOKEN does) works like x-api-key."""
    client = anthropic.Anthropic(base_url=gateway.root_url, auth_token=gateway.key, max_retries=0, timeout=30)
    m = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert _text(m)


def test_bad_key_is_authentication_error(gateway):
    bad = gateway.anthropic(key="sk-tr-doesnotexist_" + "x" * 40)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
    assert e.value.body["error"]["message"]


def test_unknown_model_is_not_found(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(model="no-such-model-xyz", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model-xyz" in e.value.body["error"]["message"]


def test_malformed_body_is_invalid_request(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages="not a list")
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_messages_headers_and_billing(gateway):
    """Answers carry the gateway's headers, and the account pays for them."""
    account = "pytest-messages"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    client = gateway.anthropic(key=key)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "bill me"}]
    )
    assert raw.headers.get("x-tokenrouter-provider") == "mock-anthropic"
    assert raw.headers.get("x-request-id")
    rows = gateway.usage_rows(account, at_least=1)
    assert len(rows) == 1 and rows[0]["cost_nano"] > 0, rows
    m = raw.parse()
    assert rows[0]["prompt_tokens"] == m.usage.input_tokens
    assert rows[0]["completion_tokens"] == m.usage.output_tokens
