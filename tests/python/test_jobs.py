"""Async jobs (CONTRACTS §8) with the official `openai` Python SDK: a background response
created, polled and cancelled in OpenAI's own form, and a chat completion queued with
`Prefer: respond-async`, then polled at `/api/jobs/{id}`."""

from __future__ import annotations

import time

import httpx
import openai
import pytest


def _poll(fetch, done, seconds: float = 10.0):
    deadline = time.time() + seconds
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.time() < deadline, value
        time.sleep(0.05)


def test_background_response_round_trip(client):
    """`responses.create(background=True)` answers at once, `queued`; `retrieve` polls it to
    `completed` under the same id, with the answer a synchronous call gets."""
    created = client.responses.create(model="gpt-4o-mini", input="Write a haiku about queues.", background=True)
    assert created.status == "queued", created
    assert created.background is True
    assert created.id.startswith("resp_")
    done = _poll(lambda: client.responses.retrieve(created.id), lambda r: r.status not in ("queued", "in_progress"))
    assert done.status == "completed", done
    assert done.id == created.id
    assert done.output_text.strip()
    assert done.usage.output_tokens > 0
    direct = client.responses.create(model="gpt-4o-mini", input="Write a haiku about queues.")
    assert done.output_text == direct.output_text


def test_background_response_cancel(client):
    """`responses.cancel` stops one still running; a second cancel is refused (409)."""
    created = client.responses.create(model="background-slow", input="Take your time.", background=True)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.id == created.id
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    with pytest.raises(openai.APIStatusError) as e:
        client.responses.cancel(created.id)
    assert e.value.status_code == 409


def test_async_chat_completion_polled_as_a_job(gateway, client):
    """The SDK's raw response shows the 202; the job is polled with the same key."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Queue this, please."}],
        extra_headers={"Prefer": "respond-async"},
    )
    assert raw.status_code == 202
    assert raw.headers["preference-applied"] == "respond-async"
    location = raw.headers["location"]
    assert location.startswith("/api/jobs/job_")
    root = gateway.base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {gateway.key}"}
    job = _poll(
        lambda: httpx.get(f"{root}{location}", headers=headers).json(),
        lambda j: j["status"] not in ("queued", "in_progress"),
    )
    assert job["status"] == "completed", job
    assert job["result"]["choices"][0]["message"]["content"]
    assert float(job["cost_usd"]) > 0
    direct = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Queue this, please."}]
    )
    assert job["result"]["choices"][0]["message"]["content"] == direct.choices[0].message.content
