"""The Gemini API inbound (`/v1beta/models/...`, what the `google-genai` SDKs speak) with
the official `google-genai` Python SDK, for every provider kind:
`genai.Client(api_key=KEY, http_options=HttpOptions(base_url=GATEWAY))`. Each test asserts
what a user of the SDK would notice and records its cell of docs/compatibility.md."""

from __future__ import annotations

import base64

import pytest
from google import genai
from google.genai import errors, types

from conftest import feature, record_matrix
from test_providers import PIXEL

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
# Anthropic has no embeddings: a chat model there is refused with a clear 400.
EMBEDDING_MODELS = {"openai": "text-embedding-3-small", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-embedding-001"}
FEATURES = [
    "generate_content: text, system instruction",
    "generate_content_stream (chunks = whole answer)",
    "function calling round trip",
    "function call, stream",
    "tool_config ANY with allowed_function_names, NONE",
    "image (inline_data)",
    "max_output_tokens → finish_reason MAX_TOKENS",
    "thinking (include_thoughts)",
    "upstream fails mid-stream → error raised",
    "upstream 500 → 502 UNAVAILABLE",
    "count_tokens",
    "embed_content (batch of 2)",
    "models.list / models.get",
]
MATRIX = {
    "id": "genai",
    "title": "Gemini API (`/v1beta/models/...`; `/v1/models/...` as google-genai 3 calls it; official `google-genai` Python SDK)",
    "intro": "`tests/python/test_genai_sdk.py`: the client speaks the Gemini API; the gateway translates it for OpenAI and Anthropic upstreams and back into Gemini's own for Gemini.",
    "columns": list(PROVIDERS),
    "rows": FEATURES,
}
ALL = pytest.mark.parametrize("provider", list(PROVIDERS))
TABLE = "genai"

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)
TIME = types.FunctionDeclaration(
    name="get_time",
    description="Time in a zone",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"tz": types.Schema(type=types.Type.STRING)}, required=["tz"]),
)


def cell(feature_name: str, provider: str, outcome: str = "pass") -> None:
    record_matrix(feature_name, provider, outcome, TABLE)


@pytest.fixture(scope="module")
def client(gateway):
    return gateway.genai()


def _text(response) -> str:
    return response.text or ""


@ALL
@feature("generate_content: text, system instruction", TABLE)
def test_text(client, provider):
    model = PROVIDERS[provider]
    r = client.models.generate_content(
        model=model, contents="Say hello", config=types.GenerateContentConfig(system_instruction="Be brief.")
    )
    assert _text(r).strip()
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.model_version == model and r.response_id
    u = r.usage_metadata
    assert u.prompt_token_count > 0 and u.candidates_token_count > 0
    assert u.total_token_count == u.prompt_token_count + u.candidates_token_count + (u.thoughts_token_count or 0)
    cell("generate_content: text, system instruction", provider)


@ALL
@feature("generate_content_stream (chunks = whole answer)", TABLE)
def test_stream(client, provider):
    model = PROVIDERS[provider]
    whole = client.models.generate_content(model=model, contents="Stream something")
    chunks = list(client.models.generate_content_stream(model=model, contents="Stream something"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == _text(whole)
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count > 0 and last.usage_metadata.prompt_token_count > 0
    cell("generate_content_stream (chunks = whole answer)", provider)


@ALL
@feature("function calling round trip", TABLE)
def test_function_round_trip(client, provider):
    model = PROVIDERS[provider]
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    ask = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])
    first = client.models.generate_content(model=model, contents=[ask], config=config)
    (call,) = first.function_calls
    assert call.name == "get_weather" and call.args == {"city": "mock"}
    answer = types.Content(
        role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny, 21 degrees"})]
    )
    second = client.models.generate_content(model=model, contents=[ask, first.candidates[0].content, answer], config=config)
    assert not second.function_calls and _text(second).strip()
    assert second.candidates[0].finish_reason == types.FinishReason.STOP
    cell("function calling round trip", provider)


