// The page of a running run: poll its JSON every few seconds and update the status,
// progress and duration in place (text and widths only, never HTML); once the run has
// left "running", reload the page once to show its journal and outcome.
(function () {
  "use strict";
  var root = document.getElementById("durable-live");
  if (!root) return;
  var url = root.dataset.url;
  var interval = parseInt(root.dataset.interval, 10) || 2000;
  function set(id, text) {
    var element = document.getElementById(id);
    if (element) element.textContent = text;
  }
  function update(state) {
    var badge = document.querySelector(".durable-header .durable-badge");
    if (badge) {
      badge.className = "durable-badge durable-" + state.status;
      badge.textContent = state.status_label;
    }
    var row = document.getElementById("durable-progress-row");
    if (row && state.progress) row.hidden = false;
    var bar = document.getElementById("durable-progress-bar");
    if (bar) {
      bar.hidden = state.progress_percent === null;
      bar.firstElementChild.style.width = (state.progress_percent || 0) + "%";
    }
    set("durable-progress-text", state.progress_text);
    set("durable-duration", state.duration);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (state) {
        update(state);
        if (state.running) window.setTimeout(poll, interval);
        else window.location.reload();
      })
      .catch(function () {
        window.setTimeout(poll, interval * 5); // the server is busy or gone: ask less often
      });
  }
  window.setTimeout(poll, interval);
})();
