"""The harness: our services and the project's processes up and down, and what every
scenario measures (the ads' fates, the routings in the workers' logs, the answers)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.pipeline import free_port, photos_for, wait_http, web_server_command

from .sellers import Sellers, Tally
from .services import PYTHON, ROOT, Postgres, Proc, Redis, celery_worker, log

FINAL = ("published", "needs_review", "rejected")
ROUTED = re.compile(r"ad (\d+) routed by model v(\S+): ")
# Left to the settings module's defaults, whatever the calling shell says: the recovery
# measured (the requeue sweep, a replaced model file noticed) is what a deployment gets.
PRODUCTION_DEFAULTS = (
    "ADS_REQUEUE_PENDING_AFTER",
    "ADS_REQUEUE_BACKLOGGED_AFTER",
    "ADS_REQUEUE_SWEEP_EVERY",
    "CLASSIFIER_ARTIFACT_CHECK_SECONDS",
)
# The faults where a 503 (the database unavailable for a moment) is the right answer.
DATABASE_FAULTS = ("postgres-restart", "commit-answer-lost")


@dataclass
class Result:
    fault: str
    sent: int = 0
    decided: int = 0
    lost: int = 0
    duplicated: int = 0
    http_5xx: int = 0
    http_503: int = 0
    retried: int = 0  # uploads sent again under their Idempotency-Key
    replayed: int = 0  # ... and answered with the first 201 (Idempotent-Replayed: true)
    recover_s: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    # A scenario's own figures, added to the final JSON line (e.g. worker_loss_recovery_s).
    figures: dict[str, object] = field(default_factory=dict)


class Harness:
    def __init__(self, args):
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="avito-faults-"))
        if os.geteuid() == 0:
            shutil.chown(self.scratch, "postgres", "postgres")  # initdb's user must reach it
        self.logs = self.scratch / "logs"
        self.logs.mkdir()
        self.postgres = Postgres(self.scratch)
        self.redis = Redis(self.scratch)
        self.env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "AVITO_DATA_DIR": str(self.scratch / "data"),
            "DJANGO_DEBUG": "false",
            "DJANGO_HTTPS": "false",  # plain HTTP to our own server
            "DJANGO_SECRET_KEY": "faults-only-secret-key-" + "x" * 40,
            "CLASSIFIER_INFERENCE_QUEUE": "inference",
            "CLASSIFIER_TRAINING_QUEUE": "training",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            # Sellers here post far more than any person: the upload limits would refuse them.
            "ADS_UPLOAD_USER_RATE": "100000/hour",
            "ADS_UPLOAD_ADDRESS_RATE": "1000000/hour",
        }
        for name in ("CELERY_BROKER_URL", "AVITO_MEDIA_ROOT", *PRODUCTION_DEFAULTS):
            self.env.pop(name, None)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command, web_env = web_server_command(self.port)
        self.web = Proc("web", command, self.env | web_env, self.logs / "web.log")
        self.workers = [
            celery_worker(f"inference{n}", "inference", self.env, self.logs) for n in (1, 2)
        ]
        beat_schedule = str(self.scratch / "celerybeat-schedule")
        self.beat = Proc(
            "beat",
            [PYTHON, "-m", "celery", "-A", "avito_mod", "beat", "--schedule", beat_schedule,
             "--loglevel", "INFO"],
            self.env, self.logs / "beat.log",
        )  # fmt: skip
        self.trainer = celery_worker("training", "training", self.env, self.logs, training=True)
        self.results: list[Result] = []

    # Setting up ------------------------------------------------------------------

    def up(self) -> None:
        log(f"scratch: {self.scratch}")
        self.postgres.init()
        self.redis.start()
        os.environ.update(self.env)
        for name in PRODUCTION_DEFAULTS:
            os.environ.pop(name, None)  # this process's settings must agree with its children's
        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        # As a deployment does: the admin's pages need the static files' manifest.
        subprocess.run([*manage, "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=self.env,
                       check=True)  # fmt: skip
        import django

        django.setup()
        from django.conf import settings

        # The longest a pending ad waits for the sweep once nothing is queued: the delay
        # before it is stale, then up to one period of the sweep.
        sweep = settings.CELERY_BEAT_SCHEDULE["requeue-stale-pending-ads"]["schedule"]
        self.sweep_s = settings.ADS_REQUEUE_PENDING_AFTER + sweep
        self.artifact_check_s = settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS
        log(f"requeue sweep every {sweep} s, for ads pending over "
            f"{settings.ADS_REQUEUE_PENDING_AFTER} s (the settings' defaults)")  # fmt: skip
        self.tokens = self._sellers(self.args.sellers)
        self.sellers = Sellers(self.url, self.tokens, photos_for(self.args.photo_sets))
        for proc in (self.web, *self.workers, self.beat):
            proc.start()
        wait_http(f"{self.url}/api/v1/categories/", 90)
        self.wait_workers(self.workers)

    def _sellers(self, n: int) -> list[str]:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        users = get_user_model().objects
        tokens = [Token.objects.create(user=users.create_user(f"seller{i}")).key for i in range(n)]
        self.admin_password = "faults-admin-password"
        users.create_superuser("faults-admin", "", self.admin_password)
        return tokens

    def wait_workers(self, workers: list[Proc], seconds: float = 60) -> None:
        """Until each worker logged that it is ready to take tasks."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(" ready." in w.logfile.read_text(errors="replace") for w in workers):
                return
            time.sleep(0.3)
        raise SystemExit(f"workers not ready: {[w.name for w in workers]}")

    def restart_worker(self, worker: Proc) -> None:
        # A fresh log file, so that "ready." is this start's; the old one keeps its lines.
        worker.logfile.rename(worker.logfile.with_suffix(f".{time.monotonic_ns()}.log"))
        worker.start()
        self.wait_workers([worker])

    def down(self) -> None:
        for proc in (self.trainer, self.beat, *self.workers, self.web):
            proc.stop()
        self.redis.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            self.postgres.stop()
        if not self.args.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # Measuring -------------------------------------------------------------------

    def db(self, query):
        """Run ``query()`` on a fresh connection, patiently: the database may be restarting."""
        from django.db import DatabaseError, connections

        for _ in range(60):
            try:
                return query()
            except DatabaseError:
                connections.close_all()
                time.sleep(0.5)
        return query()

    def pending(self, ids: list[int]) -> set[int]:
        from ads.models import Ad

        final = set(self.db(lambda: list(
            Ad.objects.filter(pk__in=ids, status__in=FINAL).values_list("pk", flat=True)
        )))  # fmt: skip
        return set(ids) - final

    def wait_decided(self, ids: list[int], since: float, deadline_s: float) -> float | None:
        """Seconds from ``since`` until every ad is final; None when the deadline passed."""
        deadline = time.monotonic() + deadline_s
        while self.pending(ids):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.25)
        return round(time.monotonic() - since, 1)

    def _explain_failures(self, result: Result, ids: list[int]) -> None:
        """Ads sent to review because classifying failed (not lost, but worth a look): the
        workers' error lines about them."""
        from ads.models import Ad

        failed = set(self.db(lambda: list(
            Ad.objects.filter(pk__in=ids, review_reason="classification_failed")
            .values_list("pk", flat=True)
        )))  # fmt: skip
        if not failed:
            return
        said = [
            line.strip()
            for path in self.logs.glob("inference*.log")
            for line in path.read_text(errors="replace").splitlines()
            if any(f"ad {pk}: " in line for pk in failed)
        ]
        result.notes.append(f"classification_failed: ads {sorted(failed)}: {said[:3]}")

    def unanswered(self, answered: set[int]) -> Counter:
        """Statuses of the ads saved without a 201, once the sweep had time to send them."""
        from ads.models import Ad

        others = Ad.objects.exclude(pk__in=answered)
        deadline = time.monotonic() + self.sweep_s + 30
        while self.db(others.filter(status="pending").exists) and time.monotonic() < deadline:
            time.sleep(0.5)
        return self.db(lambda: Counter(others.values_list("status", flat=True)))

    def routings(self) -> Counter:
        counts: Counter = Counter()
        for path in self.logs.glob("inference*.log"):
            for line in path.read_text(errors="replace").splitlines():
                match = ROUTED.search(line)
                if match:
                    counts[(int(match[1]), match[2])] += 1
        return counts

    def account(self, result: Result, tally: Tally, since: float, deadline_s: float) -> None:
        from ads.models import Ad

        ids = tally.ids
        result.ids = list(ids)
        result.sent = len(ids)
        result.http_5xx = tally.http_5xx - tally.statuses[503]
        result.http_503 = tally.statuses[503]
        result.retried, result.replayed = tally.retried, tally.replayed
        result.recover_s = self.wait_decided(ids, since, deadline_s)
        existing = set(self.db(lambda: list(
            Ad.objects.filter(pk__in=ids).values_list("pk", flat=True)
        )))  # fmt: skip
        undecided = self.pending(ids)
        result.decided = len(ids) - len(undecided)
        result.lost = len(undecided | (set(ids) - existing))
        routed = self.routings()
        result.duplicated = sum(1 for (ad, _), n in routed.items() if ad in set(ids) and n > 1)
        others = {s: n for s, n in tally.statuses.items() if s != 201}
        if others:
            result.notes.append(f"non-201 answers: {others}")
        self._explain_failures(result, ids)
        if result.http_503 and result.fault not in DATABASE_FAULTS:
            result.problems.append(f"{result.http_503} answers 503 outside a database fault")
        if tally.statuses[422]:
            result.problems.append(
                f"{tally.statuses[422]} retries refused as other content under their key (422)"
            )
        if result.lost:
            result.problems.append(f"{result.lost} lost: {sorted(undecided)[:10]}")
        if result.duplicated:
            result.problems.append(f"{result.duplicated} ads routed twice by one version")
        if result.http_5xx:
            result.problems.append(f"{result.http_5xx} responses >= 500 (not 503)")

    # Overall ---------------------------------------------------------------------

    def duplicated_posts(self) -> tuple[int, int]:
        """Logical posts saved as more than one ad (each has a title of its own, so: ads of
        one seller with one title), and ads saved without their Idempotency-Key (every
        post here sends one, and it is saved in the ad's transaction)."""
        from django.db.models import Count

        from ads.models import Ad, IdempotencyKey

        twice = Ad.objects.values("seller", "title").annotate(n=Count("pk")).filter(n__gt=1)
        keyless = Ad.objects.exclude(
            pk__in=IdempotencyKey.objects.filter(ad__isnull=False).values("ad")
        )
        return self.db(twice.count), self.db(keyless.count)

    def published_blind(self) -> int:
        """Published ads with a photo lacking a confident prediction of the ad's category
        by a version that could serve (active then, retired since)."""
        from django.db.models import Exists, F, OuterRef

        from ads.models import Ad, AdImage
        from classifier.models import Prediction

        confident = Prediction.objects.filter(
            image=OuterRef("pk"),
            category=OuterRef("ad__category__slug"),
            model_version__status__in=("active", "retired"),
            confidence__gte=F("model_version__threshold"),
        )
        unbacked = AdImage.objects.filter(ad=OuterRef("pk")).exclude(Exists(confident))
        blind = Ad.objects.filter(status="published").filter(Exists(unbacked))
        return self.db(blind.count)