@ALL
@feature("function call, stream", TABLE)
def test_function_call_stream(client, provider):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    chunks = list(client.models.generate_content_stream(model=PROVIDERS[provider], contents="Weather?", config=config))
    calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "mock"})]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    cell("function call, stream", provider)


@ALL
@feature("tool_config ANY with allowed_function_names, NONE", TABLE)
def test_tool_config(client, provider):
    tools = [types.Tool(function_declarations=[WEATHER, TIME])]

    def ask(mode, names=None):
        fcc = types.FunctionCallingConfig(mode=mode, allowed_function_names=names)
        config = types.GenerateContentConfig(tools=tools, tool_config=types.ToolConfig(function_calling_config=fcc))
        return client.models.generate_content(model=PROVIDERS[provider], contents="Weather and time?", config=config)

    one = ask(types.FunctionCallingConfigMode.ANY, ["get_time"])
    assert [(c.name, c.args) for c in one.function_calls] == [("get_time", {"tz": "mock"})]
    none = ask(types.FunctionCallingConfigMode.NONE)
    assert not none.function_calls and _text(none).strip()
    cell("tool_config ANY with allowed_function_names, NONE", provider)


@ALL
@feature("image (inline_data)", TABLE)
def test_image(client, provider):
    image = types.Part.from_bytes(data=base64.b64decode(PIXEL), mime_type="image/png")
    r = client.models.generate_content(model=PROVIDERS[provider], contents=[image, "What is in this image?"])
    assert _text(r).strip()
    cell("image (inline_data)", provider)


@ALL
@feature("max_output_tokens → finish_reason MAX_TOKENS", TABLE)
def test_max_tokens(client, provider):
    config = types.GenerateContentConfig(max_output_tokens=3)
    r = client.models.generate_content(model=PROVIDERS[provider], contents="Write a long story", config=config)
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata.candidates_token_count <= 3 and _text(r).strip()
    chunks = list(client.models.generate_content_stream(model=PROVIDERS[provider], contents="Write a long story", config=config))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert "".join(c.text or "" for c in chunks) == _text(r)
    cell("max_output_tokens → finish_reason MAX_TOKENS", provider)


@ALL
@feature("thinking (include_thoughts)", TABLE)
def test_thinking(client, provider):
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_budget=2048)
    config = types.GenerateContentConfig(thinking_config=thinking)
    r = client.models.generate_content(model=PROVIDERS[provider], contents="Think first", config=config)
    parts = r.candidates[0].content.parts
    thoughts = [p.text for p in parts if p.thought]
    assert _text(r).strip()
    if provider == "openai" and not thoughts:
        # An OpenAI-compatible upstream gets `reasoning_effort`; this mock model answers without reasoning.
        cell("thinking (include_thoughts)", provider, "pass-through")
        return
    assert thoughts and thoughts[0].strip() and parts[0].thought, parts
    assert r.usage_metadata.thoughts_token_count is None or r.usage_metadata.thoughts_token_count >= 0
    cell("thinking (include_thoughts)", provider)


@ALL
@feature("upstream fails mid-stream → error raised", TABLE)
def test_mid_stream_failure(client, provider):
    for fault in ("stream_error", "cut"):
        seen = []
        with pytest.raises(errors.APIError) as e:
            for chunk in client.models.generate_content_stream(model=f"gemini-fault-{provider}-{fault}", contents="hi"):
                seen.append(chunk)
        assert seen, "the answer had begun"
        assert e.value.code == 500 and e.value.message, e.value
    cell("upstream fails mid-stream → error raised", provider)


@ALL
@feature("upstream 500 → 502 UNAVAILABLE", TABLE)
def test_upstream_500(client, provider):
    with pytest.raises(errors.ServerError) as e:
        client.models.generate_content(model=f"gemini-fault-{provider}-500", contents="hi")
    assert e.value.code == 502 and e.value.status == "UNAVAILABLE", e.value
    with pytest.raises(errors.ServerError) as e:
        list(client.models.generate_content_stream(model=f"gemini-fault-{provider}-500", contents="hi"))
    assert e.value.code == 502
    cell("upstream 500 → 502 UNAVAILABLE", provider)


