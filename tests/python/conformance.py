"""Checks every answer a gateway gives in these suites against the published shape of its
API surface: the JSON Schemas committed under tests/schemas/ (see EXCEPTIONS.md there).

`install()` wraps the sync transports of httpx and httpx2, so every request made through
them (the openai, anthropic and google-genai SDKs, plain httpx calls) to a gateway
registered with `watch()` is seen: its whole body is kept as it is read, and when the
answer is closed the body (or, for an SSE answer, each event) is validated. Violations
are collected; conftest.py fails the test during which they happened. No test can forget
to check.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "tests" / "schemas"

_watched: set = set()  # "127.0.0.1:PORT" of each gateway
_violations: list = []
_lock = threading.Lock()


def watch(root_url: str) -> None:
    """Validate every answer of the gateway at `root_url` from now on."""
    _watched.add(urlsplit(root_url).netloc)


def take_violations() -> list:
    """The violations seen since the last call (and forget them)."""
    with _lock:
        out = list(_violations)
        _violations.clear()
    return out


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return Draft202012Validator(schema)


def problems(name: str, value) -> list:
    """Readable violations of schema `name` (e.g. "openai/error") by `value`; empty if none."""
    errors = sorted(validator(name).iter_errors(value), key=lambda e: list(e.absolute_path))
    out = []
    for error in errors[:5]:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        # In an `anyOf`/`if-then` the deepest cause says most.
        leaf = min(error.context or [error], key=lambda e: -len(e.absolute_path))
        message = leaf.message if len(leaf.message) < 300 else leaf.message[:300] + "…"
        out.append(f"{name} at {where}: {message}")
    return out


# ---- Which schema answers which request ---------------------------------------------------


def _speaks_gemini(request) -> bool:
    """Whether the gateway takes `request` for a Gemini one (as routes/gemini.rs decides):
    a /v1beta path, a POST to /v1/models/…, or a Google client on /v1/models."""
    path = request.url.path
    if path.startswith("/v1beta/") or path == "/v1beta":
        return True
    if not path.startswith("/v1/models"):
        return False
    google_client = "x-goog-api-key" in request.headers or "x-goog-api-client" in request.headers
    return (request.method == "POST" and path.startswith("/v1/models/")) or google_client or "key" in request.url.params


def _surface(method: str, path: str, gemini: bool):
    """(json schema, sse schema, error schema) of an inference route; None elsewhere."""
    if gemini:
        # Gemini's own surface: `…/models/{model}:{action}`, and the model list.
        action = path.rsplit(":", 1)[-1] if ":" in path.rsplit("/", 1)[-1] else None
        answers = {
            "generateContent": "gemini/generate_content_response",
            "streamGenerateContent": "gemini/generate_content_response",
            "countTokens": "gemini/count_tokens_response",
            "embedContent": "gemini/embed_content_response",
            "batchEmbedContents": "gemini/batch_embed_contents_response",
        }
        if action is not None:
            answer = answers.get(action)
        elif method == "GET":
            answer = "gemini/model_list" if path.rstrip("/").endswith("/models") else "gemini/model"
        else:
            answer = None
        return answer, answer, "gemini/error"
    if not path.startswith("/v1/"):
        return None
    if path == "/v1/messages/count_tokens":
        return "anthropic/count_tokens", None, "anthropic/error"
    if path.startswith("/v1/messages"):
        return "anthropic/message", "anthropic/stream_event", "anthropic/error"
    routes = {
        ("POST", "/v1/chat/completions"): ("openai/chat_completion", "openai/chat_completion_chunk"),
        ("POST", "/v1/completions"): ("openai/completion", "openai/completion_chunk"),
        ("POST", "/v1/embeddings"): ("openai/embedding_list", None),
        ("GET", "/v1/models"): ("openai/model_list", None),
        ("POST", "/v1/responses"): ("openai/response", "openai/response_stream_event"),
    }
    if (method, path) in routes:
        return (*routes[(method, path)], "openai/error")
    if method == "GET" and path.startswith("/v1/models/"):
        # OpenAI's retrieve model: one entry of the list.
        return "openai/model", None, "openai/error"
    if path.startswith("/v1/responses/"):
        rest = path.removeprefix("/v1/responses/")
        kept = "response" if method == "GET" and "/" not in rest else None
        cancelled = "response" if method == "POST" and rest.endswith("/cancel") else None
        schema = kept or cancelled
        return (f"openai/{schema}" if schema else None), "openai/response_stream_event", "openai/error"
    return None, None, "openai/error"


def check(
    method: str, url: str, status: int, headers: httpx.Headers, body: bytes, complete: bool, gemini: bool = False
) -> list:
    """Violations of the answer (`body` as read; `complete` when read to its end);
    `gemini` when the request spoke the Gemini API."""
    path = urlsplit(url).path
    surface = _surface(method, path, gemini)
    if surface is None:
        return []
    json_schema, sse_schema, error_schema = surface
    what = f"{method} {path} → {status}"
    content_type = headers.get("content-type", "")
    if status >= 400:
        if not complete:
            return []
        return [f"{what}: {p}" for p in _json_problems(error_schema, body)]
    if status != 200:
        return []
    if content_type.startswith("text/event-stream"):
        if sse_schema is None:
            return [f"{what}: streamed, but this route has no stream"]
        return [f"{what}: {p}" for p in _sse_problems(sse_schema, error_schema, body, complete)]
    if json_schema is None or not complete:
        return []
    if gemini and path.endswith(":streamGenerateContent"):
        # Without alt=sse, Gemini streams one JSON array of answers.
        try:
            items = json.loads(body)
        except ValueError as e:
            return [f"{what}: not JSON ({e})"]
        if not isinstance(items, list):
            return [f"{what}: not a JSON array of answers"]
        return [f"{what} [{i}]: {p}" for i, item in enumerate(items) for p in problems(json_schema, item)]
    return [f"{what}: {p}" for p in _json_problems(json_schema, body)]


def _json_problems(schema: str, body: bytes) -> list:
    try:
        value = json.loads(body)
    except ValueError as e:
        return [f"not JSON ({e}): {body[:200]!r}"]
    return problems(schema, value)


def _sse_problems(schema: str, error_schema: str, body: bytes, complete: bool) -> list:
    out = []
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n")
    blocks = text.split("\n\n")
    if not complete or not text.endswith("\n\n"):
        blocks = blocks[:-1]  # the last event was cut short by the reader, not the gateway
    for n, block in enumerate(blocks):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if not data:
            continue
        raw = "\n".join(data)
        if raw == "[DONE]" and schema.startswith(("openai/chat", "openai/completion")):
            continue
        try:
            event = json.loads(raw)
        except ValueError as e:
            out.append(f"event {n}: not JSON ({e}): {raw[:200]!r}")
            continue
        # A chat, completions or Gemini stream ends a failure with a bare error object.
        is_error = isinstance(event, dict) and "error" in event and "type" not in event
        label = name or (event.get("type") if isinstance(event, dict) else None) or "?"
        out += [f"event {n} ({label}): {p}" for p in problems(error_schema if is_error else schema, event)]
        if name is not None and isinstance(event, dict) and "type" in event and event["type"] != name:
            out.append(f"event {n}: SSE event name {name!r} differs from its type {event['type']!r}")
    return out


# ---- The transport hook --------------------------------------------------------------------


class _Recording:
    """Passes the answer's bytes through, keeping a copy; validates it when closed or read
    to its end. Mixed into the sync byte stream type of httpx or httpx2 by `_hook`."""

    def __init__(self, inner, request, status: int, headers):
        self.inner, self.request, self.status, self.headers = inner, request, status, headers
        self.chunks: list = []
        self.complete = False
        self.checked = False

    def __iter__(self):
        for chunk in self.inner:
            self.chunks.append(chunk)
            yield chunk
        self.complete = True
        self._check()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self._check()

    def _check(self) -> None:
        if self.checked:
            return
        self.checked = True
        raw = b"".join(self.chunks)
        encoding = self.headers.get("content-encoding")
        if encoding:
            raw = httpx.Response(200, headers={"content-encoding": encoding}, content=raw).read()
        headers = httpx.Headers(list(self.headers.multi_items()))
        gemini = _speaks_gemini(self.request)
        found = check(self.request.method, str(self.request.url), self.status, headers, raw, self.complete, gemini)
        if found:
            with _lock:
                _violations.extend(found)


def _hook(module) -> None:
    """Wrap `module.HTTPTransport` (httpx's, or httpx2's, which the SDKs use)."""
    original = module.HTTPTransport.handle_request
    recording = type("Recording", (_Recording, module.SyncByteStream), {})

    def handle_request(self, request):
        response = original(self, request)
        if request.url.netloc.decode("ascii") not in _watched:
            return response
        stream = recording(response.stream, request, response.status_code, response.headers)
        return module.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    module.HTTPTransport.handle_request = handle_request


_installed = False


def install() -> None:
    """Wrap the sync transports of httpx and httpx2 (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    _hook(httpx)
    try:
        import httpx2
    except ImportError:
        return
    _hook(httpx2)
