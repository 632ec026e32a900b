"""Every provider kind through the gateway with the official `openai` SDK.

The gateway speaks each provider's own API to the mock (Anthropic Messages, Gemini
generateContent, OpenAI pass-through); the client always speaks Chat Completions.
Each test asserts the behaviour and records its cell of docs/compatibility.md.
"""

from __future__ import annotations

import base64
import json

import openai
import pytest

from conftest import record_matrix

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
FEATURES = [
    "text",
    "stream + usage",
    "tools",
    "tools, parallel",
    "tools, stream",
    "tool round trip",
    "image (data URL)",
    "JSON mode",
    "reasoning",
    "reasoning + tool round trip",
    "n > 1",
    "audio input",
]

MATRIX = {
    "id": "chat",
    "title": "Chat Completions (`/v1/chat/completions`, official `openai` Python SDK)",
    "intro": "`tests/python/test_providers.py`: the client speaks Chat Completions; the gateway speaks each provider's own API to the mock.",
    "columns": list(PROVIDERS),
    "rows": FEATURES,
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Time in a city",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
# A 1×1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()

ALL = pytest.mark.parametrize("provider", list(PROVIDERS))


def cell(request, feature, provider, outcome="pass"):
    record_matrix(feature, provider, outcome)


def feature(name):
    """Names the matrix row a test fills (a failing test shows FAIL in that row)."""

    def mark(test):
        test.matrix_feature = name
        return test

    return mark


@ALL
@feature('text')
def test_text(client, provider, request):
    r = client.chat.completions.create(model=PROVIDERS[provider], messages=[{"role": "user", "content": "Say hello"}])
    assert r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if provider != "openai":
        assert r.model == PROVIDERS[provider], "translated answers name the model the client asked for"
        assert r.object == "chat.completion"
    cell(request, "text", provider)


@ALL
@feature('stream + usage')
def test_stream_with_usage(client, provider, request):
    model = PROVIDERS[provider]
    messages = [{"role": "user", "content": "Stream something"}]
    whole = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    chunks = list(
        client.chat.completions.create(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    cell(request, "stream + usage", provider)


@ALL
@feature('tools')
def test_tools(client, provider, request):
    r = client.chat.completions.create(
        model=PROVIDERS[provider], messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER]
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert "city" in json.loads(call.function.arguments)
    cell(request, "tools", provider)


@ALL
@feature('tools, parallel')
def test_parallel_tools(client, provider, request):
    r = client.chat.completions.create(
        model=PROVIDERS[provider],
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
        tools=[WEATHER, TIME],
        tool_choice="required",
    )
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    for c in calls:
        json.loads(c.function.arguments)
    cell(request, "tools, parallel", provider)


@ALL
@feature('tools, stream')
def test_tools_stream(client, provider, request):
    model = PROVIDERS[provider]
    args = {"messages": [{"role": "user", "content": "Weather and time?"}], "tools": [WEATHER, TIME], "tool_choice": "required"}
    whole = client.chat.completions.create(model=model, **args).choices[0].message.tool_calls
    calls: dict = {}
    for chunk in client.chat.completions.create(model=model, stream=True, **args):
        for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            slot["id"] = slot["id"] or d.id
            slot["name"] = slot["name"] or (d.function.name if d.function else None)
            slot["arguments"] += (d.function.arguments or "") if d.function else ""
    assert sorted(calls) == [0, 1], "tool-call indices count calls from 0"
    for index, w in enumerate(whole):
        assert calls[index]["name"] == w.function.name
        assert json.loads(calls[index]["arguments"]) == json.loads(w.function.arguments)
    cell(request, "tools, stream", provider)


@ALL
@feature('tool round trip')
def test_tool_round_trip(client, provider, request):
    model = PROVIDERS[provider]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"})
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    cell(request, "tool round trip", provider)


@ALL
@feature('image (data URL)')
def test_image(client, provider, request):
    r = client.chat.completions.create(
        model=PROVIDERS[provider],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content
    cell(request, "image (data URL)", provider)


@ALL
@feature('JSON mode')
def test_json_mode(client, provider, request):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client.chat.completions.create(
        model=PROVIDERS[provider],
        messages=[{"role": "user", "content": "A city as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
    )
    if provider == "openai":
        # The OpenAI mock ignores response_format; the field reached it unchanged.
        assert r.choices[0].message.content
        cell(request, "JSON mode", provider, "pass-through")
        return
    value = json.loads(r.choices[0].message.content)
    assert isinstance(value, dict) and "city" in value
    assert r.choices[0].finish_reason == "stop"
    cell(request, "JSON mode", provider)


@ALL
@feature('reasoning')
def test_reasoning(client, provider, request):
    r = client.chat.completions.create(
        model=PROVIDERS[provider], messages=[{"role": "user", "content": "Think first"}], reasoning_effort="high"
    )
    message = r.choices[0].message
    assert message.content
    if provider == "openai":
        cell(request, "reasoning", provider, "pass-through")
        return
    extra = message.model_extra or {}
    assert extra.get("reasoning_content"), f"reasoning_content missing: {message}"
    assert r.usage.completion_tokens_details.reasoning_tokens > 0 or provider == "anthropic"
    cell(request, "reasoning", provider)


@ALL
@feature("reasoning + tool round trip")
def test_reasoning_tool_round_trip(client, provider, request):
    """Thinking blocks (with signatures) come back to the client and, handed back, let the
    conversation continue: the Anthropic mock refuses a tool_use turn without them."""
    model = PROVIDERS[provider]
    messages = [{"role": "user", "content": "Weather in Paris? Think first."}]
    args = {"model": model, "tools": [WEATHER], "reasoning_effort": "medium"}
    first = client.chat.completions.create(messages=messages, **args)
    message = first.choices[0].message
    assert message.tool_calls, message
    if provider != "openai":
        blocks = (message.model_extra or {}).get("thinking_blocks")
        assert blocks and all(b.get("signature") for b in blocks), message
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"})
    second = client.chat.completions.create(messages=messages, **args)
    assert second.choices[0].message.content
    cell(request, "reasoning + tool round trip", provider, "pass-through" if provider == "openai" else "pass")

    # Without the thinking blocks, Anthropic refuses the turn: the gateway relays that as a 400.
    if provider == "anthropic":
        stripped = dict(messages[1])
        stripped.pop("thinking_blocks", None)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(messages=[messages[0], stripped, messages[2]], **args)


@ALL
@feature('n > 1')
def test_n_greater_than_one(client, provider, request):
    args = {"model": PROVIDERS[provider], "messages": [{"role": "user", "content": "Two answers"}], "n": 2}
    if provider == "anthropic":
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(**args)
        assert e.value.body["param"] == "n"
        cell(request, "n > 1", provider, "400")
        return
    r = client.chat.completions.create(**args)
    if provider == "openai":
        cell(request, "n > 1", provider, "pass-through")
        return
    assert [c.index for c in r.choices] == [0, 1]
    cell(request, "n > 1", provider)


@ALL
@feature('audio input')
def test_audio_input(client, provider, request):
    audio = {"type": "input_audio", "input_audio": {"data": PIXEL, "format": "wav"}}
    args = {"model": PROVIDERS[provider], "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}]}
    if provider == "openai":
        client.chat.completions.create(**args)
        cell(request, "audio input", provider, "pass-through")
        return
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    assert e.value.body["param"] == "messages[0].content[1]"
    cell(request, "audio input", provider, "400")


@ALL
def test_mid_stream_failure(client, provider):
    """The answer had begun; the client learns it failed (CONTRACTS §4: a last chunk with
    `finish_reason: "error"`, then an error event, which the SDK raises)."""
    for fault in ("stream_error", "cut"):
        chunks = []
        with pytest.raises(openai.APIError) as e:
            for chunk in client.chat.completions.create(
                model=f"chat-fault-{provider}-{fault}", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                chunks.append(chunk)
        assert any(c.choices and c.choices[0].delta.content for c in chunks), (fault, chunks)
        assert "stop" not in [c.choices[0].finish_reason for c in chunks if c.choices], (fault, chunks)
        assert e.value.message, fault
