// The review queue, decided in place and by keyboard. A row's button sends one POST (asking
// for JSON); the decided row leaves, the next one becomes current, and a notice says what
// was done, with an Undo that counts down the server's undo window. When two rows are left,
// the next ads of the queue are fetched and appended. Without this script the buttons still
// post and come back to the queue.
//
// A team on one queue: each decision's answer says who holds the page's ads (and a poll
// every few seconds, when no decision said it since); those another moderator holds are
// greyed with the holder's name, and the keys pass over them. Ads are held for this
// moderator ahead of them: the decision that leaves fewer than three held ahead asks, in its
// own request, for the next batch, so the next key never waits for a claim. No ad is decided
// by key before the server said it is theirs. A decision refused because someone else holds
// or decided the ad says so in its row; the next ad becomes current.
//
// Keys (never while typing in a field): j / k next and previous ad, a accept, c recategorize
// in the category chosen (the suggestion), 1-4 reject for the numbered reason, z undo,
// v the ad's photos at full size (as a click on a photo; Escape or v closes them), ? the keys.
"use strict";

(() => {
  const table = document.getElementById("result_list");
  const state = JSON.parse(document.getElementById("review-state").textContent);
  if (!table) return waitForAds(state.poll_seconds * 1000);
  const notice = document.getElementById("review-notice");
  const help = document.getElementById("review-keys");
  const viewer = document.getElementById("review-viewer");
  const NOTICE_MS = 8000;
  // The server's window, less a second for the answer's way back: "undo" never offered late.
  const UNDO_MS = state.undo_seconds * 1000 - 1000;
  const POLL_MS = state.poll_seconds * 1000;
  const mine = new Set(state.mine); // ads the server holds for this moderator
  const gone = new Set(); // forms of the rows that left: a top-up fetched before must not bring them back
  let current = null; // the current row (an element: rows come and go around it)
  let lastUndo = null; // {url, row, form, title, until} of the last decision
  let countdown = null;
  let toppingUp = false;
  let claiming = null; // the claim under way, awaited by a key on an ad not yet held
  let polling = false;
  let told = Date.now(); // when the server last said who holds the page's ads
  // How many ads wait beyond the page, as the server last said (null: not asked), and that
  // figure and time when a top-up last found nothing new (the page's filters leave them out):
  // a page with few rows fetches the queue again only when there may be something new to find.
  let more = null;
  let foundNothing = { more: null, at: 0 };
  const FOUND_NOTHING_MS = 60000;

  const rows = () => [...table.querySelectorAll("tbody tr")];
  // The paginator's count and the emptied page's line (see showTotal).
  const countLine = countNodeIn(document);
  let total = totalIn(document);
  const empty = document.getElementById("review-empty-page"); // the page's own words

  const formOf = (row) => row.querySelector(".review-decide button[formaction]")?.getAttribute("form");
  const adOf = (row) => Number(formOf(row)?.slice("decide-".length));
  const titleOf = (row) => row.querySelector(".field-title")?.textContent.trim() ?? "the ad";
  // Another moderator holds it, or a decision on it was refused: the keys pass over it.
  const open = (row) => !row.classList.contains("review-held") && !row.classList.contains("review-refused");
  const deciding = state.decides;

  function token() {
    return document.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  // --- The current row, and moving over the rows others hold

  function select(row, focus = true) {
    if (!row) return;
    current = row;
    rows().forEach((each) => each.classList.toggle("review-current", each === row));
    row.scrollIntoView({ block: "nearest" });
    if (focus) row.querySelector(".review-decide button[formaction]")?.focus({ preventScroll: true });
    if (deciding && !mine.has(adOf(row))) claimAhead(adOf(row)); // held before a key asks
  }

  // The first open row at ``index`` or after it, else the last one before it.
  function selectNear(index, focus = true) {
    const all = rows();
    const row = all.slice(index).find(open) ?? all.slice(0, index).reverse().find(open);
    if (row) return select(row, focus);
    current = null;
    all.forEach((each) => each.classList.remove("review-current"));
  }

  function step(direction) {
    const all = rows();
    for (let i = all.indexOf(current) + direction; i >= 0 && i < all.length; i += direction) {
      if (open(all[i])) return select(all[i]);
    }
  }

  // A line over the row's photos: who holds it, or why a decision was refused.
  function noteIn(row, text) {
    let line = row.querySelector(".review-row-note");
    if (!text) return line?.remove();
    if (!line) {
      line = document.createElement("p");
      line.className = "review-row-note";
      line.setAttribute("role", "status");
      row.querySelector(".review-photos")?.before(line);
    }
    line.textContent = text;
  }

  function leave(row) {
    if (row.isConnected && total !== null) total = Math.max(total - 1, 0);
    const index = rows().indexOf(row);
    gone.add(formOf(row));
    const box = row.querySelector("input.action-select");
    if (box) box.checked = false;
    row.classList.remove("selected");
    row.remove();
    if (row === current) selectNear(index);
  }

  // --- Who holds what: asked every few seconds, and on claiming the next ads

  async function ask(method, ids, { more: askMore = false } = {}) {
    const url = new URL(state.claims_url, window.location.href);
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method === "POST") {
      options.body = new FormData();
      options.body.set("csrfmiddlewaretoken", token());
      options.body.set("ads", ids.join(","));
    } else {
      url.searchParams.set("ads", ids.join(","));
      if (askMore) url.searchParams.set("more", "1");
    }
    try {
      const response = await fetch(url, options);
      return response.ok ? await response.json() : null;
    } catch {
      return null; // asked again at the next poll
    }
  }

  function apply(asked, answer) {
    if (!answer) return;
    told = Date.now();
    if ("more" in answer) more = answer.more;
    const held = new Map(Object.entries(answer.held).map(([id, who]) => [Number(id), who]));
    const left = new Set(answer.gone);
    for (const id of asked) mine.delete(id);
    for (const id of answer.mine) mine.add(id);
    for (const row of rows()) {
      const id = adOf(row);
      if (!asked.includes(id) || row.classList.contains("review-refused")) continue;
      if (left.has(id)) {
        leave(row);
        continue;
      }
      row.classList.toggle("review-held", held.has(id));
      noteIn(row, held.has(id) ? `Held by ${held.get(id)}` : null);
    }
    if (current && !open(current)) selectNear(rows().indexOf(current));
    count();
  }

  // A decision's answer said it lately: no poll needed.
  async function poll() {
    if (polling || document.hidden || !deciding || Date.now() - told < POLL_MS) return;
    polling = true;
    told = Date.now(); // asked: an unanswered poll is not sent again before POLL_MS
    try {
      const ids = rows().map(adOf).slice(0, 200); // the server's limit
      apply(ids, await ask("GET", ids, { more: fewLeft() }));
      topUp(); // few ads left to this moderator: the queue may have more since
    } finally {
      polling = false;
    }
  }

  // Open rows after the current one (or after ``row``, about to leave).
  function openAfter(row = current) {
    const all = rows();
    return all.slice(all.indexOf(row) + 1).filter(open);
  }

  const fewLeft = (row = current) => openAfter(row).length <= 2;

  // Hold the next ads when fewer than three held for this moderator are left from the current
  // one on (early enough for a quick moderator's next keys); ``first``, the ad about to be
  // decided, goes first.
  function claimAhead(first = null) {
    if (claiming) return claiming;
    const all = rows();
    const ahead = all.slice(Math.max(0, all.indexOf(current))).filter(open).map(adOf);
    if (first !== null) ahead.unshift(first);
    const free = ahead.filter((id) => !mine.has(id));
    const held = ahead.filter((id) => mine.has(id));
    const enough = Math.min(3, state.claim_top); // never more than a page load holds
    if (!deciding || !free.length || (first === null && held.length >= enough)) return Promise.resolve();
    // The server holds the first free ones of these; the rest are asked to see who holds them.
    const renewed = all.map(adOf).filter((id) => mine.has(id));
    const ids = [...new Set([...free.slice(0, 4 * state.claim_top), ...renewed])].slice(0, 200);
    claiming = ask("POST", ids)
      .then((answer) => apply(ids, answer))
      .finally(() => (claiming = null));
    return claiming;
  }

  // --- The next ads of the queue (same filters), appended with their forms; never twice.

  async function topUp() {
    if (toppingUp || !fewLeft()) return;
    // The server said nothing waits, or nothing new since a top-up found none for the filters.
    if (!more) return;
    if (more === foundNothing.more && Date.now() - foundNothing.at < FOUND_NOTHING_MS) return;
    toppingUp = true;
    try {
      // The rows still on the page come first in the queue: ask for them and as many again
      // as a claim holds, twice, not for a whole page (unless the moderator paged on).
      const url = new URL(window.location.href);
      if (!url.searchParams.has("p")) {
        url.searchParams.set("rows", rows().filter(open).length + 2 * state.claim_top);
      }
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const shown = new Set(rows().map(formOf));
      const body = table.querySelector("tbody");
      const forms = document.getElementById("review-forms");
      let added = 0;
      for (const row of page.querySelectorAll("#result_list tbody tr")) {
        const id = formOf(row);
        const form = id && page.getElementById(id);
        if (!form || shown.has(id) || gone.has(id)) continue;
        if (!document.getElementById(id)) forms.append(document.importNode(form, true));
        row.classList.remove("review-current");
        body.append(document.importNode(row, true));
        added += 1;
      }
      foundNothing = added ? { more: null, at: 0 } : { more, at: Date.now() };
      total = totalIn(page) ?? total;
      const held = page.getElementById("review-state");
      if (held) JSON.parse(held.textContent).mine.forEach((id) => mine.add(id));
      if (!current || !current.isConnected || !open(current)) selectNear(0);
      count();
    } catch {
      // The page stays as it is; the moderator can reload it.
    } finally {
      toppingUp = false;
    }
  }

  // --- "12 ads in review": the paginator's count follows the decisions made here and
  // elsewhere (the server's line stays as the page loaded), and an emptied page says so
  // rather than showing a bare table.

  // The paginator's text that holds the count, in this page or one fetched.
  function countNodeIn(page) {
    return [...(page.querySelector("p.paginator")?.childNodes ?? [])].find(
      (node) => node.nodeType === Node.TEXT_NODE && /\d/.test(node.textContent),
    );
  }

  function totalIn(page) {
    const line = countNodeIn(page);
    return line ? Number(line.textContent.match(/\d+/)[0]) : null;
  }

  function showTotal() {
    empty.hidden = rows().length > 0;
    if (!countLine || total === null) return;
    countLine.textContent = ` ${total} ${total === 1 ? "ad" : "ads"} in review `;
  }

  // --- "0 of 39 selected" counts the rows on the page, as they come and go.

  function count() {
    showTotal();
    const counter = document.querySelector(".actions .action-counter");
    if (!counter || typeof ngettext !== "function") return;
    const boxes = [...table.querySelectorAll("tbody input.action-select")];
    const sel = boxes.filter((box) => box.checked).length;
    counter.dataset.actionsIcnt = boxes.length;
    const text = ngettext("%(sel)s of %(cnt)s selected", "%(sel)s of %(cnt)s selected", sel);
    counter.textContent = interpolate(text, { sel, cnt: boxes.length }, true);
    const all = document.getElementById("action-toggle");
    if (all) all.checked = boxes.length > 0 && sel === boxes.length;
  }

  // --- The notice: what was done, and the Undo with the seconds it has left

  // ``decided``: the text is the answer to the decision the Undo takes back. Any other notice
  // (a refusal, a hint) names the ad the Undo would reopen: it is not the one the notice is
  // about.
  function say(text, decided = false) {
    clearInterval(countdown);
    notice.replaceChildren(document.createTextNode(text + " "));
    notice.hidden = false;
    const undoable = lastUndo && lastUndo.until > Date.now() ? lastUndo : null;
    const until = Math.max(Date.now() + NOTICE_MS, undoable?.until ?? 0);
    let button = null;
    if (undoable) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.addEventListener("click", undoLast);
      notice.append(button);
    }
    const title = undoable?.title ?? "";
    const what = decided ? "" : ` “${title.length > 40 ? `${title.slice(0, 39)}…` : title}”`;
    const tick = () => {
      const left = undoable ? Math.ceil((undoable.until - Date.now()) / 1000) : 0;
      if (button && left > 0 && lastUndo === undoable) button.textContent = `Undo${what} (z) · ${left} s left`;
      else button?.remove();
      if (Date.now() < until) return;
      clearInterval(countdown);
      notice.hidden = true;
    };
    tick();
    countdown = setInterval(tick, 1000);
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

  // Refused (someone else holds or decided it): said in the row, which stays, greyed; the
  // moderator goes on with the next ad.
  function refused(row, message) {
    const index = rows().indexOf(row);
    row.classList.add("review-refused");
    noteIn(row, message);
    mine.delete(adOf(row));
    if (row === current) selectNear(index + 1);
    say(message);
  }

  // One decision at a time per row: a second key while the first is on its way does nothing.
  async function decide(button) {
    const row = button.closest("tr");
    if (row.dataset.deciding) return;
    row.dataset.deciding = "yes";
    try {
      await decideRow(button, row);
    } finally {
      delete row.dataset.deciding;
    }
  }

  async function decideRow(button, row) {
    const form = document.getElementById(button.getAttribute("form"));
    const id = adOf(row);
    const note = document.querySelector(`input[name="note"][form="${form.id}"]`);
    if ("needsNote" in button.dataset && !note.value.trim()) {
      say("Say in the note why the ad is rejected, then choose Other again.");
      note.focus();
      return;
    }
    // Not yet held for this moderator: hold it first (a claim under way may be for others).
    for (let tries = 0; open(row) && row.isConnected && !mine.has(id) && tries < 2; tries++) {
      await claimAhead(id);
    }
    if (!row.isConnected) return say(`“${titleOf(row)}” left the queue meanwhile; nothing done.`);
    if (!open(row)) {
      const line = row.querySelector(".review-row-note").textContent;
      return say(row.classList.contains("review-held") ? `${line}: nothing done.` : line);
    }
    if (!mine.has(id)) return say(`“${titleOf(row)}” could not be held for you (no answer); try again.`);
    const data = new FormData(form); // the row's inputs name this form
    if (button.name) data.set(button.name, button.value);
    const asked = askWith(data, row);
    button.disabled = true;
    const answer = await post(button.formAction, data);
    button.disabled = false;
    // Who holds the others first: the ad the moderator moves on to is then known held, or greyed.
    apply(asked, answer.claims);
    if (answer.status === 409) return refused(row, answer.message);
    if (answer.ok) {
      const index = rows().indexOf(row);
      mine.delete(id);
      leave(row);
      if (!current) selectNear(index);
      lastUndo = { url: answer.undo, row, form, title: titleOf(row), until: Date.now() + UNDO_MS };
      count();
      topUp();
    }
    say(answer.message, answer.ok);
  }

  // A decision that leaves fewer than three held for this moderator ahead also holds the next
  // batch (``hold``); one that leaves few rows asks whether more wait (``more``); either, or
  // one taken when the page has not been told for a poll's time, asks who holds the page's
  // other ads (the open ones after it first). Other decisions ask nothing: no extra query.
  function askWith(data, row) {
    const after = openAfter(row).map(adOf);
    const enough = Math.min(3, state.claim_top); // never more than a page load holds
    const hold = after.filter((id) => mine.has(id)).length < enough;
    const askMore = after.length <= 3; // two left after the next one: as topUp counts
    if (!deciding || !(hold || askMore || Date.now() - told >= POLL_MS)) return [];
    const asked = [...new Set([...after, ...rows().map(adOf)])].filter((id) => id !== adOf(row));
    const ids = asked.slice(0, 200); // the server's limit
    data.set("ads", ids.join(","));
    if (hold) data.set("hold", "1");
    if (askMore) data.set("more", "1");
    return ids;
  }

  async function undoLast() {
    if (!lastUndo) return say("Nothing to undo.");
    if (lastUndo.until <= Date.now()) {
      const seconds = state.undo_seconds;
      return say(`Too late to undo “${lastUndo.title}”: a decision can be undone for ${seconds} s.`);
    }
    const { url, row, form } = lastUndo;
    lastUndo = null;
    const data = new FormData();
    data.set("csrfmiddlewaretoken", token());
    const answer = await post(url, data);
    if (answer.ok) {
      gone.delete(form.id);
      if (total !== null) total += 1;
      const place = current?.isConnected ? current : null;
      if (place) place.before(row);
      else table.querySelector("tbody").append(row);
      select(row);
      count();
      claimAhead(adOf(row));
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
      select(photo.closest("tr"), false);
      view(photo.closest("tr"));
      return;
    }
    const button = event.target.closest(".review-decide button[formaction]");
    if (!button) return;
    event.preventDefault();
    if (open(button.closest("tr"))) select(button.closest("tr"), false);
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
    const row = current?.isConnected && open(current) ? current : null;
    const buttons = row ? [...row.querySelectorAll(".review-decide button[formaction]")] : [];
    const reasons = buttons.filter((button) => button.name === "reason");
    let button = null;
    if (key === "j") step(1);
    else if (key === "k") step(-1);
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

  // Django's own handler counts only the rows of the page as loaded; this one runs after it.
  table.addEventListener("change", (event) => {
    if (event.target.matches("input.action-select, #action-toggle")) count();
  });

  selectNear(0, false);
  count();
  claimAhead();
  setInterval(poll, 1000); // asks only when no answer said who holds what for POLL_MS
})();

// A queue opened with nothing in it: look at the queue every few seconds and show it once it
// holds an ad (the same page, filters kept).
function waitForAds(everyMs) {
  const look = async () => {
    try {
      const answer = await fetch(location.href, { credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      if (answer.ok && page.getElementById("result_list")) return location.reload();
    } catch (error) {
      // Offline for a moment: the next look tries again.
    }
    setTimeout(look, everyMs);
  };
  setTimeout(look, everyMs);
}
