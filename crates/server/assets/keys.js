// Token Router dashboard: the keys page (the new secret shown once, editing a key's
// limits) and the balance page (redeeming a code). app.js does the API calls.
"use strict";

(() => {
  const FLASH = "tr:flash";

  // A message to show after the reload a change asks for.
  function flashAfterReload(message) {
    try { sessionStorage.setItem(FLASH, message); } catch (e) { /* storage off: no message */ }
    location.reload();
  }

  try {
    const pending = sessionStorage.getItem(FLASH);
    if (pending) {
      sessionStorage.removeItem(FLASH);
      TR.say(pending);
    }
  } catch (e) { /* storage off */ }

  const usd = (decimal) => (String(decimal).startsWith("-") ? "-$" + String(decimal).slice(1) : "$" + decimal);

  // Creating a key: the answer holds the secret, this once. Show it in the dialog; when
  // the dialog closes, forget it and reload the list.
  const created = document.getElementById("new-key");
  const secret = document.getElementById("new-key-secret");
  const createForm = document.getElementById("create-key");
  if (created && secret && createForm) {
    createForm.addEventListener("api:done", (event) => {
      secret.textContent = event.detail.key;
      createForm.reset();
      created.showModal();
      const copy = created.querySelector("button[data-copy]");
      if (copy) copy.focus();
    });
    created.addEventListener("close", () => {
      secret.textContent = "";
      flashAfterReload("Key created. Its secret is no longer shown anywhere.");
    });
  }

  // Editing a key: its form comes from the key's <template> into the edit dialog.
  const edit = document.getElementById("edit-key");
  const editBody = edit && edit.querySelector("[data-edit-body]");
  document.addEventListener("click", (event) => {
    const open = event.target.closest("button[data-edit-key]");
    if (open && edit && editBody) {
      const template = document.getElementById("edit-tpl-" + open.dataset.editKey);
      if (!template) return;
      editBody.replaceChildren(template.content.cloneNode(true));
      const row = open.closest("tr");
      const name = row && row.querySelector(".key-name");
      document.getElementById("edit-key-h").textContent = "Edit key " + (name ? "“" + name.textContent + "”" : "");
      edit.showModal();
      const first = editBody.querySelector("input, textarea");
      if (first) first.focus();
      return;
    }
    const close = event.target.closest("[data-close-dialog]");
    if (close) {
      const dialog = close.closest("dialog");
      if (dialog) dialog.close();
    }
  });
  if (edit && editBody) edit.addEventListener("close", () => editBody.replaceChildren());

  // Only the fields that changed are sent, so an untouched expiry or limit stays exactly
  // as it is; an emptied limit is sent as null (no limit).
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-edit-key]")) return;
    event.preventDefault();
    const error = form.querySelector("[data-error]");
    if (error) error.textContent = "";
    const untouched = [];
    for (const el of form.elements) {
      if (el.name && !el.disabled && el.value === el.defaultValue) {
        el.disabled = true;
        untouched.push(el);
      }
    }
    const body = TR.body(form);
    for (const el of untouched) el.disabled = false;
    if (Object.keys(body).length === 0) {
      if (error) error.textContent = "Nothing changed yet: edit a field, or Cancel.";
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    if (submit) submit.disabled = true;
    try {
      const key = await TR.api("PATCH", "/api/keys/" + encodeURIComponent(form.dataset.editKey), body);
      flashAfterReload("Saved changes to " + (key.name ? "“" + key.name + "”" : "the key") + ".");
    } catch (e) {
      TR.showError(form, e);
    } finally {
      if (submit) submit.disabled = false;
    }
  });

  document.addEventListener("api:done", (event) => {
    const el = event.target;
    // Revoking (app.js reloads the page after this).
    if (el.matches && el.matches("button[data-api^='DELETE /api/keys/']")) {
      try { sessionStorage.setItem(FLASH, "Key revoked: requests that use it now get 401."); } catch (e) { /* storage off */ }
    }
    // Redeeming a code: reload so the balance and the ledger show it.
    if (el.id === "redeem") {
      flashAfterReload("Credited " + usd(event.detail.credited_usd) + ". Your balance is now " + usd(event.detail.balance_usd) + ".");
    }
  });
})();
