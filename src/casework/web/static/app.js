// Keyboard first: 1-9 choose an option, Ctrl+Enter submits, j/k move, Enter opens, / searches, ? lists the keys.
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
    if (/^[1-9]$/.test(event.key) && form) {
      const option = form.querySelector(`[data-option="${event.key}"]`);
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
