"""The official `openai` Python SDK against the gateway, with the mock upstream behind it."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

MODEL = "gpt-4o-mini"
# Catalog prices for gpt-4o-mini, in nano-USD per token ($0.15 / $0.60 per 1M tokens).
INPUT_NANO_PER_TOKEN = 150
OUTPUT_NANO_PER_TOKEN = 600

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "number"},
                "metric": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric"],
        },
    },
}
# What the mock fills in for each required property.
MOCK_ARGS = {"city": "mock", "days": 1, "metric": True}


def _msgs(text: str = "Say hello.") -> list:
    return [{"role": "user", "content": text}]


def _collect_stream(stream):
    chunks = list(stream)
    assert chunks, "stream produced no chunks"
    return chunks


def _stream_text(chunks) -> str:
    return "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )


def _stream_tool_calls(chunks) -> dict:
    """Reassemble streamed tool calls by index: {index: {id, name, arguments}}."""
    calls: dict = {}
    for c in chunks:
        for choice in c.choices:
            for tc in choice.delta.tool_calls or []:
                cur = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                if tc.id:
                    cur["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        cur["name"] = tc.function.name
                    if tc.function.arguments:
                        cur["arguments"] += tc.function.arguments
    return calls


def _finish_reasons(chunks) -> list:
    return [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]


# ---------------------------------------------------------------- chat ----


def test_chat_non_stream(client):
    resp = client.chat.completions.create(model=MODEL, messages=_msgs())
    assert resp.object == "chat.completion"
    assert resp.id
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason == "stop"
    u = resp.usage
    assert u is not None
    assert u.prompt_tokens > 0
    assert u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_chat_stream_with_usage(client):
    prompt = _msgs("Tell me something deterministic.")
    full = client.chat.completions.create(model=MODEL, messages=prompt)
    chunks = _collect_stream(
        client.chat.completions.create(
            model=MODEL,
            messages=prompt,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert _stream_text(chunks) == full.choices[0].message.content
    assert _finish_reasons(chunks) == ["stop"]

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.prompt_tokens == full.usage.prompt_tokens
    assert last.usage.completion_tokens == full.usage.completion_tokens
    # Only the final chunk carries usage.
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_usage(client):
    prompt = _msgs("Tell me something deterministic.")
    full = client.chat.completions.create(model=MODEL, messages=prompt)
    chunks = _collect_stream(
        client.chat.completions.create(model=MODEL, messages=prompt, stream=True)
    )
    assert _stream_text(chunks) == full.choices[0].message.content
    assert all(c.usage is None for c in chunks), "usage leaked into a stream that did not ask for it"
    assert all(c.choices for c in chunks), "a chunk with empty choices leaked into the stream"
    assert _finish_reasons(chunks) == ["stop"]


# --------------------------------------------------------------- tools ----


def test_tools_non_stream(client):
    resp = client.chat.completions.create(
        model=MODEL, messages=_msgs("What's the weather in Paris?"), tools=[WEATHER_TOOL]
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_mock_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == MOCK_ARGS
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_tools_stream(client):
    prompt = _msgs("What's the weather in Paris?")
    full = client.chat.completions.create(model=MODEL, messages=prompt, tools=[WEATHER_TOOL])
    ref = full.choices[0].message.tool_calls[0]

    chunks = _collect_stream(
        client.chat.completions.create(
            model=MODEL, messages=prompt, tools=[WEATHER_TOOL], stream=True
        )
    )
    calls = _stream_tool_calls(chunks)
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"] and call["id"].startswith("call_mock_")
    assert call["name"] == "get_weather"
    args = json.loads(call["arguments"])  # fragments join into valid JSON
    assert args == json.loads(ref.function.arguments) == MOCK_ARGS
    assert _finish_reasons(chunks) == ["tool_calls"]


def test_tool_round_trip(client):
    messages = _msgs("What's the weather in Paris?")
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]

    messages = messages + [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": json.dumps({"temperature_c": 21, "sky": "clear"}),
        },
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = second.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert isinstance(choice.message.content, str) and choice.message.content.strip()


# -------------------------------------------------------------- models ----


def test_models_list(client):
    models = list(client.models.list())
    by_id = {m.id: m for m in models}
    assert MODEL in by_id, f"{MODEL} missing from {sorted(by_id)}"
    m = by_id[MODEL]
    assert m.object == "model"
    extra = m.model_extra or {}
    d = m.to_dict()
    assert d["context_window"] == extra["context_window"] == 128000
    assert isinstance(d["max_output_tokens"], int) and d["max_output_tokens"] > 0
    assert d["pricing"]["input"] == pytest.approx(0.15)
    assert d["pricing"]["output"] == pytest.approx(0.60)
    assert isinstance(d["capabilities"], list) and "tools" in d["capabilities"]


def test_models_retrieve(client):
    """`models.retrieve` answers the list's entry (schema-checked as OpenAI's `Model`), and
    an unknown id is OpenAI's 404 `model_not_found`."""
    listed = {m.id: m.to_dict() for m in client.models.list()}
    got = client.models.retrieve(MODEL)
    assert got.id == MODEL and got.object == "model"
    assert got.to_dict() == listed[MODEL]
    with pytest.raises(openai.NotFoundError) as ei:
        client.models.retrieve("no-such-model-xyz")
    assert ei.value.status_code == 404
    assert ei.value.code == "model_not_found"


# -------------------------------------------------------------- errors ----


