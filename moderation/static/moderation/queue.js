// The review queue, decided in place and by keyboard. A row's button sends one POST (asking
// for JSON); the decided row leaves, the next one becomes current, and a notice says what
// was done, with an Undo for a few seconds. Without this script the buttons still post and
// come back to the queue.
//
// Keys (never while typing in a field): j / k next and previous ad, a accept, c recategorize
// in the category chosen (the suggestion), 1-4 reject for the numbered reason, z undo,
// ? the keys.
"use strict";

(() => {
  const table = document.getElementById("result_list");
  if (!table) return;
  const notice = document.getElementById("review-notice");
  const help = document.getElementById("review-keys");
  const UNDO_FOR = 8000;
  let current = 0;
  let lastUndo = null; // {url, row, index} of the last decision, while it can be undone
  let noticeTimer = null;

  const rows = () => [...table.querySelectorAll("tbody tr")];

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
      if (!rows().length) window.location.reload(); // the next ads of the queue
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
      row.remove();
      lastUndo = answer.ok ? { url: answer.undo, row, index, form } : null;
      select(index);
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
      const all = rows();
      if (index < all.length) all[index].before(row);
      else table.querySelector("tbody").append(row);
      select(index);
    }
    say(answer.message);
  }

  table.addEventListener("click", (event) => {
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
    const row = rows()[current];
    const buttons = row ? [...row.querySelectorAll(".review-decide button[formaction]")] : [];
    const reasons = buttons.filter((button) => button.name === "reason");
    let button = null;
    if (key === "j") select(current + 1);
    else if (key === "k") select(current - 1);
    else if (key === "z") undoLast();
    else if (key === "?") help.hidden = !help.hidden;
    else if (key === "a") button = buttons[0];
    else if (key === "c") button = buttons[1];
    else if (/^[1-9]$/.test(key)) button = reasons[Number(key) - 1];
    else return;
    event.preventDefault();
    if (button) decide(button);
  });

  select(0, false);
})();
