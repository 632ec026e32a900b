"""Legacy completions (`/v1/completions`) and embeddings (`/v1/embeddings`) with the
official `openai` Python SDK, for every provider kind that has them. Each test asserts what
a user of the SDK would notice and records its cell of docs/compatibility.md."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import openai
import pytest

from conftest import feature, record_matrix

# Completions: OpenAI-kind upstreams get the legacy API as is; the others a one-turn chat.
COMPLETION_MODELS = {"openai": "gpt-3.5-turbo-instruct", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
# Embeddings: Anthropic has none (a chat model there must be refused clearly).
EMBEDDING_MODELS = {"openai": "text-embedding-3-small", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-embedding-001"}
FEATURES = [
    "completions: text",
    "completions: stream",
    "embeddings: default (base64, decoded by the SDK)",
    "embeddings: encoding_format float",
    "embeddings: dimensions = 256",
    "embeddings: list input",
]
MATRIX = {
    "id": "completions-embeddings",
    "title": "Legacy completions and embeddings (`/v1/completions`, `/v1/embeddings`, official `openai` Python SDK)",
    "intro": "`tests/python/test_completions_embeddings.py`: completions pass through to OpenAI-compatible upstreams and become a one-turn chat elsewhere; embeddings pass through or are translated to Gemini's `embedContent`.",
    "columns": list(COMPLETION_MODELS),
    "rows": FEATURES,
}
ALL = pytest.mark.parametrize("provider", list(COMPLETION_MODELS))
TABLE = "completions-embeddings"


def cell(feature_name: str, provider: str, outcome: str = "pass") -> None:
    record_matrix(feature_name, provider, outcome, TABLE)


def _norm(v) -> float:
    return math.sqrt(sum(x * x for x in v))


def _refused(client, provider: str, **kw) -> bool:
    """For Anthropic: embeddings are refused with a 400 that says why."""
    if provider != "anthropic":
        return False
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBEDDING_MODELS[provider], input="text", **kw)
    assert e.value.status_code == 400
    assert e.value.body["type"] == "invalid_request_error"
    assert "embedding" in e.value.message.lower(), e.value.message
    return True


# ---- completions ------------------------------------------------------------------------


@ALL
@feature("completions: text", TABLE)
def test_completion(client, provider):
    r = client.completions.create(model=COMPLETION_MODELS[provider], prompt="Say this is a test", max_tokens=64)
    assert r.object == "text_completion"
    assert r.id
    (choice,) = r.choices
    assert choice.index == 0 and choice.text.strip()
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    short = client.completions.create(model=COMPLETION_MODELS[provider], prompt="Say this is a test", max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens <= 3
    cell("completions: text", provider)


@ALL
@feature("completions: stream", TABLE)
def test_completion_stream(client, provider):
    model = COMPLETION_MODELS[provider]
    whole = client.completions.create(model=model, prompt="Stream a test", max_tokens=64)
    chunks = list(
        client.completions.create(model=model, prompt="Stream a test", max_tokens=64, stream=True, stream_options={"include_usage": True})
    )
    assert len(chunks) > 2
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.object == "text_completion" for c in chunks)
    cell("completions: stream", provider)


def test_completion_prompt_list_on_openai(client):
    """A list of prompts reaches an OpenAI-compatible upstream as is: one choice each."""
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=["first prompt", "second prompt"], max_tokens=8)
    assert sorted(c.index for c in r.choices) == [0, 1]


# ---- embeddings -------------------------------------------------------------------------


@ALL
@feature("embeddings: default (base64, decoded by the SDK)", TABLE)
def test_embedding_default(client, provider):
    if _refused(client, provider):
        cell("embeddings: default (base64, decoded by the SDK)", provider, "400")
        return
    r = client.embeddings.create(model=EMBEDDING_MODELS[provider], input="The food was delicious")
    assert r.object == "list"
    (item,) = r.data
    assert item.object == "embedding" and item.index == 0
    v = item.embedding
    assert isinstance(v, list) and len(v) >= 256 and all(isinstance(x, float) for x in v)
    assert _norm(v) == pytest.approx(1.0, abs=1e-3), "the mock's vectors are unit length"
    if provider == "openai":
        assert len(v) == 1536
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    if provider != "openai":  # passed through, an OpenAI-compatible upstream names its own model
        assert r.model == EMBEDDING_MODELS[provider]
    # The same text gives the same vector.
    again = client.embeddings.create(model=EMBEDDING_MODELS[provider], input="The food was delicious")
    assert again.data[0].embedding == v
    cell("embeddings: default (base64, decoded by the SDK)", provider)


@ALL
@feature("embeddings: encoding_format float", TABLE)
def test_embedding_float_matches_base64(client, gateway, provider):
    if _refused(client, provider, encoding_format="float"):
        cell("embeddings: encoding_format float", provider, "400")
        return
    model = EMBEDDING_MODELS[provider]
    floats = client.embeddings.create(model=model, input="same text", encoding_format="float").data[0].embedding
    # On the wire, base64 is little-endian float32.
    r = httpx.post(
        f"{gateway.base_url}/embeddings",
        json={"model": model, "input": "same text", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=30,
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    raw = r.json()["data"][0]["embedding"]
    assert isinstance(raw, str)
    decoded = struct.unpack(f"<{len(base64.b64decode(raw)) // 4}f", base64.b64decode(raw))
    assert len(decoded) == len(floats)
    assert decoded == pytest.approx(floats, abs=1e-6)
    cell("embeddings: encoding_format float", provider)


@ALL
@feature("embeddings: dimensions = 256", TABLE)
def test_embedding_dimensions(client, provider):
    if _refused(client, provider, dimensions=256):
        cell("embeddings: dimensions = 256", provider, "400")
        return
    r = client.embeddings.create(model=EMBEDDING_MODELS[provider], input=["one", "two"], dimensions=256)
    assert [len(d.embedding) for d in r.data] == [256, 256]
    assert _norm(r.data[0].embedding) == pytest.approx(1.0, abs=1e-3)
    cell("embeddings: dimensions = 256", provider)


@ALL
@feature("embeddings: list input", TABLE)
def test_embedding_list(client, provider):
    if _refused(client, provider):
        cell("embeddings: list input", provider, "400")
        return
    texts = ["first text", "second, longer text here", "third"]
    r = client.embeddings.create(model=EMBEDDING_MODELS[provider], input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    vectors = [d.embedding for d in r.data]
    assert len({tuple(v) for v in vectors}) == 3, "different texts, different vectors"
    one = client.embeddings.create(model=EMBEDDING_MODELS[provider], input="second, longer text here").data[0].embedding
    assert one == pytest.approx(vectors[1], abs=1e-6), "a text's vector does not depend on its batch"
    singles = sum(client.embeddings.create(model=EMBEDDING_MODELS[provider], input=t).usage.prompt_tokens for t in texts)
    assert r.usage.prompt_tokens == singles
    cell("embeddings: list input", provider)


def test_embeddings_are_billed_by_input_tokens(gateway):
    account = "pytest-embeddings"
    gateway.create_account(account, 10)
    key = gateway.create_key(account)
    gateway.wait_key_usable(key)
    r = gateway.client(key=key).embeddings.create(model="text-embedding-3-small", input=["a few words to embed"] * 4)
    rows = gateway.usage_rows(account, at_least=1)
    assert len(rows) == 1, rows
    assert rows[0]["prompt_tokens"] == r.usage.prompt_tokens
    assert rows[0]["completion_tokens"] == 0
    # $0.02 per 1M input tokens = 20 nano-USD per token.
    assert rows[0]["cost_nano"] == 20 * r.usage.prompt_tokens


@ALL
def test_completion_mid_stream_failure(client, provider):
    """The answer had begun; the client learns it failed (an error event the SDK raises)."""
    for fault in ("stream_error", "cut"):
        chunks = []
        with pytest.raises(openai.APIError) as e:
            for chunk in client.completions.create(model=f"completions-fault-{provider}-{fault}", prompt="hi", stream=True):
                chunks.append(chunk)
        assert "".join(c.choices[0].text for c in chunks if c.choices), (fault, chunks)
        assert e.value.message, fault
