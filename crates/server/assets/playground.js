// Token Router dashboard: the playground page. The conversation lives in this page's
// memory; each turn POSTs it to /api/playground/chat/completions (the session cookie,
// from this origin), appends the streamed deltas to the answer as they arrive, then
// shows the turn's tokens and its exact cost from the request log.
"use strict";

(() => {
  const form = document.getElementById("playground");
  const log = document.getElementById("chat-log");
  if (!form || !log) return;
  const fields = form.elements;
  const send = form.querySelector("button[type=submit]");
  let history = [];
  let busy = false;

  function bubble(role, text) {
    const el = document.createElement("div");
    el.className = "msg " + role;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    el.appendChild(body);
    log.appendChild(el);
    el.scrollIntoView({ block: "nearest" });
    return el;
  }

  function meta(el, text) {
    let m = el.querySelector(".meta");
    if (!m) {
      m = document.createElement("span");
      m.className = "meta";
      el.appendChild(m);
    }
    m.textContent = text;
    return m;
  }

  function failure(data, status) {
    const message = data && data.error && data.error.message;
    return new Error(message || ("The gateway answered " + status + "."));
  }

  // The request's row in the request log (written within a moment of the stream's end):
  // its cost is exactly what the balance was charged.
  async function logged(requestId) {
    for (let attempt = 0; attempt < 12; attempt++) {
      try {
        const page = await TR.api("GET", "/api/requests?limit=50");
        const row = page && page.data.find((r) => r.id === requestId);
        if (row) return row;
      } catch (e) {
        return null;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return null;
  }

  // Reads an SSE body chunk by chunk; calls onData with each event's parsed JSON.
  async function readEvents(response, onData) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const flush = (block) => {
      for (const line of block.split(/\r?\n/)) {
        if (!line.startsWith("data:")) continue;
        const payload = line.slice(5).trim();
        if (payload === "" || payload === "[DONE]") continue;
        onData(JSON.parse(payload));
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        flush(block);
      }
    }
    flush(buffer + decoder.decode());
  }

  async function turn() {
    const text = fields.message.value.trim();
    if (busy || !text) return;
    form.querySelector("[data-error]").textContent = "";
    const model = fields.model.value;
    const user = { role: "user", content: text };
    const messages = [];
    const system = fields.system.value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...history, user);
    const body = { model, messages, stream: true, stream_options: { include_usage: true } };
    if (fields.temperature.value !== "") body.temperature = Number(fields.temperature.value);
    if (fields.max_tokens.value !== "") body.max_tokens = Number(fields.max_tokens.value);

    const asked = bubble("user", text);
    const answer = bubble("assistant", "");
    answer.setAttribute("aria-busy", "true");
    const out = answer.querySelector(".text");
    fields.message.value = "";
    busy = true;
    send.disabled = true;
    let content = "";
    let usage = null;
    let requestId = null;
    try {
      let response;
      try {
        response = await fetch("/api/playground/chat/completions", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
        });
      } catch (e) {
        throw new Error("The gateway could not be reached. Check your connection and try again.");
      }
      if (response.status === 401) {
        location.assign(TR.loginUrl());
        throw new Error("Your session has ended; signing in again…");
      }
      requestId = response.headers.get("x-request-id");
      if (!response.ok) {
        throw failure(await response.json().catch(() => null), response.status);
      }
      await readEvents(response, (chunk) => {
        if (chunk.error) throw failure(chunk, "an error");
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && typeof delta.content === "string" && delta.content !== "") {
          content += delta.content;
          out.textContent = content;
        }
        if (chunk.usage) usage = chunk.usage;
      });
      history.push(user, { role: "assistant", content });
      const tokens = usage
        ? usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion tokens"
        : "tokens unknown";
      const m = meta(answer, model + " · " + tokens + " · cost …");
      const row = requestId ? await logged(requestId) : null;
      if (row) {
        m.dataset.costUsd = row.cost_usd;
        m.textContent = model + " · " + tokens + " · $" + row.cost_usd;
      } else {
        m.textContent = model + " · " + tokens + " · cost in the request log";
      }
    } catch (e) {
      TR.showError(form, e);
      if (content === "") {
        answer.remove();
        asked.remove();
        fields.message.value = text;
      } else {
        meta(answer, "Interrupted: " + e.message);
      }
    } finally {
      answer.removeAttribute("aria-busy");
      busy = false;
      send.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    turn();
  });
  fields.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      turn();
    }
  });
  form.querySelector("[data-new-chat]").addEventListener("click", () => {
    if (busy) return;
    history = [];
    log.textContent = "";
    form.querySelector("[data-error]").textContent = "";
    fields.message.focus();
  });
})();