@ALL
@feature("count_tokens", TABLE)
def test_count_tokens(client, provider):
    short = client.models.count_tokens(model=PROVIDERS[provider], contents="hi")
    long = client.models.count_tokens(model=PROVIDERS[provider], contents="hi " * 200)
    assert short.total_tokens > 0 and long.total_tokens > short.total_tokens + 150
    cell("count_tokens", provider)


@ALL
@feature("embed_content (batch of 2)", TABLE)
def test_embed_content(client, provider):
    model = EMBEDDING_MODELS[provider]
    if provider == "anthropic":
        with pytest.raises(errors.ClientError) as e:
            client.models.embed_content(model=model, contents=["a", "b"])
        assert e.value.code == 400 and "embeddings" in e.value.message, e.value
        cell("embed_content (batch of 2)", provider, "400")
        return
    r = client.models.embed_content(model=model, contents=["What is the meaning of life?", "How old is the universe?"])
    assert len(r.embeddings) == 2 and all(len(e.values) > 0 for e in r.embeddings)
    assert r.embeddings[0].values != r.embeddings[1].values
    cell("embed_content (batch of 2)", provider)


@ALL
@feature("models.list / models.get", TABLE)
def test_models(client, provider):
    model = PROVIDERS[provider]
    listed = {m.name: m for m in client.models.list()}
    assert f"models/{model}" in listed, sorted(listed)
    entry = listed[f"models/{model}"]
    assert "generateContent" in entry.supported_actions and entry.input_token_limit > 0
    got = client.models.get(model=model)
    assert got.name == f"models/{model}" and got.output_token_limit > 0
    cell("models.list / models.get", provider)


# ---- not per provider -------------------------------------------------------------------


def test_bad_key_is_unauthenticated(gateway):
    bad = gateway.genai(key="sk-tr-doesnotexist_" + "x" * 40)  # kept: a dropped client closes
    with pytest.raises(errors.ClientError) as e:
        bad.models.generate_content(model="gpt-4o-mini", contents="hi")
    assert e.value.code == 401 and e.value.status == "UNAUTHENTICATED" and e.value.message


def test_unknown_model_is_not_found(client):
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="no-such-model-xyz", contents="hi")
    assert e.value.code == 404 and e.value.status == "NOT_FOUND" and "no-such-model-xyz" in e.value.message


def test_refused_field_is_named(client):
    config = types.GenerateContentConfig(response_modalities=["AUDIO"])
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="gpt-4o-mini", contents="hi", config=config)
    assert e.value.code == 400 and e.value.status == "INVALID_ARGUMENT" and "AUDIO" in e.value.message


def test_chat_session_keeps_history(client):
    """The SDK's chat helper sends the whole history each turn; the gateway answers each."""
    chat = client.chats.create(model="claude-sonnet-4-5")
    first = chat.send_message("Hello")
    second = chat.send_message("And again")
    assert _text(first).strip() and _text(second).strip()
    assert len(chat.get_history()) == 4


def test_headers_and_billing(gateway):
    """Answers carry the gateway's headers, and the account pays for them."""
    account = "pytest-genai"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    client = gateway.genai(key=key)  # kept: a dropped client closes its connection pool
    r = client.models.generate_content(model="gemini-2.5-pro", contents="bill me")
    assert r.sdk_http_response.headers.get("x-tokenrouter-provider") == "mock-gemini"
    rows = gateway.usage_rows(account, at_least=1)
    assert len(rows) == 1 and rows[0]["cost_nano"] > 0, rows
    assert rows[0]["endpoint"] == "gemini"
    assert rows[0]["prompt_tokens"] == r.usage_metadata.prompt_token_count
    assert rows[0]["completion_tokens"] == r.usage_metadata.candidates_token_count + (r.usage_metadata.thoughts_token_count or 0)
