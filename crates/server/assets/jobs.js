// Token Router dashboard: a job's page. While the job is queued or running, its status
// is polled through the API (app.js's TR.api); when it changes, the page reloads to show
// the new state and, once completed, the answer. Without this script the page is the
// same, only not refreshed.
"use strict";

(() => {
  const watched = document.querySelector("[data-watch-job]");
  if (!watched) return;
  const id = watched.dataset.watchJob;
  const shown = watched.dataset.status;
  const started = Date.now();

  async function check() {
    let job;
    try {
      job = await TR.api("GET", "/api/jobs/" + encodeURIComponent(id));
    } catch (e) {
      TR.say("This page stopped following the job: " + e.message + " Reload to see where it stands.");
      return;
    }
    if (job && job.status !== shown) {
      location.reload();
      return;
    }
    // Every 2 s for the first minutes, then every 15 s (a long queue need not be hammered).
    setTimeout(check, Date.now() - started < 180000 ? 2000 : 15000);
  }

  setTimeout(check, 1000);
})();
