// Keyboard first: 1-9 choose an option, a accepts memory's suggestion, Ctrl+Enter submits, j/k move, Enter opens,
// / searches, ? lists the keys.
// Everything also works without JavaScript: these are shortcuts to links, radios and forms already on the page.
(function () {
  "use strict";
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const rows = () => Array.from(document.querySelectorAll("[data-rows] tbody tr[data-href]"));
  let selected = -1;

  function select(index) {
    const all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("selected", i === selected));
    all[selected].scrollIntoView({ block: "nearest" });
    const link = all[selected].querySelector("a");
    if (link) link.focus({ preventScroll: true });
  }

  function go(selector) {
    const link = document.querySelector(selector);
    if (link) window.location.href = link.href;
  }

  // Formatted or raw text: one choice for every block, kept across pages.
  const RAW = "casework.raw";
  function showRaw(raw) {
    document.querySelectorAll("[data-text-block]").forEach((block) => {
      block.querySelector("[data-rendered]").hidden = raw;
      block.querySelector("[data-raw]").hidden = !raw;
      block.querySelector("[data-toggle-raw]").setAttribute("aria-pressed", String(raw));
    });
  }
  document.querySelectorAll("[data-toggle-raw]").forEach((button) => button.addEventListener("click", () => {
    const raw = button.getAttribute("aria-pressed") !== "true";
    try { localStorage.setItem(RAW, raw ? "1" : ""); } catch (e) { /* private mode: this page only */ }
    showRaw(raw);
  }));
  try { if (localStorage.getItem(RAW)) showRaw(true); } catch (e) { /* no storage: formatted */ }
  document.querySelectorAll("[data-expand]").forEach((button) => button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.closest("[data-text-block]").querySelectorAll(".clamp").forEach((el) => el.classList.toggle("expanded", open));
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "Show less" : "Show all";
  }));

  // An open review page keeps its claim (the server claimed it when it served the page) and lets it go when the
  // reviewer leaves without deciding. Without JavaScript the claim simply runs out.
  const claim = document.querySelector("[data-claim]");
  if (claim) {
    const withCsrf = () => { const body = new FormData(); body.append("csrf", claim.dataset.csrf); return body; };
    // The claim's end as this page knows it: a release from a page that is no longer the claim's (a reload, the
    // review opened again elsewhere) leaves the claim alone.
    let until = claim.dataset.until;
    const renew = () => fetch(claim.dataset.claim + "/claim", { method: "POST", body: withCsrf(), credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((renewed) => { if (renewed) until = renewed.claim_expires_at; })
      .catch(() => { /* offline for a moment: the next renewal tries again */ });
    let deciding = false;
    document.querySelectorAll("form[data-decision]").forEach((f) => f.addEventListener("submit", () => { deciding = true; }));
    setInterval(renew, 3 * 60 * 1000);
    window.addEventListener("pageshow", (event) => { if (event.persisted) { deciding = false; renew(); } });
    window.addEventListener("pagehide", () => {
      if (deciding) return;
      const body = withCsrf();
      body.append("until", until);
      navigator.sendBeacon(claim.dataset.claim + "/release", body);
    });
  }

  // A pending review opened before memory had a suggestion for it (the memory pass of the decision just made
  // runs a moment later): ask every 1.5 s for two minutes, and show it when it comes. It marks the option for
  // `a`, and pre-selects it only when strong and the reviewer has chosen nothing yet.
  const watch = document.querySelector("[data-suggestion-watch]");
  if (watch) {
    let tries = 0;
    const again = () => { if (++tries < 80) setTimeout(look, 1500); };
    const show = (html) => {
      const box = document.createElement("div");
      box.innerHTML = html; // the server's own template, escaped by Jinja
      const section = box.querySelector("[data-suggestion]");
      if (!section) return again();
      watch.replaceWith(section);
      const form = document.querySelector("[data-decision]");
      const options = form ? Array.from(form.querySelectorAll("input[name=classification]")) : [];
      const option = options.find((input) => input.value === section.dataset.suggestedOption);
      if (!option) return;
      option.dataset.suggested = "";
      const hint = document.createElement("span");
      hint.className = "muted";
      const key = document.createElement("kbd");
      key.textContent = "a";
      hint.append(" (memory's suggestion: ", key, ")");
      option.parentElement.append(hint);
      if ("strong" in section.dataset && !options.some((input) => input.checked)) option.checked = true;
    };
    const look = () => fetch(watch.dataset.suggestionWatch, { credentials: "same-origin" })
      .then((response) => (response.status === 200 ? response.text() : null))
      .then((html) => (html ? show(html) : again()))
      .catch(again);
    setTimeout(look, 1500);
  }

  const dialog = document.getElementById("shortcuts");
  document.querySelectorAll("[data-shortcuts]").forEach((b) => b.addEventListener("click", () => dialog.showModal()));

  document.addEventListener("keydown", (event) => {
    const form = document.querySelector("[data-decision]");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (form) { event.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (typing(event.target) || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "?") { event.preventDefault(); dialog.open ? dialog.close() : dialog.showModal(); return; }
    if (event.key === "/") {
      const search = document.querySelector("[data-search]");
      if (search) { event.preventDefault(); search.focus(); }
      return;
    }
    const choosing = form || document.querySelector("[data-overturn-form]");
    if (event.key === "a" && choosing) {
      const suggested = choosing.querySelector("[data-suggested]");
      if (suggested) {
        event.preventDefault();
        suggested.checked = true;
        // Accepting: memory's reasoning, to keep as it is (Ctrl+Enter) or to type over (it is selected).
        const reasoning = document.getElementById("reasoning");
        const because = document.querySelector("[data-suggestion] .explanation");
        if (reasoning && !reasoning.value.trim() && because) reasoning.value = `Agree with memory: ${because.textContent.trim()}`;
        reasoning.focus();
        reasoning.select();
      }
      return;
    }
    if (/^[1-9]$/.test(event.key) && choosing) {
      const option = choosing.querySelector(`[data-option="${event.key}"]`);
      if (option) {
        event.preventDefault();
        option.checked = true;
        document.getElementById("reasoning").focus();
      }
      return;
    }
    if (event.key === "j" || event.key === "k") {
      if (rows().length) { event.preventDefault(); select(selected + (event.key === "j" ? 1 : -1)); }
      else go(event.key === "j" ? "[data-next]" : "[data-prev]");
      return;
    }
    if (event.key === "Enter" && selected >= 0) {
      const row = rows()[selected];
      if (row) window.location.href = row.dataset.href;
    }
  });
})();
