// The New ad and Edit ad pages: each photo is checked against the category as it is chosen
// (POST /api/v1/classify/), and the ad is saved through the API (POST or PATCH
// /api/v1/ads/…) with the session and its CSRF token. Nothing the seller typed is lost on
// an error: the page stays, and the server's message goes next to the field it is about.
// A new ad is posted with the page's own Idempotency-Key: trying again after an error, or
// after an answer that never came, never posts it twice.
"use strict";

(() => {
  const form = document.getElementById("ad-form");
  if (!form) return;
  const config = JSON.parse(document.getElementById("ad-form-config").textContent);
  const csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const select = document.getElementById("id_category");
  const fileInput = document.getElementById("id_photos"); // absent when photos cannot change
  const list = document.getElementById("photo-list");
  const announcer = document.getElementById("photo-announcer");
  const problem = document.getElementById("form-problem");
  const submitButton = document.getElementById("submit-button");
  const submitStatus = document.getElementById("submit-status");
  const FIELDS = ["category", "title", "price", "description", "photos"];
  // Editing: the ad's category is sent only when changed (it may since have been retired).
  const initialCategory = config.save_method === "PATCH" ? select.value : null;

  const photos = []; // {file, url, item, outcome, generation, retryTimer}

  // --- Talking to the API ------------------------------------------------------------

  function send(url, method, body, headers = {}) {
    return fetch(url, {
      method,
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json", ...headers },
    });
  }

  async function readJson(response) {
    if (!(response.headers.get("Content-Type") || "").includes("json")) return {};
    try {
      return await response.json();
    } catch {
      return {};
    }
  }

  function retryAfter(response) {
    return Number.parseInt(response.headers.get("Retry-After"), 10) || 5;
  }

  // DRF's answers: {"field": ["message", …]}, with nested lists or objects for list fields.
  function messages(value) {
    if (value == null) return [];
    if (typeof value === "string") return [value];
    return Object.values(value).flatMap(messages);
  }

  // --- Categories ----------------------------------------------------------------------

  function categoryName(slug) {
    const option = Array.from(select.options).find((o) => o.value === slug);
    return option ? option.textContent.trim() : null;
  }

  function setCategory(slug, message) {
    select.value = slug;
    clearFieldError("category");
    announce(message);
    recheckAll();
  }

  select.addEventListener("change", () => {
    clearFieldError("category");
    recheckAll();
  });

  // Photos that all show the same category choose it, as the prototype did: with no
  // category chosen yet, from the first photo; over a category the seller chose, only when
  // several photos agree (one photo gets a warning and its Switch button), and only once
  // after photos were added, so that a seller who switches back is not overruled.
  let photosAdded = false;

  function maybeChooseCategory() {
    if (photos.length === 0) return;
    const predicted = photos.map((p) => p.outcome && p.outcome.predicted);
    if (predicted.some((category) => !category)) return;
    const slugs = new Set(predicted.map((category) => category.slug));
    const [slug] = slugs;
    const allowed = !select.value || (photosAdded && photos.length >= 2);
    photosAdded = false;
    if (!allowed || slugs.size !== 1 || slug === select.value || !categoryName(slug)) return;
    setCategory(slug, `Category set to ${categoryName(slug)}, as your photos show.`);
  }

  // --- Photos --------------------------------------------------------------------------

  function addFiles(files) {
    clearFieldError("photos");
    const room = Math.max(config.max_photos - photos.length, 0);
    const added = Array.from(files).slice(0, room);
    if (files.length > added.length) {
      const left = files.length - added.length;
      showFieldError("photos", [
        `An ad has at most ${config.max_photos} photos; ${left} not added.`,
      ]);
    }
    for (const file of added) {
      const photo = { file, url: URL.createObjectURL(file), generation: 0 };
      photo.item = renderPhoto(photo);
      photos.push(photo);
      list.append(photo.item);
      check(photo);
    }
    photosAdded = added.length > 0;
    renumber();
  }

  function renderPhoto(photo) {
    const item = element("li", "photo chosen");
    const image = element("img");
    image.src = photo.url;
    const status = element("p", "photo-check");
    status.append(element("span", "icon"), element("span", "text"));
    status.firstChild.setAttribute("aria-hidden", "true");
    const actions = element("div", "photo-actions");
    const remove = element("button", "button small", "Remove");
    remove.type = "button";
    remove.dataset.role = "remove";
    remove.addEventListener("click", () => removePhoto(photo));
    actions.append(remove);
    item.append(image, status, actions);
    return item;
  }

  function element(tag, className = "", text = "") {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function label(photo) {
    return `Photo ${photos.indexOf(photo) + 1} (${photo.file.name})`;
  }

  function renumber() {
    for (const photo of photos) {
      photo.item.querySelector("img").alt = label(photo);
      photo.item.querySelector("[data-role=remove]").setAttribute("aria-label", `Remove ${label(photo)}`);
    }
  }

  function removePhoto(photo) {
    const index = photos.indexOf(photo);
    photos.splice(index, 1);
    clearTimeout(photo.retryTimer);
    URL.revokeObjectURL(photo.url);
    photo.item.remove();
    renumber();
    announce(`${photo.file.name} removed.`);
    // Keep the keyboard where it was: on the next photo's Remove, or on the file input.
    const next = photos[Math.min(index, photos.length - 1)];
    (next ? next.item.querySelector("[data-role=remove]") : fileInput).focus();
    maybeChooseCategory();
  }

  let takeChosenFiles = null;
  if (fileInput) {
    takeChosenFiles = () => {
      addFiles(fileInput.files);
      fileInput.value = ""; // so that choosing the same file again adds it again
    };
    fileInput.addEventListener("change", takeChosenFiles);
    const dropzone = document.getElementById("dropzone");
    const hasFiles = (event) => Array.from(event.dataTransfer.types).includes("Files");
    for (const type of ["dragenter", "dragover"]) {
      dropzone.addEventListener(type, (event) => {
        if (!hasFiles(event)) return;
        event.preventDefault();
        dropzone.classList.add("dragging");
      });
    }
    dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      dropzone.classList.remove("dragging");
      addFiles(event.dataTransfer.files);
    });
    // A file dropped beside the zone would make the browser open it, and leave the page
    // with everything typed in it.
    for (const type of ["dragover", "drop"]) {
      document.addEventListener(type, (event) => {
        if (hasFiles(event)) event.preventDefault();
      });
    }
  }

  // --- Checking a photo ----------------------------------------------------------------

  function recheckAll() {
    for (const photo of photos) check(photo);
  }

  async function check(photo) {
    const generation = ++photo.generation;
    clearTimeout(photo.retryTimer);
    if (photo.file.size > config.max_photo_bytes) {
      const most = sizeText(config.max_photo_bytes);
      show(photo, { state: "error", text: `Too large (${sizeText(photo.file.size)}; at most ${most}).` });
      return;
    }
    show(photo, { state: "checking", text: "Checking the photo…" }, false);
    const chosen = select.value;
    const body = new FormData();
    body.append("image", photo.file);
    // The check needs a category; with none chosen yet any will do: only the prediction is used.
    body.append("category", chosen || Array.from(select.options).find((o) => o.value).value);
    let response, data;
    try {
      response = await send(config.classify_url, "POST", body);
      data = await readJson(response);
    } catch {
      data = null;
    }
    // The category changed or the photo was removed while this check was running.
    if (generation !== photo.generation || !photos.includes(photo)) return;
    show(photo, data === null ? unavailable("the server could not be reached") : outcome(photo, response, data, chosen));
    maybeChooseCategory();
  }

  function outcome(photo, response, data, chosen) {
    if (response.ok) return verdict(data, chosen);
    if (response.status === 429) {
      const seconds = retryAfter(response);
      photo.retryTimer = setTimeout(() => check(photo), seconds * 1000);
      // The server words the wait (avito_mod/throttling.py); Retry-After is in seconds.
      return { state: "waiting", text: `${data.detail || "Too many checks just now."} The photo is checked again then.` };
    }
    if (response.status === 400) {
      return { state: "error", text: `This photo cannot be used: ${messages(data).join(" ")}` };
    }
    if (response.status === 401 || response.status === 403) {
      return { state: "error", text: "You are signed out: sign in again in another tab, then check again.", retry: true };
    }
    return unavailable(data.detail || `HTTP ${response.status}`);
  }

  function unavailable(why) {
    return {
      state: "unavailable",
      text: `Not checked (${why}). You can still post: a moderator will look at the photo.`,
      retry: true,
    };
  }

  // How sure the answer is (data.sure) and whether a switch is offered (data.switch_to)
  // are the server's (the routing's confidence test): the page only words them.
  function verdict(data, chosen) {
    const name = data.category.name;
    if (data.none_of_these) {
      if (!data.sure) {
        const what = chosen ? `shows ${name}` : "shows one of our categories";
        return { state: "unsure", text: `We are not sure this photo ${what}; a moderator will look at it.` };
      }
      return {
        state: "mismatch",
        text: "This photo does not look like any of our categories. If it shows what you sell, you can still post: a moderator will look at it.",
      };
    }
    // The category the photo shows, if it is one a seller can choose.
    const predicted = data.categories_matched ? data.category : data.suggested_category;
    if (!chosen) {
      if (!predicted) return { state: "predicted", text: "Looks like none of the categories." };
      const text = data.sure ? `Looks like ${predicted.name}.` : `Perhaps ${predicted.name}; the model is not sure.`;
      return { state: "predicted", text, predicted };
    }
    if (data.categories_matched === true) {
      const unsure = data.sure ? "" : " The model is not sure, so a moderator may check it.";
      return { state: "match", text: `Matches ${name}.${unsure}`, predicted };
    }
    if (data.categories_matched === null) {
      return { state: "unknown", text: `Photos cannot be checked for ${name} yet; a moderator will look at them.` };
    }
    if (!data.sure) {
      // No switch, and no automatic choice either: a moderator will decide.
      return { state: "unsure", text: `We are not sure this photo shows ${name}; a moderator will look at it.` };
    }
    if (!predicted) return { state: "mismatch", text: `Does not look like ${name}.` };
    return { state: "mismatch", text: `Looks like ${predicted.name}, not ${name}.`, predicted, suggest: data.switch_to };
  }

  const ICONS = { match: "✓", mismatch: "⚠", unsure: "?", error: "✕", unavailable: "!", waiting: "…", checking: "…" };

  function show(photo, result, speak = true) {
    photo.outcome = result;
    const { item } = photo;
    item.dataset.state = result.state;
    item.querySelector(".photo-check .icon").textContent = ICONS[result.state] || "";
    item.querySelector(".photo-check .text").textContent = result.text;
    const actions = item.querySelector(".photo-actions");
    actions.querySelectorAll("[data-role=switch], [data-role=retry]").forEach((b) => b.remove());
    if (result.suggest && categoryName(result.suggest.slug)) {
      const { slug, name } = result.suggest;
      const button = element("button", "button small primary", `Switch category to ${name}`);
      button.type = "button";
      button.dataset.role = "switch";
      button.addEventListener("click", () => {
        setCategory(slug, `Category switched to ${name}; checking the photos again.`);
        select.focus();
      });
      actions.prepend(button);
    }
    if (result.retry) {
      const button = element("button", "button small", "Check again");
      button.type = "button";
      button.dataset.role = "retry";
      button.setAttribute("aria-label", `Check ${label(photo)} again`);
      button.addEventListener("click", () => check(photo));
      actions.prepend(button);
    }
    if (speak) announce(`${label(photo)}: ${result.text}`);
  }

  function announce(text) {
    if (announcer) announcer.textContent = text;
  }

  function sizeText(bytes) {
    return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
  }

  // --- Errors next to their fields -----------------------------------------------------

  function fieldParts(name) {
    const control = name === "photos" ? fileInput : document.getElementById(`id_${name}`);
    return { control, error: document.getElementById(`id_${name}_error`) };
  }

  function showFieldError(name, texts) {
    const { control, error } = fieldParts(name);
    error.replaceChildren(...texts.map((text) => element("p", "", text)));
    error.hidden = false;
    error.closest(".field").classList.add("invalid");
    if (control) control.setAttribute("aria-invalid", "true");
  }

  function clearFieldError(name) {
    const { control, error } = fieldParts(name);
    if (!error) return;
    error.replaceChildren();
    error.hidden = true;
    error.closest(".field").classList.remove("invalid");
    if (control) control.removeAttribute("aria-invalid");
    // "Please correct the fields marked below", and none is marked any more.
    if (problem.dataset.fieldsOnly && !form.querySelector(".field.invalid")) problem.hidden = true;
  }

  // A field's error goes as soon as the seller changes the field.
  form.addEventListener("input", (event) => {
    if (["title", "price", "description"].includes(event.target.name)) {
      clearFieldError(event.target.name);
    }
  });

  function showProblem(text, fieldsOnly = false) {
    problem.textContent = text;
    problem.hidden = false;
    if (fieldsOnly) problem.dataset.fieldsOnly = "true";
    else delete problem.dataset.fieldsOnly;
  }

  // Shows {"field": [messages]} next to the fields; returns whether any was shown.
  function showErrors(errors) {
    const other = [];
    let first = null;
    for (const [key, value] of Object.entries(errors)) {
      if (FIELDS.includes(key) && fieldParts(key).error) {
        showFieldError(key, messages(value));
        if (first === null || FIELDS.indexOf(key) < FIELDS.indexOf(first)) first = key;
      } else {
        other.push(...messages(value));
      }
    }
    const summary = first ? ["Please correct the fields marked below."] : [];
    showProblem([...other, ...summary].join(" ") || "The ad could not be saved.", Boolean(first) && !other.length);
    const target = first && fieldParts(first).control;
    (target && !target.disabled ? target : problem).focus();
  }

  function localErrors() {
    const errors = {};
    if (!select.disabled && !select.value) errors.category = ["Choose a category."];
    if (!form.elements.title.value.trim()) errors.title = ["Enter a title."];
    if (!form.elements.price.value.trim()) errors.price = ["Enter a price."];
    if (fileInput && config.save_method === "POST" && photos.length === 0) {
      errors.photos = ["Add at least one photo."];
    }
    // The server's rule (ads/uploads.py), told before the photos are sent only to be refused.
    const total = photos.reduce((sum, photo) => sum + photo.file.size, 0);
    if (total > config.max_ad_photo_bytes) {
      const most = sizeText(config.max_ad_photo_bytes);
      errors.photos = [`The photos are too large together (${sizeText(total)}; an ad's photos may take at most ${most}): remove some or send smaller ones.`];
    }
    return errors;
  }

  // --- Saving --------------------------------------------------------------------------

  function formBody() {
    const body = new FormData();
    for (const name of ["title", "price", "description"]) {
      body.append(name, form.elements[name].value.trim());
    }
    if (!select.disabled && select.value !== initialCategory) {
      body.append("category", select.value);
    }
    // Editing: photos are sent only to replace them all.
    for (const photo of photos) body.append("photos", photo.file, photo.file.name);
    return body;
  }

  function setBusy(busy, text = "") {
    submitButton.disabled = busy;
    submitStatus.textContent = text;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submitButton.disabled) return;
    FIELDS.forEach(clearFieldError);
    problem.hidden = true;
    const errors = localErrors();
    if (Object.keys(errors).length) {
      showErrors(errors);
      return;
    }
    setBusy(true, config.save_method === "POST" ? "Posting the ad…" : "Saving…");
    const key = config.idempotency_key;
    let response, data;
    try {
      const headers = key ? { "Idempotency-Key": key } : {};
      response = await send(config.save_url, config.save_method, formBody(), headers);
      data = await readJson(response);
    } catch {
      setBusy(false);
      showProblem(
        key
          ? "The server could not be reached. Try again: the ad is posted only once, however often you try."
          : "The server could not be reached; nothing was saved. Try again.",
      );
      problem.focus();
      return;
    }
    if (response.ok) {
      window.location.assign(config.done_url.replace("{id}", data.id));
      return;
    }
    setBusy(false);
    if (response.status === 400) {
      showErrors(data);
      return;
    }
    if (response.status === 429) {
      showProblem(data.detail || "Too many requests just now; try again later.");
    } else if (response.status === 422 && key) {
      // This page's key already posted an ad, with what the form held then.
      showProblem("This page already posted an ad, with other details. To post another ad, open New ad again.");
    } else if (response.status === 401 || response.status === 403) {
      showProblem(`${data.detail || "You are signed out."} Sign in again in another tab, then save again: what you typed is kept here.`);
    } else {
      const again = key && response.status >= 500 ? " Trying again never posts the ad twice." : "";
      showProblem(`${data.detail || `The ad could not be saved (HTTP ${response.status}); try again.`}${again}`);
    }
    problem.focus();
  });

  // Photos chosen before this script ran (a slow connection, a busy machine) would otherwise
  // sit unseen in the input: take them, now that everything above is defined.
  if (takeChosenFiles && fileInput.files.length) takeChosenFiles();
})();
