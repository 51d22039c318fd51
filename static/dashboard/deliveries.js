// The job page follows its job to the end: it asks the progress endpoint once a second and stops when the
// job is done or failed. Without this script the page refreshes itself (a <noscript> meta refresh).
(function () {
  "use strict";

  var card = document.getElementById("job");
  if (!card || card.dataset.finished === "true") return;

  var url = card.dataset.progressUrl;
  var INTERVAL = 1000;
  var failures = 0;

  function byTestId(id) {
    return document.querySelector("[data-testid=" + id + "]");
  }

  function setText(id, text) {
    var node = byTestId(id);
    if (node) node.textContent = text;
  }

  function renderResults(results) {
    var body = byTestId("job-results").querySelector("tbody");
    body.textContent = "";
    if (!results.length) {
      var empty = body.insertRow();
      empty.className = "none";
      var cell = empty.insertCell();
      cell.colSpan = 2;
      cell.className = "muted";
      cell.textContent = "Nothing worked through yet.";
      return;
    }
    results.forEach(function (result) {
      var row = body.insertRow();
      row.dataset.key = result.key;
      row.insertCell().textContent = result.label;
      var count = row.insertCell();
      count.className = "num";
      count.textContent = result.count;
    });
  }

  function render(job) {
    var status = byTestId("job-status");
    status.textContent = job.status_label;
    status.className = "badge job-" + job.status;
    byTestId("job-bar").style.width = job.percent + "%";
    var bar = card.querySelector("[role=progressbar]");
    bar.setAttribute("aria-valuenow", job.done);
    bar.setAttribute("aria-valuemax", job.total);
    setText("job-done", job.done);
    setText("job-total", job.total);
    setText("job-percent", Math.floor(job.percent));
    setText("job-started", job.started_at || "not yet");
    setText("job-finished", job.finished_at || "not yet");
    var error = byTestId("job-error");
    error.textContent = job.error;
    error.hidden = !job.error;
    renderResults(job.results);
    if (job.finished) {
      card.dataset.finished = "true";
      byTestId("job-live").hidden = true;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        failures = 0;
        render(job);
        if (!job.finished) setTimeout(poll, INTERVAL);
      })
      .catch(function () {
        // A restarting server or a dropped connection: keep trying, more slowly.
        failures += 1;
        setTimeout(poll, Math.min(INTERVAL * Math.pow(2, failures), 30000));
      });
  }

  setTimeout(poll, INTERVAL);
})();
