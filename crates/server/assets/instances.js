// Token Router dashboard: the instances pages. Registering an instance (the Models text
// becomes the API's [{id, upstream_model}]), its key shown once with the commands that
// start a server with it, rotating a key, and leaving the detail page after a delete.
// app.js does the other API calls (data-api buttons and forms).
"use strict";

(() => {
  const FLASH = "tr:flash";

  function flashAfterReload(message, where) {
    try { sessionStorage.setItem(FLASH, message); } catch (e) { /* storage off: no message */ }
    if (where) location.assign(where); else location.reload();
  }

  try {
    const pending = sessionStorage.getItem(FLASH);
    if (pending) {
      sessionStorage.removeItem(FLASH);
      TR.say(pending);
    }
  } catch (e) { /* storage off */ }

  // "catalog-id" or "catalog-id=upstream-name", one a line (commas also separate).
  function parseModels(text) {
    const models = [];
    for (const line of text.split(/[\n,]+/)) {
      const entry = line.trim();
      if (!entry) continue;
      const eq = entry.indexOf("=");
      if (eq < 0) {
        models.push({ id: entry });
      } else {
        const id = entry.slice(0, eq).trim();
        const upstream = entry.slice(eq + 1).trim();
        models.push(upstream ? { id, upstream_model: upstream } : { id });
      }
    }
    return models;
  }

  const dialog = document.getElementById("new-instance");
  const keyEl = document.getElementById("new-instance-key");
  const vllm = document.getElementById("start-vllm");
  const llama = document.getElementById("start-llama");
  const heading = document.getElementById("new-instance-h");
  let afterClose = null;

  // Shows `key` once, with the commands that start a server with it for `upstream`.
  function showKey(key, upstream, title, message, where) {
    if (!dialog || !keyEl) return;
    const model = upstream || "<model>";
    keyEl.textContent = key;
    if (vllm) vllm.textContent = "vllm serve " + model + " --api-key " + key + " --port 8000";
    if (llama) llama.textContent = "llama-server -m model.gguf --api-key " + key + " --port 8000 --alias " + model;
    if (heading && title) heading.textContent = title;
    afterClose = () => flashAfterReload(message, where);
    dialog.showModal();
    const copy = dialog.querySelector("button[data-copy]");
    if (copy) copy.focus();
  }

  if (dialog) {
    dialog.addEventListener("close", () => {
      // Forget the key: it is never shown again.
      if (keyEl) keyEl.textContent = "";
      if (vllm) vllm.textContent = "";
      if (llama) llama.textContent = "";
      if (afterClose) afterClose();
      afterClose = null;
    });
  }

  const form = document.getElementById("register-instance");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector("[data-error]");
      if (error) error.textContent = "";
      const value = (name) => (form.elements[name] ? form.elements[name].value.trim() : "");
      const body = { name: value("name"), base_url: value("base_url"), models: parseModels(value("models")) };
      if (body.models.length === 0) {
        if (error) error.textContent = "List at least one model, one a line: catalog-id or catalog-id=upstream-name.";
        return;
      }
      const region = value("region");
      if (region) body.region = region;
      const submit = form.querySelector("button[type=submit]");
      if (submit) submit.disabled = true;
      try {
        const created = await TR.api("POST", "/api/instances", body);
        form.reset();
        const upstream = created.models && created.models[0] ? created.models[0].upstream_model : "";
        showKey(created.instance_key, upstream, "Copy your instance key",
          "Instance “" + created.name + "” registered. It is probed as soon as its server answers.");
      } catch (e) {
        TR.showError(form, e);
      } finally {
        if (submit) submit.disabled = false;
      }
    });
  }

  document.addEventListener("api:done", (event) => {
    const el = event.target;
    if (!el.matches) return;
    if (el.matches("button[data-api$='/rotate-key']")) {
      showKey(event.detail.instance_key, el.dataset.upstream, "Copy the new instance key",
        "Key rotated: restart the server with the new key; the old one no longer works.");
    } else if (el.matches("button[data-api^='DELETE /api/instances/'][data-instance-delete]")) {
      flashAfterReload("Instance deleted: no new request goes to it.", el.dataset.instanceDelete);
    } else if (el.matches("button[data-api^='PATCH /api/instances/']")) {
      flashAfterReload(event.detail.enabled ? "Instance enabled: it is probed again before it gets traffic." : "Instance disabled: no new request goes to it.");
    } else if (el.matches("button[data-api*='/processing-units'], button[data-api*='/software'], form[data-api*='/processing-units'], form[data-api*='/software']")) {
      flashAfterReload("Inventory saved.");
    }
  });
})();
