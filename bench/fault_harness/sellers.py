"""Sellers posting ads over HTTP (multipart, real photos), and the tally of the answers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from .services import log


@dataclass
class Tally:
    ids: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, ad_id: int | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if ad_id is not None:
                self.ids.append(ad_id)

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
        self.lock = threading.Lock()

    def post(self, token: str, tally: Tally, title: str) -> int:
        import requests

        with self.lock:
            own = self.photos[token]
            category, photos = own[self.counters[token] % len(own)]
            self.counters[token] += 1
        try:
            response = requests.post(
                f"{self.url}/api/v1/ads/",
                data={"title": title, "price": "10", "category": category},
                files=[("photos", (name, data, "image/jpeg")) for name, data in photos],
                headers={"Authorization": f"Token {token}"},
                timeout=60,
            )
        except requests.RequestException:
            tally.add(599, None)  # no answer at all counts as a server failure
            return 599
        ad_id = response.json()["id"] if response.status_code == 201 else None
        if response.status_code not in (201, 503):
            log(f"  {title}: HTTP {response.status_code} {response.text[:120]!r}")
        tally.add(response.status_code, ad_id)
        return response.status_code

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
