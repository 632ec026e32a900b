// Token Router dashboard: the connect page. Choosing another default model rebuilds the
// snippets at once (the form works without this script too: "Use model").
"use strict";

(() => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => {
      if (select.form) select.form.requestSubmit();
    });
  }
})();
