"""`GET /metrics` read by the official Prometheus client's text parser, after a workload
whose numbers the test knows (a gateway of its own, so no other test's requests count)."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import _gateway


@pytest.fixture(scope="module")
def metered(mock_upstream):
    yield from _gateway(mock_upstream)


def _scrape(gw) -> dict:
    root = gw.base_url.removesuffix("/v1")
    response = httpx.get(f"{root}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert gw.key not in response.text
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _value(family, **labels) -> float:
    matches = [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (family.name, labels, family.samples)
    return matches[0]


def test_metrics_after_a_known_workload(metered):
    client = metered.client()
    prompt = completion = 0
    for text in ("one", "two words", "three words here"):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage:
            prompt += chunk.usage.prompt_tokens
            completion += chunk.usage.completion_tokens

    # The histograms are fed by the usage writer, a moment after each answer; the holds
    # close when it has written them.
    model = {"gen_ai_request_model": "gpt-4o-mini", "gen_ai_operation_name": "chat"}
    deadline = time.time() + 10
    while True:
        families = _scrape(metered)
        tokens = families["gen_ai_client_token_usage"]
        counts = [s for s in tokens.samples if s.name.endswith("_count") and s.labels.get("gen_ai_token_type") == "input"]
        settled = _value(families["tokenrouter_holds_open"]) == 0
        if counts and counts[0].value == 4 and settled or time.time() > deadline:
            break
        time.sleep(0.05)

    requests = families["tokenrouter_requests"]
    assert requests.type == "counter"
    assert _value(requests, route="/v1/chat/completions", status="200") == 4
    attempts = families["tokenrouter_upstream_attempts"]
    provider = next(s.labels["provider"] for s in attempts.samples if s.labels["outcome"] == "success" and s.value == 4)
    assert provider, attempts.samples

    assert tokens.type == "histogram"
    for kind, total in (("input", prompt), ("output", completion)):
        labels = dict(model, gen_ai_token_type=kind)
        samples = [s for s in tokens.samples if all(s.labels.get(k) == v for k, v in labels.items())]
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        cumulative = [s.value for s in buckets]
        assert cumulative == sorted(cumulative), buckets
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 4
        assert next(s.value for s in samples if s.name.endswith("_count")) == 4
        assert next(s.value for s in samples if s.name.endswith("_sum")) == total

    duration = families["gen_ai_server_request_duration_seconds"]
    assert _value(duration, **model, gen_ai_provider_name=provider, le="+Inf") == 4
    ttft = families["gen_ai_server_time_to_first_token_seconds"]
    assert _value(ttft, **model, gen_ai_provider_name=provider, le="+Inf") == 1

    assert _value(families["tokenrouter_holds_open"]) == 0
    assert {s.labels["status"] for s in families["tokenrouter_jobs"].samples} >= {"queued", "in_progress", "completed"}
    assert _value(families["tokenrouter_redis_fallback"]) == 0
    assert _value(families["tokenrouter_store_up"]) == 1
