// Keep the submission page current while the submission is active: fetch the
// server-rendered live fragment every two seconds and swap it in. Links marked
// data-confirm (Cancel, Restart) open their confirmation in a dialog instead of
// a page of its own; without this script they lead to that page.
(function () {
  const live = document.getElementById("live");
  const dialog = document.getElementById("confirm");

  if (dialog && typeof dialog.showModal === "function") {
    document.addEventListener("click", async (event) => {
      const link = event.target.closest && event.target.closest("a[data-confirm]");
      if (!link) return;
      event.preventDefault();
      try {
        const response = await fetch(link.href, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        dialog.innerHTML = await response.text();
        dialog.returnFocus = link;
        dialog.showModal();
      } catch (error) {
        window.location.href = link.href; // the page of its own still asks
      }
    });
    dialog.addEventListener("close", () => {
      if (dialog.returnFocus && document.contains(dialog.returnFocus)) dialog.returnFocus.focus();
    });
  }

  if (!live) return;
  // The page's own query (?before= for older messages) goes with each fetch.
  const url = live.dataset.liveUrl + window.location.search;
  let active = live.dataset.active === "true";

  // Someone is using a form inside the live part (an answer being typed, a
  // button in focus), or a confirmation is open: swapping now would throw their input away.
  function inUse() {
    if (dialog && dialog.open) return true;
    if (live.contains(document.activeElement) && document.activeElement !== live) return true;
    return Array.from(live.querySelectorAll("textarea, input[type=text], input:not([type])")).some((field) => field.value !== "");
  }

  async function refresh() {
    try {
      const response = await fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
      // Not OK (a busy server, a restart): keep the page as it is and try again on the next tick.
      if (response.ok && !inUse()) {
        const html = await response.text();
        const holder = document.createElement("div");
        holder.innerHTML = html;
        const status = holder.querySelector(".status-line");
        const open = Array.from(live.querySelectorAll("details[open]"), (item) => item.className);
        live.replaceChildren(...holder.childNodes);
        // A legend someone opened stays open.
        open.forEach((name) => live.querySelectorAll("details").forEach((item) => { if (item.className === name) item.open = true; }));
        active = status && ["submitted", "running", "paused", "waiting"].includes(status.dataset.status);
      }
    } catch (error) {
      // A network hiccup: try again on the next tick.
    }
    if (active) setTimeout(refresh, 2000);
  }
  if (active) setTimeout(refresh, 1000);
})();
