// Token Router dashboard: the behaviour every page shares. Pages work as plain HTML;
// this script turns forms and buttons marked data-api into calls to the management API.
"use strict";

const TR = (() => {
  const loginUrl = () => "/login?next=" + encodeURIComponent(location.pathname + location.search);

  // Calls the management API with the session cookie. A 401 means the session ended:
  // go to the sign-in page (and come back here after). Other errors throw with the
  // API's own message.
  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new Error("The gateway could not be reached. Check your connection and try again.");
    }
    if (response.status === 401) {
      location.assign(loginUrl());
      throw new Error("Your session has ended; signing in again…");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message || ("The gateway answered " + response.status + "."));
    }
    return data;
  }

  // A form's fields as the JSON body the API expects. Each field's data-kind says how:
  // text (default), int, list (commas or new lines), bool (checkbox), date (→ end of
  // that UTC day), json. Empty fields are left out, or sent as null with data-empty="null".
  function body(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const kind = el.dataset.kind || "text";
      if (kind === "bool") { out[el.name] = el.checked; continue; }
      const raw = el.value.trim();
      if (raw === "") {
        if (el.dataset.empty === "null") out[el.name] = null;
        else if (el.dataset.empty === "list") out[el.name] = [];
        continue;
      }
      if (kind === "int") out[el.name] = Number(raw);
      else if (kind === "list") out[el.name] = raw.split(/[\s,]+/).filter(Boolean);
      else if (kind === "date") out[el.name] = raw + "T23:59:59Z";
      else out[el.name] = raw;
    }
    return out;
  }

  function say(message) {
    const flash = document.getElementById("flash");
    if (flash) flash.textContent = message;
  }

  function showError(scope, error) {
    const place = (scope && scope.querySelector("[data-error]")) || document.getElementById("flash");
    if (place) {
      place.textContent = error.message;
      place.setAttribute("role", "alert");
    }
  }

  function done(el, data) {
    el.dispatchEvent(new CustomEvent("api:done", { detail: data, bubbles: true }));
    const then = el.dataset.done || "";
    if (then === "reload") location.reload();
    else if (then.startsWith("flash:")) say(then.slice(6));
  }

  function target(el) {
    const [method, path] = el.dataset.api.split(" ");
    return { method, path };
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-api]")) return;
    event.preventDefault();
    const { method, path } = target(form);
    const error = form.querySelector("[data-error]");
    if (error) error.textContent = "";
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    const submit = form.querySelector("button[type=submit], button:not([type])");
    if (submit) submit.disabled = true;
    try {
      done(form, await api(method, path, body(form)));
    } catch (e) {
      showError(form, e);
    } finally {
      if (submit) submit.disabled = false;
    }
  });

  document.addEventListener("click", async (event) => {
    const el = event.target.closest("button[data-api], button[data-copy], button[data-logout]");
    if (!el) return;
    if (el.dataset.copy !== undefined) {
      const source = document.querySelector(el.dataset.copy);
      const text = source ? (source.value !== undefined && source.tagName !== "PRE" && source.tagName !== "CODE" ? source.value : source.textContent) : "";
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range);
        document.execCommand("copy");
      }
      const before = el.textContent;
      el.textContent = "Copied";
      setTimeout(() => { el.textContent = before; }, 1500);
      return;
    }
    if (el.dataset.logout !== undefined) {
      try { await api("POST", "/auth/logout"); } catch (e) { /* already signed out */ }
      location.assign("/login");
      return;
    }
    if (el.dataset.confirm && !confirm(el.dataset.confirm)) return;
    const { method, path } = target(el);
    el.disabled = true;
    try {
      const payload = el.dataset.body ? JSON.parse(el.dataset.body) : undefined;
      done(el, await api(method, path, payload));
    } catch (e) {
      showError(el.closest("section, form, main"), e);
    } finally {
      el.disabled = false;
    }
  });

  return { api, body, say, showError, loginUrl };
})();
