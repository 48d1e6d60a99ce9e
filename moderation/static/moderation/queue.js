// The review queue, decided in place and by keyboard. A row's button sends one POST (asking
// for JSON); the decided row leaves, the next one becomes current, and a notice says what
// was done, with an Undo for a few seconds. When two rows are left, the next ads of the
// queue are fetched and appended (which also holds them for this moderator). Without this
// script the buttons still post and come back to the queue.
//
// Keys (never while typing in a field): j / k next and previous ad, a accept, c recategorize
// in the category chosen (the suggestion), 1-4 reject for the numbered reason, z undo,
// v the ad's photos at full size (as a click on a photo; Escape or v closes them), ? the keys.
"use strict";

(() => {
  const table = document.getElementById("result_list");
  if (!table) return;
  const notice = document.getElementById("review-notice");
  const help = document.getElementById("review-keys");
  const viewer = document.getElementById("review-viewer");
  const UNDO_FOR = 8000;
  let current = 0;
  let lastUndo = null; // {url, row, index} of the last decision, while it can be undone
  let noticeTimer = null;
  let toppingUp = false;
  const gone = new Set(); // forms of the rows decided here: a top-up fetched before must not bring them back

  const rows = () => [...table.querySelectorAll("tbody tr")];
  const formOf = (row) => row.querySelector(".review-decide button[formaction]")?.getAttribute("form");

  // The next ads of the queue (same filters), appended with their forms; never twice.
  async function topUp() {
    if (toppingUp || rows().length > 2) return;
    toppingUp = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const shown = new Set(rows().map(formOf));
      const body = table.querySelector("tbody");
      const forms = document.getElementById("review-forms");
      for (const row of page.querySelectorAll("#result_list tbody tr")) {
        const id = formOf(row);
        const form = id && page.getElementById(id);
        if (!form || shown.has(id) || gone.has(id)) continue;
        if (!document.getElementById(id)) forms.append(document.importNode(form, true));
        row.classList.remove("review-current");
        body.append(document.importNode(row, true));
      }
      if (rows().length && !table.querySelector("tr.review-current")) select(0);
    } catch {
      // The page stays as it is; the moderator can reload it.
    } finally {
      toppingUp = false;
    }
  }

  function select(index, focus = true) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("review-current", i === current));
    const row = all[current];
    row.scrollIntoView({ block: "nearest" });
    if (focus) row.querySelector(".review-decide button[formaction]")?.focus({ preventScroll: true });
  }

  function say(text, undo = null) {
    clearTimeout(noticeTimer);
    notice.replaceChildren(document.createTextNode(text + " "));
    if (undo) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = "Undo (z)";
      button.addEventListener("click", undoLast);
      notice.append(button);
    }
    notice.hidden = false;
    noticeTimer = setTimeout(() => {
      notice.hidden = true;
      lastUndo = null;
      if (!rows().length) window.location.reload(); // nothing left to top up from
    }, UNDO_FOR);
  }

  function token(form) {
    return form.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  async function post(url, body) {
    try {
      const response = await fetch(url, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      let answer;
      try {
        answer = await response.json();
      } catch {
        answer = { message: `The server answered ${response.status}; reload the page.` };
      }
      return { ok: response.ok, status: response.status, ...answer };
    } catch {
      return { ok: false, status: 0, message: "The server cannot be reached; nothing was done." };
    }
  }

  async function decide(button) {
    const form = document.getElementById(button.getAttribute("form"));
    const row = button.closest("tr");
    const note = document.querySelector(`input[name="note"][form="${form.id}"]`);
    if ("needsNote" in button.dataset && !note.value.trim()) {
      say("Say in the note why the ad is rejected, then choose Other again.");
      note.focus();
      return;
    }
    const data = new FormData(form); // the row's inputs name this form
    if (button.name) data.set(button.name, button.value);
    button.disabled = true;
    const answer = await post(button.formAction, data);
    button.disabled = false;
    // Decided now, or by someone else before: either way it left the queue.
    if (answer.ok || answer.status === 409) {
      const index = rows().indexOf(row);
      gone.add(form.id);
      row.remove();
      lastUndo = answer.ok ? { url: answer.undo, row, index, form } : null;
      select(index);
      topUp();
    }
    say(answer.message, answer.ok);
  }

  async function undoLast() {
    if (!lastUndo) return;
    const { url, row, index, form } = lastUndo;
    lastUndo = null;
    const data = new FormData();
    data.set("csrfmiddlewaretoken", token(form));
    const answer = await post(url, data);
    if (answer.ok) {
      gone.delete(form.id);
      const all = rows();
      if (index < all.length) all[index].before(row);
      else table.querySelector("tbody").append(row);
      select(index);
    }
    say(answer.message);
  }

  // Choosing a row's category or typing its note is not an unsaved edit of the list: keep
  // the admin's "unsaved changes" warning on bulk actions for real edits only.
  table.addEventListener("change", (event) => {
    if (event.target.closest(".review-decide")) event.stopPropagation();
  });

  // The row's photos at full size, over the page.
  function view(row) {
    if (!viewer.hidden || !row) {
      viewer.hidden = true;
      return;
    }
    const photos = [...row.querySelectorAll(".review-photo a")].map((link) => {
      const figure = link.closest("figure").cloneNode(true);
      figure.querySelector("img").removeAttribute("width");
      figure.querySelector("img").removeAttribute("height");
      return figure;
    });
    viewer.querySelector(".photos").replaceChildren(...photos);
    viewer.hidden = false;
  }

  viewer.addEventListener("click", () => (viewer.hidden = true));

  table.addEventListener("click", (event) => {
    const photo = event.target.closest(".review-photo a");
    if (photo) {
      event.preventDefault();
      select(rows().indexOf(photo.closest("tr")), false);
      view(photo.closest("tr"));
      return;
    }
    const button = event.target.closest(".review-decide button[formaction]");
    if (!button) return;
    event.preventDefault();
    select(rows().indexOf(button.closest("tr")), false);
    decide(button);
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest("input, select, textarea")) return;
    const key = event.key.toLowerCase();
    if (!viewer.hidden && (key === "escape" || key === "v")) {
      viewer.hidden = true;
      event.preventDefault();
      return;
    }
    const row = rows()[current];
    const buttons = row ? [...row.querySelectorAll(".review-decide button[formaction]")] : [];
    const reasons = buttons.filter((button) => button.name === "reason");
    let button = null;
    if (key === "j") select(current + 1);
    else if (key === "k") select(current - 1);
    else if (key === "z") undoLast();
    else if (key === "?") help.hidden = !help.hidden;
    else if (key === "v") view(row);
    else if (key === "a") button = buttons[0];
    else if (key === "c") button = buttons[1];
    else if (/^[1-9]$/.test(key)) button = reasons[Number(key) - 1];
    else return;
    event.preventDefault();
    if (button) decide(button);
  });

  select(0, false);
})();
