// The lists of submissions: refresh the status of the rows still running, every few seconds, until none is.
(function () {
  "use strict";
  var table = document.getElementById("submission-list");
  if (!table) return;
  var url = table.getAttribute("data-status-url");
  var note = document.getElementById("live-note");
  var delay = 5000;

  function active() {
    return Array.prototype.slice.call(table.querySelectorAll("tr[data-active]"));
  }

  function update(row, state) {
    var badge = row.querySelector("[data-field=status]");
    if (badge.textContent !== state.status) {
      badge.textContent = state.status;
      badge.className = "badge " + state.status;
    }
    if (state.finished) row.querySelector("[data-field=finished]").textContent = state.finished;
    if (!state.active) row.removeAttribute("data-active");
  }

  function poll() {
    var rows = active();
    if (!rows.length) {
      if (note) note.textContent = "";
      return;
    }
    if (note) note.textContent = "Statuses refresh while submissions run.";
    var query = rows.map(function (row) { return "uuid=" + encodeURIComponent(row.getAttribute("data-uuid")); }).join("&");
    fetch(url + "?" + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : {}; })
      .then(function (states) {
        rows.forEach(function (row) {
          var state = states[row.getAttribute("data-uuid")];
          if (state) update(row, state);
        });
      })
      .catch(function () { /* try again next time */ })
      .then(function () { window.setTimeout(poll, delay); });
  }

  window.setTimeout(poll, delay);
}());
