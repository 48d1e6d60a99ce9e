// An ad's page: while the ad is pending, its status is polled (GET /api/v1/ads/{id}/) and
// shown as soon as it is decided; then polling stops. The status is a live region, so the
// change is read out.
"use strict";

(() => {
  const region = document.getElementById("ad-status");
  if (!region || region.dataset.status !== "pending") return;
  const texts = JSON.parse(document.getElementById("status-texts").textContent);
  const problem = document.getElementById("ad-status-problem");
  const started = Date.now();
  // Every 1.5 s for the first minute (a decision takes about a second); after that the ad
  // waits for a worker or the sweep (minutes), and every 10 s is enough.
  const FAST = 1500, SLOW = 10000, FAST_FOR = 60000, LONGEST = 60000;
  let failures = 0;

  function schedule() {
    const delay = Date.now() - started < FAST_FOR ? FAST : SLOW;
    setTimeout(poll, Math.min(delay * 2 ** failures, LONGEST));
  }

  function trouble(text) {
    problem.textContent = text;
    problem.hidden = false;
  }

  async function poll() {
    let response, ad;
    try {
      response = await fetch(region.dataset.apiUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      ad = response.ok ? await response.json() : null;
    } catch {
      response = null;
    }
    if (response && (response.status === 404 || response.status === 401 || response.status === 403)) {
      trouble(response.status === 404 ? "This ad no longer exists." : "You are signed out; sign in again to follow the status.");
      return;
    }
    if (!ad) {
      failures += 1;
      trouble("The status could not be refreshed just now; trying again.");
      schedule();
      return;
    }
    failures = 0;
    problem.hidden = true;
    if (ad.status === "pending") {
      schedule();
      return;
    }
    show(ad);
  }

  // The same words as the server-rendered page (ads/pages/views.py).
  function reason(ad) {
    if (ad.status === "needs_review" && ad.review_reason) {
      let text = texts.review_reasons[ad.review_reason] || ad.review_reason;
      if (ad.suggested_category) {
        const looks = texts.sure_suggestions.includes(ad.review_reason) ? "they look like" : "perhaps";
        text += `; ${looks} ${ad.suggested_category.name}`;
      }
      return `${text}. A moderator will decide.`;
    }
    if (ad.status === "rejected" && ad.rejection_reason) {
      const text = texts.rejection_reasons[ad.rejection_reason] || ad.rejection_reason;
      return ad.rejection_note ? `${text}: ${ad.rejection_note}` : text;
    }
    return ad.status === "pending" ? texts.pending_note : "";
  }

  function predictionText(prediction) {
    if (!prediction) return "Not checked yet";
    const name = texts.category_names[prediction.category] || prediction.category;
    const percent = `${Math.round(prediction.confidence * 100)}%`;
    if (prediction.none_of_these) {
      if (prediction.sure) return "Does not look like any of our categories";
      return `Not sure what this shows (perhaps ${name}); a moderator will look`;
    }
    if (prediction.sure) return `Looks like ${name} (${percent})`;
    return `Not sure: perhaps ${name} (${percent}); a moderator will look`;
  }

  function show(ad) {
    const badge = region.querySelector("[data-role=badge]");
    badge.textContent = texts.badges[ad.status] || ad.status;
    badge.className = `badge badge-${ad.status}`;
    region.querySelector("[data-role=reason]").textContent = reason(ad);
    region.dataset.status = ad.status;
    document.querySelector("[data-role=category]").textContent = ad.category.name;
    for (const photo of ad.photos) {
      const caption = document.querySelector(`[data-photo-id="${photo.id}"] [data-role=prediction]`);
      if (caption) caption.textContent = predictionText(photo.prediction);
    }
  }

  schedule();
})();
