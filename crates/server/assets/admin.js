// Token Router dashboard: the admin page (a grant updates its row in place; new
// redemption codes are shown once). app.js does the API calls.
"use strict";

(() => {
  const usd = (decimal) => (String(decimal).startsWith("-") ? "-$" + String(decimal).slice(1) : "$" + decimal);

  document.addEventListener("api:done", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;

    // A grant answers with its ledger row, which holds the account's new balance.
    if (form.classList.contains("grant")) {
      const row = form.closest("tr");
      const name = row && row.querySelector(".account-name");
      const balance = row && row.querySelector("[data-balance]");
      if (balance) balance.textContent = usd(event.detail.balance_after_usd);
      form.reset();
      TR.say("Granted " + usd(event.detail.amount_usd) + " to " + (name ? name.textContent : "the account") +
        ". Its balance is now " + usd(event.detail.balance_after_usd) + ".");
      return;
    }

    // New codes: shown here once, never again.
    if (form.id === "create-codes") {
      const result = document.getElementById("codes-result");
      const codes = document.getElementById("new-codes");
      if (!result || !codes) return;
      codes.textContent = (event.detail.codes || []).join("\n");
      result.hidden = false;
      form.reset();
      const n = (event.detail.codes || []).length;
      TR.say("Created " + n + (n === 1 ? " code." : " codes.") + " Copy them now: they are not shown again.");
      codes.focus();
    }
  });
})();
