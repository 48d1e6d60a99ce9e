"""Where one photo's time goes from upload to decision: ``bench/pipeline.py --profile``.

One-photo ads, one at a time, in this process, on the services the environment names (as
``bench/pipeline.py``): the upload through Django's whole stack (``django.test.Client``:
middleware, DRF, the multipart parser; not gunicorn's HTTP parsing), the message taken from
the broker with kombu as a worker takes it, then the task's own function
(``moderation.pipeline.classify_ad``). The functions of each stage are wrapped here, for the
run only, with a timer that records CPU time (``time.process_time``: the whole process,
every thread) and wall time; a stage's time excludes the stages timed inside it (the
database's queries inside the commit hook, say), so the stages add up to the whole. The
production code carries no timing of its own.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager

# The stages in the order a photo meets them; "… (other)" is what the outer call spends
# outside the stages timed inside it.
ORDER = (
    "web request (other)",
    "decode and re-encode",
    "storage write",
    "database (web)",
    "commit",
    "broker publish",
    "worker receive",
    "worker task (other)",
    "read",
    "decode",
    "inference",
    "database (worker)",
    "routing",
)


class Stages:
    """Exclusive CPU and wall seconds per stage and photo (timed calls in one thread)."""

    def __init__(self) -> None:
        self.photos: list[dict[str, list[float]]] = []  # per photo: stage -> [cpu, wall]
        self._inner: list[list[float]] = []  # per open stage: its timed children's cpu, wall
        self._run: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    @contextmanager
    def stage(self, name: str):
        cpu, wall = time.process_time(), time.perf_counter()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            inner = self._inner.pop()
            self._run[name][0] += cpu - inner[0]
            self._run[name][1] += wall - inner[1]
            if self._inner:
                self._inner[-1][0] += cpu
                self._inner[-1][1] += wall

    def timed(self, name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            with self.stage(name):
                return function(*args, **kwargs)

        return wrapper

    def end_photo(self, keep: bool = True) -> None:
        """Closes one photo's figures (kept, or dropped: a warm-up)."""
        if keep:
            self.photos.append(dict(self._run))
        self._run.clear()

    def split(self) -> dict:
        """Per stage, the median per photo in ms (CPU and wall; 0 for a photo that did not
        meet it), and the median of the photos' totals."""
        seen = {name for photo in self.photos for name in photo}
        names = [n for n in ORDER if n in seen] + sorted(seen - set(ORDER))

        def median_ms(values) -> float | None:
            return round(statistics.median(values) * 1000, 2) if self.photos else None

        def figure(photo: dict, name: str, which: int) -> float:
            return photo.get(name, (0.0, 0.0))[which]

        return {
            "photos": len(self.photos),
            "stages": {
                n: {
                    "cpu_ms": median_ms([figure(p, n, 0) for p in self.photos]),
                    "wall_ms": median_ms([figure(p, n, 1) for p in self.photos]),
                }
                for n in names
            },
            "total_cpu_ms": median_ms([sum(v[0] for v in p.values()) for p in self.photos]),
            "total_wall_ms": median_ms([sum(v[1] for v in p.values()) for p in self.photos]),
        }


@contextmanager
def patched(*replacements: tuple[object, str, Callable]):
    """Sets each ``(owner, attribute, make)`` to ``make(original)`` while the block runs."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    try:
        for (owner, name, make), (_, _, original) in zip(replacements, originals, strict=True):
            setattr(owner, name, make(original))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def profile(photos: list[bytes], queue: str, token: str, warm_up: int = 5) -> dict:
    """Posts each photo as a one-photo ad, takes its task from ``queue`` and runs it; the
    split of the photos after the first ``warm_up`` (connections, caches, the model)."""
    from celery.app.task import Task
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test import Client

    import moderation.pipeline
    from ads import services
    from avito_mod import celery_app
    from classifier.ml.predict import Predictor
    from classifier.services import serving

    stages = Stages()
    side = ["web"]
    queries = defaultdict(int)

    def database(execute, sql, params, many, context):
        queries[side[0]] += 1
        with stages.stage(f"database ({side[0]})"):
            return execute(sql, params, many, context)

    def time_commit(original):
        return stages.timed("commit", original)

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    wrap = stages.timed
    with (
        connection.execute_wrapper(database),
        patched(
            (services, "clean_photos", lambda f: wrap("decode and re-encode", f)),
            (services, "_store_all", lambda f: wrap("storage write", f)),
            (connection, "_commit", time_commit),
            (Task, "apply_async", lambda f: wrap("broker publish", f)),
            (moderation.pipeline, "_read", lambda f: wrap("read", f)),
            (serving, "decode", lambda f: wrap("decode", f)),
            (serving, "letterbox", lambda f: wrap("decode", f)),
            (Predictor, "answers", lambda f: wrap("inference", f)),
            (moderation.pipeline, "_apply", lambda f: wrap("routing", f)),
        ),
        celery_app.connection_for_read() as broker,
    ):
        inbox = broker.SimpleQueue(queue, no_ack=True)
        for i, photo in enumerate(photos):
            side[0] = "web"
            with stages.stage("web request (other)"):
                answer = client.post(
                    "/api/v1/ads/",
                    {
                        "title": "profile",
                        "price": "10",
                        "category": "phone",
                        "photos": [SimpleUploadedFile(f"{i}.jpg", photo, "image/jpeg")],
                    },
                )
            assert answer.status_code == 201, answer.content
            side[0] = "worker"
            with stages.stage("worker receive"):
                message = inbox.get(timeout=10)
                (ad_id,), _, _ = message.decode()
            with stages.stage("worker task (other)"):
                moderation.pipeline.classify_ad(ad_id)
            stages.end_photo(keep=i >= warm_up)
        inbox.close()
    split = stages.split()
    per_photo = {k: v / max(1, len(photos)) for k, v in queries.items()}
    split["queries_per_photo"] = {k: round(v, 1) for k, v in per_photo.items()}
    return split
