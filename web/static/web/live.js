// Keep the submission page current while the submission is active: fetch the
// server-rendered live fragment every two seconds and swap it in.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const url = live.dataset.liveUrl;
  let active = live.dataset.active === "true";

  // Someone is using a form inside the live part (an answer being typed, a
  // button in focus): swapping it now would throw their input away.
  function inUse() {
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
        live.replaceChildren(...holder.childNodes);
        active = status && ["submitted", "running", "paused", "waiting"].includes(status.dataset.status);
      }
    } catch (error) {
      // A network hiccup: try again on the next tick.
    }
    if (active) setTimeout(refresh, 2000);
  }
  if (active) setTimeout(refresh, 1000);
})();
