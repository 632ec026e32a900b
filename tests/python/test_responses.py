"""The Responses API (`/v1/responses`, what Codex CLI speaks) with the official `openai`
Python SDK, for every provider kind: the gateway translates it to each provider's own API.
Each test asserts what a user of the SDK would notice and records its cell of
docs/compatibility.md."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from clients import fixture, in_order, sse_events
from conftest import feature, record_matrix
from test_providers import PIXEL

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
FEATURES = [
    "text",
    "stream helper (event sequence, deltas = final text)",
    "function tool round trip",
    "function tool round trip, stream",
    "tool_choice (required, named, none)",
    "namespace tools",
    "reasoning summary",
    "image input (data URL)",
    "max_output_tokens → incomplete",
    "upstream fails mid-stream → response.failed",
    "upstream 500 → 502",
    "previous_response_id",
    "store: false, then its id → 400",
    "responses.retrieve / responses.delete",
    "hosted tool (web_search) dropped, named in a header",
    "hosted tool refused under unsupported_tools = \"reject\"",
    "Codex CLI body (~40 KB): tool call, then answer",
]
MATRIX = {
    "id": "responses",
    "title": "Responses API (`/v1/responses`, official `openai` Python SDK)",
    "intro": "`tests/python/test_responses.py`: the client speaks the Responses API; the gateway translates it to Chat Completions, Anthropic Messages or Gemini.",
    "columns": list(PROVIDERS),
    "rows": FEATURES,
}
ALL = pytest.mark.parametrize("provider", list(PROVIDERS))
TABLE = "responses"

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
# The stream a Responses client needs, in this order (Codex prints nothing without it).
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def cell(feature_name: str, provider: str, outcome: str = "pass") -> None:
    record_matrix(feature_name, provider, outcome, TABLE)


def _function_calls(response) -> list:
    return [item for item in response.output if item.type == "function_call"]


def _as_input(items) -> list:
    """Output items of a response, as input items of the next request (what SDK users do)."""
    return [item.model_dump(exclude_none=True) for item in items]


@ALL
@feature("text", TABLE)
def test_text(client, provider):
    r = client.responses.create(model=PROVIDERS[provider], input="Say hello", instructions="Be brief.")
    assert r.id.startswith("resp_"), r.id
    assert r.object == "response" and r.status == "completed"
    if provider != "openai":  # an OpenAI-compatible upstream names its own model (as OpenAI names snapshots)
        assert r.model == PROVIDERS[provider]
    assert r.output_text.strip(), r.output
    (message,) = [item for item in r.output if item.type == "message"]
    assert message.role == "assistant" and message.content[0].type == "output_text"
    u = r.usage
    assert u.input_tokens > 0 and u.output_tokens > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    assert u.input_tokens_details.cached_tokens >= 0
    assert u.output_tokens_details.reasoning_tokens >= 0
    cell("text", provider)


@ALL
@feature("stream helper (event sequence, deltas = final text)", TABLE)
def test_stream_helper(client, provider):
    model = PROVIDERS[provider]
    whole = client.responses.create(model=model, input="Stream something")
    types, deltas, sequence = [], [], []
    with client.responses.stream(model=model, input=[{"role": "user", "content": "Stream something"}]) as stream:
        for event in stream:
            types.append(event.type)
            sequence.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert in_order(types, TEXT_EVENTS), f"events out of order or missing: {types}"
    assert types[-1] == "response.completed", types
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), f"sequence numbers: {sequence}"
    assert len(deltas) > 1, "the text arrives in several deltas"
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.id.startswith("resp_") and final.status == "completed"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    cell("stream helper (event sequence, deltas = final text)", provider)


@ALL
@feature("function tool round trip", TABLE)
def test_function_round_trip(client, provider):
    model = PROVIDERS[provider]
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.responses.create(model=model, input=history, tools=[WEATHER])
    (call,) = _function_calls(first)
    assert call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": "mock"}
    assert not first.output_text
    second = client.responses.create(
        model=model,
        tools=[WEATHER],
        input=history + _as_input(first.output) + [
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 degrees"}
        ],
    )
    assert not _function_calls(second), second.output
    assert second.output_text.strip()
    assert second.usage.input_tokens > first.usage.input_tokens
    cell("function tool round trip", provider)


@ALL
@feature("function tool round trip, stream", TABLE)
def test_function_round_trip_stream(client, provider):
    model = PROVIDERS[provider]
    history = [{"role": "user", "content": "Weather in Paris?"}]
    types, arg_deltas = [], []
    with client.responses.stream(model=model, input=history, tools=[WEATHER]) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                arg_deltas.append(event.delta)
        first = stream.get_final_response()
    assert in_order(
        types,
        [
            "response.created",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
    ), types
    (call,) = _function_calls(first)
    assert "".join(arg_deltas) == call.arguments
    assert json.loads(call.arguments) == {"city": "mock"}
    with client.responses.stream(
        model=model,
        tools=[WEATHER],
        input=history + _as_input(first.output) + [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    ) as stream:
        second = stream.get_final_response()
    assert second.output_text.strip() and not _function_calls(second)
    cell("function tool round trip, stream", provider)


@ALL
@feature("tool_choice (required, named, none)", TABLE)
def test_tool_choice(client, provider):
    model = PROVIDERS[provider]
    time_tool = dict(WEATHER, name="get_time", parameters={"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]})
    args = {"model": model, "input": "Weather and time?", "tools": [WEATHER, time_tool]}
    assert [c.name for c in _function_calls(client.responses.create(tool_choice="required", **args))] == ["get_weather", "get_time"]
    named = client.responses.create(tool_choice={"type": "function", "name": "get_time"}, **args)
    assert [c.name for c in _function_calls(named)] == ["get_time"]
    assert json.loads(_function_calls(named)[0].arguments) == {"tz": "mock"}
    none = client.responses.create(tool_choice="none", **args)
    assert not _function_calls(none) and none.output_text.strip()
    cell("tool_choice (required, named, none)", provider)


@ALL
@feature("namespace tools", TABLE)
def test_namespace_tools(client, provider):
    """Codex groups functions in `namespace` tools; calls come back named as declared."""
    model = PROVIDERS[provider]
    agents = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Agents",
        "tools": [
            {
                "type": "function",
                "name": "spawn_agent",
                "description": "Start an agent",
                "strict": False,
                "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
            },
            {
                "type": "function",
                "name": "wait_agent",
                "description": "Wait for agents",
                "strict": False,
                "parameters": {"type": "object", "properties": {"targets": {"type": "array", "items": {"type": "string"}}}},
            },
        ],
    }
    history = [{"role": "user", "content": "Start an agent"}]
    first = client.responses.create(model=model, input=history, tools=[agents])
    (call,) = _function_calls(first)
    assert call.name == "spawn_agent", call
    assert (call.model_extra or {}).get("namespace", getattr(call, "namespace", None)) == "multi_agent_v1", call
    assert json.loads(call.arguments) == {"message": "mock"}
    second = client.responses.create(
        model=model,
        tools=[agents],
        input=history + _as_input(first.output) + [{"type": "function_call_output", "call_id": call.call_id, "output": "agent 1"}],
    )
    assert second.output_text.strip()
    cell("namespace tools", provider)


@ALL
@feature("reasoning summary", TABLE)
def test_reasoning(client, provider):
    model = PROVIDERS[provider]
    args = {"model": model, "input": "Think first", "reasoning": {"effort": "high", "summary": "auto"}}
    r = client.responses.create(**args)
    kinds = [item.type for item in r.output]
    assert kinds[0] == "reasoning" and "message" in kinds, kinds
    summary = r.output[0].summary
    assert summary and summary[0].type == "summary_text" and summary[0].text.strip(), r.output[0]
    assert r.output_text.strip()
    if provider != "anthropic":  # Anthropic does not count thinking tokens apart
        assert r.usage.output_tokens_details.reasoning_tokens > 0, r.usage

    types, summary_deltas = [], []
    with client.responses.stream(**args) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.reasoning_summary_text.delta":
                summary_deltas.append(event.delta)
        final = stream.get_final_response()
    assert [item.type for item in final.output] == kinds
    assert "".join(summary_deltas) == final.output[0].summary[0].text
    assert in_order(types, ["response.output_item.added", "response.reasoning_summary_text.delta", "response.output_text.delta"]), types
    assert final.output_text == r.output_text
    cell("reasoning summary", provider)


@ALL
@feature("image input (data URL)", TABLE)
def test_image_input(client, provider):
    r = client.responses.create(
        model=PROVIDERS[provider],
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this image?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"},
                ],
            }
        ],
    )
    assert r.status == "completed" and r.output_text.strip()
    cell("image input (data URL)", provider)


@ALL
@feature("max_output_tokens → incomplete", TABLE)
def test_max_output_tokens(client, provider):
    r = client.responses.create(model=PROVIDERS[provider], input="Write a long story", max_output_tokens=5)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text.strip() and r.usage.output_tokens <= 5
    with client.responses.stream(model=PROVIDERS[provider], input="Write a long story", max_output_tokens=5) as stream:
        events = list(stream)  # get_final_response() is for completed responses only
    assert events[-1].type == "response.incomplete", [e.type for e in events]
    final = events[-1].response
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.output_text == r.output_text
    cell("max_output_tokens → incomplete", provider)


@ALL
@feature("upstream fails mid-stream → response.failed", TABLE)
def test_mid_stream_failure(client, provider):
    """The answer had begun; the client learns it failed (no silent truncation)."""
    for fault in ("stream_error", "cut"):
        with client.responses.stream(model=f"responses-fault-{provider}-{fault}", input="hi") as stream:
            events = list(stream)
            with pytest.raises(RuntimeError):  # no `response.completed`
                stream.get_final_response()
        types = [e.type for e in events]
        assert "response.output_text.delta" in types, types
        assert types[-1] == "response.failed", types
        assert "response.completed" not in types
        final = events[-1].response
        assert final.status == "failed" and final.error.message, final
    cell("upstream fails mid-stream → response.failed", provider)


@ALL
@feature("upstream 500 → 502", TABLE)
def test_upstream_500(client, provider):
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as e:
            r = client.responses.create(model=f"responses-fault-{provider}-500", input="hi", stream=stream)
            list(r) if stream else None
        assert e.value.status_code == 502
        assert e.value.body["code"] == "upstream_unavailable"
    cell("upstream 500 → 502", provider)


@ALL
@feature("previous_response_id", TABLE)
def test_previous_response_id(client, provider):
    model = PROVIDERS[provider]
    first = client.responses.create(model=model, input="My name is Ada and I like long walks in the park")
    follow = client.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
    alone = client.responses.create(model=model, input="What is my name?")
    assert follow.output_text.strip()
    assert follow.previous_response_id == first.id
    # The upstream saw the earlier turn (question and answer) too.
    assert follow.usage.input_tokens >= alone.usage.input_tokens + first.usage.input_tokens, (follow.usage, alone.usage)
    # A chain of three.
    third = client.responses.create(model=model, input="And again?", previous_response_id=follow.id)
    assert third.usage.input_tokens > follow.usage.input_tokens

    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="hi", previous_response_id="resp_doesnotexist0000000000")
    assert e.value.status_code == 400
    assert e.value.body["param"] == "previous_response_id"
    assert e.value.body["type"] == "invalid_request_error"
    cell("previous_response_id", provider)


@ALL
@feature("store: false, then its id → 400", TABLE)
def test_store_false_is_not_kept(client, provider):
    model = PROVIDERS[provider]
    r = client.responses.create(model=model, input="Forget me", store=False)
    assert r.id.startswith("resp_") and r.output_text
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="again", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"
    assert r.id in e.value.message or "previous_response_id" in e.value.message
    cell("store: false, then its id → 400", provider, "400")


@ALL
@feature("responses.retrieve / responses.delete", TABLE)
def test_retrieve_and_delete(client, provider):
    model = PROVIDERS[provider]
    created = client.responses.create(model=model, input="Keep this one")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id
    assert fetched.output_text == created.output_text
    assert fetched.usage.output_tokens == created.usage.output_tokens

    with client.responses.stream(model=model, input="Keep this stream") as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == final.output_text

    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=model, input="more", previous_response_id=created.id)
    cell("responses.retrieve / responses.delete", provider)


def test_previous_response_expires(strict_gateway):
    """Kept `response_retention_secs` (2 s on this gateway, counted in whole seconds), then refused."""
    client = strict_gateway.client()
    r = client.responses.create(model="gpt-4o-mini", input="remember this")
    assert client.responses.create(model="gpt-4o-mini", input="ok?", previous_response_id=r.id).output_text
    time.sleep(3.2)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-4o-mini", input="still there?", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"


@ALL
@feature("hosted tool (web_search) dropped, named in a header", TABLE)
def test_hosted_tool_dropped(client, provider):
    raw = client.responses.with_raw_response.create(
        model=PROVIDERS[provider], input="Search the web for cats", tools=[{"type": "web_search"}]
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-tokenrouter-dropped-tools") == "web_search"
    r = raw.parse()
    assert r.output_text.strip() and not _function_calls(r)

    # With a function beside it, the function is still offered (and called).
    raw = client.responses.with_raw_response.create(
        model=PROVIDERS[provider], input="Weather?", tools=[{"type": "web_search"}, WEATHER]
    )
    assert raw.headers.get("x-tokenrouter-dropped-tools") == "web_search"
    assert [c.name for c in _function_calls(raw.parse())] == ["get_weather"]

    # Nothing dropped, no header.
    raw = client.responses.with_raw_response.create(model=PROVIDERS[provider], input="hi", tools=[WEATHER])
    assert raw.headers.get("x-tokenrouter-dropped-tools") is None
    cell("hosted tool (web_search) dropped, named in a header", provider)


@ALL
@feature('hosted tool refused under unsupported_tools = "reject"', TABLE)
def test_hosted_tool_rejected(strict_gateway, provider):
    client = strict_gateway.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=PROVIDERS[provider], input="Search", tools=[WEATHER, {"type": "web_search"}])
    assert e.value.body["type"] == "invalid_request_error"
    assert "web_search" in e.value.message
    assert (e.value.body.get("param") or "").startswith("tools"), e.value.body
    # Function tools alone are fine there.
    assert _function_calls(client.responses.create(model=PROVIDERS[provider], input="Weather?", tools=[WEATHER]))
    cell('hosted tool refused under unsupported_tools = "reject"', provider, "400")


@ALL
@feature("Codex CLI body (~40 KB): tool call, then answer", TABLE)
def test_codex_body(gateway, provider):
    """Codex's own request bodies (developer messages, namespace and web_search tools,
    `include`, `prompt_cache_key`, `client_metadata`, `store: false`, a stream), posted as
    Codex posts them; then its second turn with the function_call_output."""
    model = PROVIDERS[provider]
    headers = {"Authorization": f"Bearer {gateway.key}", "Accept": "text/event-stream", "originator": "codex_exec"}

    def post(body):
        with httpx.stream("POST", f"{gateway.base_url}/responses", json=body, headers=headers, timeout=60, trust_env=False) as r:
            if r.status_code != 200:
                r.read()
                raise AssertionError(f"{r.status_code}: {r.text}")
            return r.headers, sse_events(r)

    first = fixture("responses.codex_exec__codex_tool_0001.json")
    first.update(model=model, text={"verbosity": "low"})
    assert len(json.dumps(first)) > 35_000
    head, events = post(first)
    assert head.get("x-tokenrouter-dropped-tools") == "web_search"
    types = [e.get("type") for _, e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    done = events[-1][1]["response"]
    calls = [i for i in done["output"] if i["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["exec_command"], done["output"]
    assert json.loads(calls[0]["arguments"]) == {"cmd": "mock"}
    assert done["usage"]["input_tokens"] > 3_000

    second = fixture("responses.codex_exec__codex_tool_0002.json")
    second.update(model=model, text={"verbosity": "low"})
    head, events = post(second)
    types = [e.get("type") for _, e in events]
    assert in_order(types, TEXT_EVENTS), types
    done = events[-1][1]["response"]
    text = "".join(e["delta"] for _, e in events if e.get("type") == "response.output_text.delta")
    assert text.strip()
    assert [i["type"] for i in done["output"]][-1] == "message"
    assert done["output"][-1]["content"][0]["text"] == text
    cell("Codex CLI body (~40 KB): tool call, then answer", provider)


def test_x_api_key_and_errors(gateway):
    """`x-api-key` authenticates like a bearer token; errors keep OpenAI's envelope."""
    url = f"{gateway.base_url}/responses"
    r = httpx.post(url, json={"model": "gpt-4o-mini", "input": "hi"}, headers={"x-api-key": gateway.key}, timeout=30, trust_env=False)
    assert r.status_code == 200, r.text
    assert r.json()["output"][-1]["content"][0]["text"]
    assert r.headers.get("x-tokenrouter-provider") == "mock"

    r = httpx.post(url, json={"model": "gpt-4o-mini", "input": "hi"}, headers={"x-api-key": "sk-tr-nope_" + "x" * 40}, timeout=30, trust_env=False)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"

    r = httpx.post(url, json={"model": "no-such-model", "input": "hi"}, headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30, trust_env=False)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"

    r = httpx.post(url, json={"model": "gpt-4o-mini", "input": 42}, headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30, trust_env=False)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_responses_are_billed(gateway):
    account = "pytest-responses"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    client = gateway.client(key=key)
    r = client.responses.create(model="gpt-4o-mini", input="bill me")
    with client.responses.stream(model="claude-sonnet-4-5", input="bill me too") as stream:
        s = stream.get_final_response()
    rows = gateway.usage_rows(account, at_least=2)
    assert [(row["model"], row["stream"]) for row in rows] == [("gpt-4o-mini", 0), ("claude-sonnet-4-5", 1)], rows
    assert rows[0]["prompt_tokens"] == r.usage.input_tokens and rows[0]["completion_tokens"] == r.usage.output_tokens
    assert rows[1]["prompt_tokens"] == s.usage.input_tokens and rows[1]["completion_tokens"] == s.usage.output_tokens
    # gpt-4o-mini: $0.15 / $0.60 per 1M tokens.
    assert rows[0]["cost_nano"] == 150 * r.usage.input_tokens + 600 * r.usage.output_tokens
    acct = gateway.account_show(account)
    assert acct["balance_nano_usd"] == acct["ledger_sum_nano_usd"]


def test_previous_response_is_private_to_its_account(gateway, client):
    """Another account cannot continue (and so read) a stored response; another key of
    the same account can, and a conversation may move to another provider."""
    first = client.responses.create(model="gpt-4o-mini", input="the password is swordfish")
    gateway.create_account("pytest-other", 10)
    other = gateway.client(key=gateway.create_key("pytest-other"))
    gateway.wait_key_usable(other.api_key)
    with pytest.raises(openai.BadRequestError) as e:
        other.responses.create(model="gpt-4o-mini", input="what was the password?", previous_response_id=first.id)
    assert e.value.body["param"] == "previous_response_id"

    same_account = gateway.client(key=gateway.create_key(gateway.account))
    gateway.wait_key_usable(same_account.api_key)
    assert same_account.responses.create(model="gpt-4o-mini", input="again", previous_response_id=first.id).output_text
    moved = client.responses.create(model="gemini-2.5-pro", input="and now?", previous_response_id=first.id)
    assert moved.output_text and moved.usage.input_tokens > first.usage.input_tokens