def test_bad_key_is_authentication_error(gateway):
    bad = gateway.client(key="sk-tr-doesnotexist_" + "x" * 40)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model=MODEL, messages=_msgs())
    e = ei.value
    assert e.status_code == 401
    assert e.code == "invalid_api_key"
    assert e.type == "authentication_error"
    assert e.message


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="no-such-model-xyz", messages=_msgs())
    e = ei.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert e.type == "invalid_request_error"


def test_malformed_param_is_bad_request(client, gateway):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model=MODEL, messages=_msgs(), extra_body={"messages": "not a list"}
        )
    e = ei.value
    assert e.status_code == 400
    assert e.code == "invalid_request"
    assert e.type == "invalid_request_error"

    # Same thing on the wire, checking the full error envelope.
    r = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": MODEL, "messages": "not a list"},
        timeout=30,
        trust_env=False,
    )
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["type"] == "invalid_request_error"
    assert err["code"] == "invalid_request"
    assert isinstance(err["message"], str) and err["message"]
    assert "param" in err


def test_upstream_500_is_502(client):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(
            model=MODEL, messages=_msgs(), extra_body={"mock": {"fault": "500"}}
        )
    e = ei.value
    assert e.status_code == 502
    assert e.code == "upstream_unavailable"
    assert e.type == "upstream_error"


# ------------------------------------------------------------- headers ----


def test_raw_response_headers(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=_msgs())
    assert raw.status_code == 200
    assert raw.headers.get("x-tokenrouter-provider") == "mock"
    rid = raw.headers.get("x-request-id")
    assert rid and rid.strip()
    assert raw.headers.get("x-tokenrouter-latency-ms") is not None
    completion = raw.parse()
    assert completion.choices[0].message.content

    # Request ids are per request.
    raw2 = client.chat.completions.with_raw_response.create(model=MODEL, messages=_msgs())
    assert raw2.headers.get("x-request-id") != rid


# -------------------------------------------------------------- billing ---


def _settled(gateway, account: str, timeout: float = 5.0) -> dict:
    """Account state once no hold is open (charges may settle just after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        acct = gateway.account_show(account)
        if acct["held_nano_usd"] == 0 or time.monotonic() > deadline:
            return acct
        time.sleep(0.1)


def test_balance_drops_by_cost_and_matches_ledger(gateway):
    account = "pytest-billing"
    gateway.create_account(account, 100)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    cli = gateway.client(key=key)

    before = _settled(gateway, account)
    assert before["balance_nano_usd"] == 100 * 10**9
    assert before["balance_nano_usd"] == before["ledger_sum_nano_usd"]

    expected_cost = 0
    resp = cli.chat.completions.create(model=MODEL, messages=_msgs("bill me"))
    expected_cost += (
        resp.usage.prompt_tokens * INPUT_NANO_PER_TOKEN
        + resp.usage.completion_tokens * OUTPUT_NANO_PER_TOKEN
    )
    chunks = _collect_stream(
        cli.chat.completions.create(
            model=MODEL,
            messages=_msgs("bill me too"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    u = chunks[-1].usage
    expected_cost += u.prompt_tokens * INPUT_NANO_PER_TOKEN + u.completion_tokens * OUTPUT_NANO_PER_TOKEN
    assert expected_cost > 0

    # Poll: the charge for the stream may be written just after the last byte.
    deadline = time.monotonic() + 5
    while True:
        after = _settled(gateway, account)
        spent = before["balance_nano_usd"] - after["balance_nano_usd"]
        if spent >= expected_cost or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert after["balance_nano_usd"] < before["balance_nano_usd"]
    assert spent == expected_cost, f"charged {spent} nano-USD, usage says {expected_cost}"
    assert after["held_nano_usd"] == 0
    assert after["balance_nano_usd"] == after["ledger_sum_nano_usd"]


def test_failed_upstream_is_not_charged(gateway):
    account = "pytest-refund"
    gateway.create_account(account, 100)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    cli = gateway.client(key=key)
    before = _settled(gateway, account)
    with pytest.raises(openai.APIStatusError) as ei:
        cli.chat.completions.create(
            model=MODEL, messages=_msgs(), extra_body={"mock": {"fault": "500"}}
        )
    assert ei.value.status_code == 502
    after = _settled(gateway, account)
    assert after["held_nano_usd"] == 0
    assert after["balance_nano_usd"] == before["balance_nano_usd"]
    assert after["balance_nano_usd"] == after["ledger_sum_nano_usd"]


# ---------------------------------------------------------- revocation ----


def test_revoked_key_stops_working_quickly(gateway):
    minted = gateway.create_key_json(gateway.account)
    key, key_id = minted["key"], minted["id"]
    gateway.wait_key_usable(key)
    cli = gateway.client(key=key)
    assert cli.chat.completions.create(model=MODEL, messages=_msgs()).choices

    gateway.cli("keys", "revoke", key_id)
    revoked_at = time.monotonic()
    rejected = None
    while time.monotonic() - revoked_at < 1.5:
        try:
            cli.chat.completions.create(model=MODEL, messages=_msgs())
        except openai.AuthenticationError as e:
            rejected = e
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - revoked_at
    assert rejected is not None, "revoked key still accepted 1.5 s after `keys revoke`"
    assert rejected.code == "invalid_api_key"
    assert elapsed < 1.5

    # And it stays rejected, on every route, on the same pooled client (a 401 given before
    # the body was read closes its connection with `Connection: close`, so the pool does
    # not reuse a dead one).
    with pytest.raises(openai.AuthenticationError):
        cli.models.list()
    # The session's main key is unaffected.
    assert gateway.client().models.list().data
