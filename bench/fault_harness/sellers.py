"""Sellers posting ads over HTTP (multipart, real photos) as a careful client does, and the
tally of the answers.

Each ad is one logical post with a title of its own and an ``Idempotency-Key`` (a UUID); an
answer that does not say what happened (a ``503``, no answer, a timeout) is followed by the
same request under the same key, after the ``Retry-After`` the server asked for, a few
times at most. The server then answers a post it had saved with its first ``201`` again
(``Idempotent-Replayed: true``) instead of saving it twice.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from .services import log

ATTEMPTS = 5  # per logical post: the first and four retries
RETRY_AFTER_CAP_S = 10  # a client waits no longer than this between two attempts
REPLAYED_HEADER = "Idempotent-Replayed"
# Answers that leave the client not knowing whether the ad was saved: sent again.
UNKNOWN = (503, 599)


@dataclass
class Tally:
    """Every answer's status (a retry's too), and per logical post its ad's id once a
    ``201`` said it."""

    ids: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    retried: int = 0  # requests sent again under their key
    replayed: int = 0  # 201s answered with Idempotent-Replayed: true
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, ad_id: int | None, replayed: bool = False) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.replayed += replayed
            if ad_id is not None:
                self.ids.append(ad_id)

    def retry(self) -> None:
        with self.lock:
            self.retried += 1

    def extend(self, other: Tally) -> None:
        """Count ``other``'s posts as this tally's too."""
        with self.lock:
            self.ids += other.ids
            self.statuses.update(other.statuses)
            self.retried += other.retried
            self.replayed += other.replayed

    @property
    def http_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


class Sellers:
    """Each seller posts photos of its own (the sets ``j, j + n, j + 2n, …``): a photo
    another seller posted would send the ad to review as a duplicate, leaving few ads
    published and the *published_blind* check with little to look at."""

    def __init__(self, url: str, tokens: list[str], photos):
        self.url, self.tokens = url, tokens
        n = len(tokens)
        self.photos = {token: photos[j::n] or photos for j, token in enumerate(tokens)}
        self.counters: Counter = Counter()
        # Shared with copies made by ``at``: every logical post's title is unique in the run.
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()

    def at(self, url: str) -> Sellers:
        """The same sellers (photos, titles' numbering) posting to another web server."""
        other = copy.copy(self)
        other.url = url
        return other

    def post(self, token: str, tally: Tally, title: str) -> int:
        """One logical post, sent again under its key while the answer leaves its fate
        unknown; the last answer's status."""
        with self.lock:
            own = self.photos[token]
            category, photos = own[self.counters[token] % len(own)]
            self.counters[token] += 1
            title = f"{title} #{next(self.numbers)}"  # tells one logical post's ads apart
        key = str(uuid.uuid4())
        for attempt in range(ATTEMPTS):
            if attempt:
                tally.retry()
            status, wait = self._send(token, tally, key, title, category, photos)
            if status not in UNKNOWN:
                return status
            if attempt + 1 < ATTEMPTS:
                time.sleep(wait if wait is not None else 0.5 * 2**attempt)
        log(f"  {title}: gave up after {ATTEMPTS} attempts (last: HTTP {status})")
        return status

    def _send(self, token, tally, key, title, category, photos) -> tuple[int, float | None]:
        """One attempt: its status, and the wait the server asked for before another."""
        import requests

        try:
            response = requests.post(
                f"{self.url}/api/v1/ads/",
                data={"title": title, "price": "10", "category": category},
                files=[("photos", (name, data, "image/jpeg")) for name, data in photos],
                headers={"Authorization": f"Token {token}", "Idempotency-Key": key},
                timeout=60,
            )
        except requests.RequestException:
            tally.add(599, None)  # no answer at all counts as a server failure
            return 599, None
        status = response.status_code
        ad_id = response.json()["id"] if status == 201 else None
        if status not in (201, 503):
            log(f"  {title}: HTTP {status} {response.text[:120]!r}")
        tally.add(status, ad_id, replayed=response.headers.get(REPLAYED_HEADER) == "true")
        return status, _retry_after(response)

    def burst(self, n: int, tally: Tally, title: str, clients: int = 4) -> None:
        """``n`` ads from ``clients`` sellers at once."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(clients) as pool:
            for i in range(n):
                pool.submit(self.post, self.tokens[i % len(self.tokens)], tally, title)

    def background(self, tally: Tally, title: str, stop: threading.Event, sellers: int = 2):
        """Sellers posting one ad after another until ``stop`` is set."""

        def loop(token):
            while not stop.is_set():
                if self.post(token, tally, title) != 201:
                    time.sleep(0.5)  # a client waits a little before trying again

        threads = [
            threading.Thread(target=loop, args=(self.tokens[i % len(self.tokens)],), daemon=True)
            for i in range(sellers)
        ]
        for thread in threads:
            thread.start()
        return threads


def _retry_after(response) -> float | None:
    """``Retry-After`` in seconds (capped), None without one a client can read."""
    try:
        return min(float(response.headers["Retry-After"]), RETRY_AFTER_CAP_S)
    except (KeyError, ValueError):
        return None
