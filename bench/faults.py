"""Fault injection: real processes, real failures, and what the ads went through.

    python bench/faults.py [--short] [--only worker-kill] [--sellers 50] [--seconds 60]

Starts its own PostgreSQL (a throwaway cluster on a free port), its own Redis (a free port,
no persistence), the Procfile's web server, two inference workers and Celery beat, then
breaks them one way at a time while sellers post ads over HTTP (multipart, real photos):

1. ``worker-kill``: an inference worker SIGKILLed (with its pool child) in the middle of a
   batch, then restarted; ``worker-child-kill``: only a worker's pool process SIGKILLed
   mid-task (as the out-of-memory killer does), the worker itself left running.
2. ``redis-down``: Redis stopped while ads are uploaded, then started again (empty: its
   queue is gone); the beat sweep re-enqueues what stayed pending.
3. ``postgres-restart``: PostgreSQL restarted while workers are busy and uploads go on.
4. ``model-broken``: the active version's LiteRT file corrupted, then deleted; workers
   started afresh (as after a deploy) must send ads to review, ``manage.py check`` and the
   admin must say so. The file is restored afterwards.
5. ``training-kill``: a tiny training's process SIGKILLed mid-training; the version must be
   marked failed and the active version keep serving.
6. ``load``: N sellers posting for S seconds against web + 2 workers.

Invariants, over every ad a client got a ``201`` for:

- *lost*: missing from the database, or not in a final status (published, needs_review,
  rejected) by the scenario's recovery deadline.
- *duplicated*: routed more than once by the same model version. Predictions cannot show it
  (unique per photo and version), so the workers' log lines ``ad N routed by model vX`` are
  counted: one per successful conditional update of the ad's status.
- *published_blind*: published without, for every photo, a prediction of its category by a
  usable version at or above that version's threshold.
- *http_5xx*: responses with a status of 500 or more (a ``503`` included: the clear answer
  for "database restarting" is counted separately as ``http_503`` and allowed only in the
  PostgreSQL scenario's restart window).

Prints a table and ONE final JSON line; the exit status is 1 when an invariant is broken.
Never touches the machine's own PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import free_port, photos_for, wait_http, web_server_command  # noqa: E402

PYTHON = sys.executable
FINAL = ("published", "needs_review", "rejected")
ROUTED = re.compile(r"ad (\d+) routed by model v(\S+): ")
SCENARIOS = (
    "worker-kill",
    "worker-child-kill",
    "redis-down",
    "postgres-restart",
    "model-broken",
    "training-kill",
    "load",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Services of our own --------------------------------------------------------------


class Postgres:
    """A throwaway cluster in a temporary folder (as the ``postgres`` user when root)."""

    def __init__(self, scratch: Path):
        self.port = free_port()
        self.dir = scratch / "pg"
        self.dir.mkdir()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/avito_faults"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        data = str(self.dir / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "avito_faults")  # fmt: skip

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                  str(self.dir / "server.log"), "-o", options, "-w", action, *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")


class Redis:
    def __init__(self, scratch: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = open(scratch / "redis.log", "a")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=self.log, stderr=self.log,
        )  # fmt: skip
        for _ in range(50):
            probe = ["redis-cli", "-p", str(self.port), "ping"]
            if subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise SystemExit("our Redis did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


# --- The project's processes --------------------------------------------------------


@dataclass
class Proc:
    name: str
    command: list[str]
    env: dict
    logfile: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = open(self.logfile, "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=handle, stderr=handle,
            start_new_session=True,  # its own group: a SIGKILL reaches the pool child too
        )  # fmt: skip

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def celery_worker(name: str, queue: str, env: dict, logs: Path, training=False) -> Proc:
    command = [PYTHON, "-m", "celery", "-A", "avito_mod", "worker", "-Q", queue,
               "--concurrency", "1", "-n", f"{name}@%h", "--without-gossip",
               "--without-mingle", "--loglevel", "INFO"]  # fmt: skip
    if training:
        command += ["--max-tasks-per-child", "1"]
    return Proc(name, command, env, logs / f"{name}.log")


# --- Sellers ------------------------------------------------------------------------


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


# --- The harness ----------------------------------------------------------------------


@dataclass
class Result:
    fault: str
    sent: int = 0
    decided: int = 0
    lost: int = 0
    duplicated: int = 0
    http_5xx: int = 0
    http_503: int = 0
    recover_s: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


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
            "ADS_REQUEUE_PENDING_AFTER": str(args.requeue_after),
            "ADS_REQUEUE_SWEEP_EVERY": str(args.sweep_every),
            "CLASSIFIER_INFERENCE_QUEUE": "inference",
            "CLASSIFIER_TRAINING_QUEUE": "training",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            # Sellers here post far more than any person: the upload limits would refuse them.
            "ADS_UPLOAD_USER_RATE": "100000/hour",
            "ADS_UPLOAD_ADDRESS_RATE": "1000000/hour",
        }
        for name in ("CELERY_BROKER_URL", "AVITO_MEDIA_ROOT"):
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
        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        # As a deployment does: the admin's pages need the static files' manifest.
        subprocess.run([*manage, "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=self.env,
                       check=True)  # fmt: skip
        import django

        django.setup()
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
        deadline = time.monotonic() + self.args.requeue_after + 30
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
        if result.http_503 and result.fault != "postgres-restart":
            result.problems.append(f"{result.http_503} answers 503 outside a database restart")
        if result.lost:
            result.problems.append(f"{result.lost} lost: {sorted(undecided)[:10]}")
        if result.duplicated:
            result.problems.append(f"{result.duplicated} ads routed twice by one version")
        if result.http_5xx:
            result.problems.append(f"{result.http_5xx} responses >= 500 (not 503)")

    # Scenarios -------------------------------------------------------------------

    def worker_kill(self) -> Result:
        """SIGKILL a worker (its whole process group) while it classifies an ad; restart."""
        result, tally = Result("worker-kill"), Tally()
        victim = self.workers[1]
        n = self.args.batch
        poster = threading.Thread(target=self.sellers.burst, args=(n, tally, "worker-kill", 6))
        poster.start()
        in_flight = self._wait_in_flight(victim, seconds=60)
        victim.kill()
        killed_at = time.monotonic()
        result.notes.append(f"tasks in flight in the killed worker: {in_flight}")
        poster.join()
        time.sleep(1)
        self.restart_worker(victim)
        self.account(result, tally, killed_at, self.args.deadline)
        return result

    def worker_child_kill(self) -> Result:
        """SIGKILL only a worker's pool process (the out-of-memory killer's way) mid-task:
        the worker's main process sees it die and puts the task back on the queue at once."""
        result, tally = Result("worker-child-kill"), Tally()
        victim = self.workers[0]
        poster = threading.Thread(
            target=self.sellers.burst, args=(self.args.batch, tally, "worker-child-kill", 6)
        )
        poster.start()
        in_flight = self._wait_in_flight(victim, seconds=60)
        child = children(victim.process.pid)
        for pid in child:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        result.notes.append(f"pool process {child} killed with {in_flight} task(s) in flight")
        poster.join()
        self.account(result, tally, killed_at, self.args.deadline)
        return result

    def _wait_in_flight(self, worker: Proc, seconds: float) -> int:
        """Until the worker has received a task it has not finished; how many it has."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = worker.logfile.read_text(errors="replace")
            received = set(re.findall(r"classify_ad\[([0-9a-f-]+)\] received", text))
            done = set(re.findall(r"classify_ad\[([0-9a-f-]+)\] (?:succeeded|retry|raised)", text))
            if received - done and len(received) >= 2:
                return len(received - done)
            time.sleep(0.02)
        return 0

    def redis_down(self) -> Result:
        result, tally = Result("redis-down"), Tally()
        self.redis.stop()
        started = time.monotonic()
        self.sellers.burst(self.args.redis_ads, tally, "redis-down", 4)
        result.notes.append(f"{self.args.redis_ads} uploads in {time.monotonic() - started:.1f}s")
        from ads.models import Ad

        still = self.db(lambda: Ad.objects.filter(pk__in=tally.ids, status="pending").count())
        result.notes.append(f"pending while Redis was down: {still}/{len(tally.ids)}")
        if set(tally.statuses) != {201}:
            result.problems.append(f"uploads refused while Redis was down: {tally.statuses}")
        self.redis.start()
        back = time.monotonic()
        self.account(result, tally, back, self.args.deadline + self.args.requeue_after)
        return result

    def postgres_restart(self) -> Result:
        result, tally = Result("postgres-restart"), Tally()
        stop = threading.Event()
        self.sellers.burst(self.args.batch, tally, "postgres-restart", 6)
        threads = self.sellers.background(tally, "postgres-restart", stop, sellers=3)
        time.sleep(0.5)
        self.postgres.stop()
        time.sleep(self.args.pg_down)
        self.postgres.start()
        back = time.monotonic()
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()
        from django.db import connections

        connections.close_all()
        self.account(result, tally, back, self.args.deadline)
        return result

    def model_broken(self) -> Result:
        result, tally = Result("model-broken"), Tally()
        from ads.models import Ad
        from classifier.models import ModelVersion

        version = self.db(ModelVersion.objects.active)
        path = Path(version.serving_artifact.path)
        backup = path.with_suffix(".faults-backup")
        shutil.copy2(path, backup)
        try:
            for how in ("corrupted", "deleted"):
                if how == "corrupted":
                    path.write_bytes(b"not a model" * 100)
                else:
                    path.unlink()
                # Fresh worker processes, as after a deploy: a running one keeps serving the
                # copy it loaded (and verified) before the file broke.
                for worker in self.workers:
                    worker.stop()
                    self.restart_worker(worker)
                part = Tally()
                self.sellers.burst(self.args.model_ads, part, f"model-{how}", 3)
                self.wait_decided(part.ids, time.monotonic(), self.args.deadline)
                reasons = Counter(self.db(lambda ids=part.ids: list(
                    Ad.objects.filter(pk__in=ids).values_list("status", "review_reason")
                )))  # fmt: skip
                bad = {
                    k: n for k, n in reasons.items() if k != ("needs_review", "model_unavailable")
                }
                if bad:
                    result.problems.append(f"{how}: not all model_unavailable: {bad}")
                result.notes.append(f"{how}: {dict(reasons)}")
                self._check_says_broken(result, how)
                self._admin_says_broken(result, how, version.number)
                tally.ids += part.ids
                tally.statuses.update(part.statuses)
        finally:
            shutil.move(backup, path)
        restored = time.monotonic()
        self.account(result, tally, restored, self.args.deadline)
        after = Tally()
        self.sellers.burst(4, after, "model-restored", 2)
        self.wait_decided(after.ids, time.monotonic(), self.args.deadline)
        result.ids += after.ids
        reasons = Counter(self.db(lambda: list(
            Ad.objects.filter(pk__in=after.ids).values_list("review_reason", flat=True)
        )))  # fmt: skip
        if reasons["model_unavailable"]:
            result.problems.append(f"still model_unavailable after the restore: {dict(reasons)}")
        self._admin_says_broken(result, "restored", version.number, expect=False)
        result.recover_s = round(time.monotonic() - restored, 1)
        return result

    def _check_says_broken(self, result: Result, how: str) -> None:
        check = subprocess.run(
            [PYTHON, "manage.py", "check"], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        said = "classifier.E001" in check.stdout + check.stderr
        if not said or check.returncode == 0:
            result.problems.append(f"{how}: manage.py check said nothing (exit {check.returncode})")
        else:
            result.notes.append(f"{how}: manage.py check: classifier.E001, exit {check.returncode}")

    def _admin_says_broken(self, result: Result, how: str, number: int, expect=True) -> None:
        import requests

        session = requests.Session()
        login = f"{self.url}/admin/login/"
        session.get(login, timeout=30)
        session.post(
            login,
            data={"username": "faults-admin", "password": self.admin_password,
                  "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""), "next": "/admin/"},
            headers={"Referer": login}, timeout=30,
        )  # fmt: skip
        for page in ("/admin/", "/admin/moderation/reviewitem/", "/admin/classifier/modelversion/"):
            response = session.get(f"{self.url}{page}", timeout=30)
            warns = f"model v{number} cannot" in response.text
            if response.status_code != 200 or warns != expect:
                said = "no warning" if expect else "a warning still"
                result.problems.append(f"{how}: {page} ({response.status_code}) shows {said}")
                return
        if expect:
            result.notes.append(f"{how}: the admin warns on its index, review queue and registry")

    def training_kill(self) -> Result:
        result, tally = Result("training-kill"), Tally()
        from classifier import retraining
        from classifier.models import ModelVersion

        self._import_training_images()
        active = self.db(ModelVersion.objects.active)
        self.trainer.start()
        self.wait_workers([self.trainer])
        from django.db import transaction

        with transaction.atomic():
            version = retraining.request_training(None)
        epoch = self._wait_training(version, seconds=self.args.deadline)
        child = children(self.trainer.process.pid)
        if epoch is None or not child:
            result.problems.append(f"the training never reached an epoch (child {child})")
        for pid in child:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        result.notes.append(f"training child {child} SIGKILLed at epoch {epoch}")
        deadline = killed + self.args.deadline
        while time.monotonic() < deadline:
            version.refresh_from_db()
            if version.status != ModelVersion.Status.TRAINING:
                break
            time.sleep(0.5)
        result.recover_s = round(time.monotonic() - killed, 1)
        result.notes.append(f"v{version.number}: {version.status}: {version.error}")
        if version.status != ModelVersion.Status.FAILED:
            result.problems.append(f"v{version.number} is {version.status}, not failed")
        still = self.db(ModelVersion.objects.active)
        if still is None or still.pk != active.pk:
            result.problems.append("the active version changed")
        self.sellers.burst(4, tally, "training-kill", 2)
        recovered = result.recover_s
        self.account(result, tally, time.monotonic(), self.args.deadline)
        from ads.models import Ad

        served = self.db(
            lambda: Ad.objects.filter(pk__in=tally.ids, review_reason="model_unavailable").count()
        )
        if served:
            result.problems.append(f"{served} ads found no model after the training died")
        result.recover_s = recovered
        self.trainer.stop()
        return result

    def _import_training_images(self) -> None:
        from tests.images import jpeg_bytes

        folder = self.scratch / "training-images"
        for kind in ("laptop", "phone"):
            (folder / kind).mkdir(parents=True)
            for seed in range(self.args.training_images):
                (folder / kind / f"{seed}.jpg").write_bytes(jpeg_bytes(kind, 1000 + seed))
        subprocess.run([PYTHON, "manage.py", "import_images", str(folder)], cwd=ROOT,
                       env=self.env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip

    def _wait_training(self, version, seconds: float) -> int | None:
        """Until the training reports an epoch under way; its number, or None."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            version.refresh_from_db()
            progress = version.progress or {}
            if version.status != "training":
                return None
            if progress.get("stage") == "training" and progress.get("epoch"):
                return progress["epoch"]
            time.sleep(0.1)
        return None

    def load(self) -> Result:
        result, tally = Result("load"), Tally()
        stop = threading.Event()
        started = time.monotonic()
        threads = self.sellers.background(tally, "load", stop, sellers=self.args.sellers)
        time.sleep(self.args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        ended = time.monotonic()
        rate = len(tally.ids) / (ended - started)
        result.notes.append(f"{len(tally.ids)} ads in {ended - started:.0f}s ({rate:.1f} ads/s)")
        self.account(result, tally, ended, self.args.deadline + self.args.requeue_after)
        return result

    # Overall ---------------------------------------------------------------------

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


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def print_table(results: list[Result]) -> None:
    header = ("fault", "ads sent", "decided", "lost", "duplicated", "5xx", "503", "recover s")
    rows = [
        (r.fault, r.sent, r.decided, r.lost, r.duplicated, r.http_5xx, r.http_503,
         "-" if r.recover_s is None else f"{r.recover_s:.1f}")
        for r in results
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    for r in results:
        for note in r.notes:
            print(f"  {r.fault}: {note}")
        for problem in r.problems:
            print(f"  {r.fault}: BROKEN: {problem}")


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI version (< 4 minutes)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="repeatable")
    parser.add_argument("--sellers", type=int, help="concurrent sellers under load (50)")
    parser.add_argument("--seconds", type=float, help="length of the load (60 s)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    args = parser.parse_args()
    short = args.short
    args.sellers = args.sellers or (10 if short else 50)
    args.seconds = args.seconds or (10 if short else 60)
    args.batch = 12 if short else 40  # ads posted around a worker or database fault
    args.redis_ads = 10 if short else 50
    args.model_ads = 3 if short else 8
    args.photo_sets = 200 if short else 500  # ads of 3 distinct real photos, shared out
    args.training_images = 24 if short else 40
    args.pg_down = 2 if short else 5  # seconds PostgreSQL stays down
    args.requeue_after = 8  # ADS_REQUEUE_PENDING_AFTER for the processes started here
    args.sweep_every = 2
    args.deadline = 90 if short else 180  # recovery deadline per scenario, seconds
    return args


def main() -> int:
    args = arguments()
    harness = Harness(args)
    run = [name for name in SCENARIOS if not args.only or name in args.only]
    blind = published = 0
    outcomes: Counter = Counter()
    unanswered: Counter = Counter()
    began = time.monotonic()
    try:
        harness.up()
        for name in run:
            log(f"scenario {name}")
            result = getattr(harness, name.replace("-", "_"))()
            log(f"  {result.fault}: {result.sent} sent, {result.lost} lost, {result.problems}")
            harness.results.append(result)
        blind = harness.published_blind()
        from ads.models import Ad

        published = harness.db(Ad.objects.filter(status="published").count)
        # Saved, though the client got no 201 (the database failed between the commit and
        # the answer): not lost if the sweep decides them, but a client may post them again.
        answered = {pk for r in harness.results for pk in r.ids}
        unanswered = harness.unanswered(answered)
        outcomes = Counter(
            f"{status} {reason}".strip()
            for status, reason in harness.db(
                lambda: list(Ad.objects.values_list("status", "review_reason"))
            )
        )
    finally:
        harness.down()
    results = harness.results
    print(f"\nmachine: {machine()}; {' '.join(sys.argv[1:]) or 'full run'}; "
          f"{time.monotonic() - began:.0f} s wall")  # fmt: skip
    print_table(results)
    print(f"outcomes: {dict(outcomes.most_common())}")
    if unanswered:
        print(f"saved without a 201 (the client saw an error): {dict(unanswered)}")
    summary = {
        "lost": sum(r.lost for r in results),
        "duplicated": sum(r.duplicated for r in results),
        "published_blind": blind,
        "published": published,
        "saved_without_201": sum(unanswered.values()),
        "saved_without_201_pending": unanswered["pending"],
        "http_5xx": sum(r.http_5xx for r in results),
        "http_503": sum(r.http_503 for r in results),
        "ads_sent": sum(r.sent for r in results),
        "broken": [f"{r.fault}: {p}" for r in results for p in r.problems],
        "scenarios": [r.fault for r in results],
        "machine": machine(),
        "seconds": round(time.monotonic() - began),
    }
    print(json.dumps(summary))
    return 1 if summary["broken"] or blind or unanswered["pending"] else 0


if __name__ == "__main__":
    sys.exit(main())
