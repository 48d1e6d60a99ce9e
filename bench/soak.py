"""The main command under a steady load for a while, each of its processes killed once.

    python bench/soak.py [--minutes 10] [--rate 5] [--photos 3] [--port 8120] [--hostile-every 10]

Runs ``bin/run`` as a new user would, on its embedded defaults (SQLite, the embedded broker:
``REDIS_URL`` and ``DATABASE_URL`` are dropped from the environment), in a data folder of
its own (``/tmp/soak-*``) and on its own port; only the upload rate limits are lifted (one
account sends everything). Posts ``--rate`` ads a second (open loop: ad i is sent at i/rate
s) for ``--minutes``: ``--photos`` real photos each (the shared dataset, else drawn ones), and
every ``--hostile-every``-th ad one file of the hostile corpus (``tests/support/hostile.py``: not
images, damaged, bombs, odd formats). A post the web server cannot answer (refused
connection, 502-504) is sent again with the same ``Idempotency-Key`` for up to a minute, as
a client would. Along the way it kills each process (web, worker, training, beat, broker)
once with SIGKILL, at evenly spaced times, and measures how soon each is back: the web
server answering ``/healthz``, a worker's heartbeat in the broker, the broker answering
PING, beat's new process started. A prober asks ``/healthz`` every 0.2 s throughout.

At the end it waits for every accepted ad to be decided, stops ``bin/run`` (SIGINT, as
Ctrl-C) and prints one JSON line: ``minutes``, ``ads`` (posted), ``accepted``, ``refused``
(4xx), ``http_5xx``, ``gave_up`` (no answer within a minute of retries), ``retried`` (posts
sent more than once: refused connections, 502-504, 409), ``decided``, ``undecided``
(accepted, still pending when the wait for decisions ended: in the broker's queue or left
to the sweep), ``lost`` (accepted, and its ad gone), ``unrecoverable_errors`` (Celery's
``Unrecoverable error`` lines in the logs), ``restarts`` (supervisord's, per process),
``unexpected_exits`` (exits other than the kills), ``web_down_s``, ``back_within_s`` (per
process), ``p50_ms``/``p95_ms`` (from the upload's commit to the decision, as
bench/pipeline.py) and ``p95_from_send_ms`` (from the first send, retries included).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import DATA, UNLIMITED_UPLOADS, cpu_name  # noqa: E402

KILLED = ("web", "worker", "training", "beat", "broker")
RETRY_FOR_S = 60  # a post the web server cannot answer is sent again for this long
RETRY_STATUSES = {502, 503, 504, 409}  # 409: the same key still being answered
PROBE_EVERY_S = 0.2
BACK_WITHIN_LIMIT_S = 120  # a process not back by then is reported as null


# --- The summary (pure: tests/avito_mod/test_soak_summary.py) ------------------------------


@dataclass
class Post:
    key: str
    sent_at: float  # time.time() of the first attempt
    status: int | None = None  # the last answer; None: no answer at all
    attempts: int = 0
    ad_id: int | None = None


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank value below ``share`` (bench/pipeline.py's way); None when empty."""
    ordered = sorted(values)
    return round(ordered[int(share * (len(ordered) - 1))], 1) if ordered else None


def downtime(samples: list[tuple[float, bool]]) -> float:
    """Seconds down from ``(time, answered)`` probes in time order: each failed probe
    counts until the next probe."""
    return sum(later[0] - t for (t, ok), later in zip(samples, samples[1:], strict=False) if not ok)


def summary(
    *,
    minutes: float,
    posts: list[Post],
    decisions: dict[int, tuple[float, float] | None],
    probes: list[tuple[float, bool]],
    log_text: str,
    supervisord_log: str,
    kills: dict[str, float | None],
) -> dict:
    """The JSON summary. ``decisions``: per accepted ad's id, ``(committed_at, decided_at)``
    as epoch seconds (decided_at 0 when undecided), None when the ad is gone."""
    accepted = [p for p in posts if p.status == 201]
    decided = {i: d for i, d in decisions.items() if d is not None and d[1]}
    from_commit = [(d[1] - d[0]) * 1000 for d in decided.values()]
    sent_at = {p.ad_id: p.sent_at for p in accepted}
    from_send = [(d[1] - sent_at[i]) * 1000 for i, d in decided.items() if i in sent_at]
    spawned = re.findall(r"spawned: '(\w+)'", supervisord_log)
    exits = re.findall(r"exited: (\w+) \((.*?); not expected\)", supervisord_log)
    return {
        "minutes": minutes,
        "ads": len(posts),
        "accepted": len(accepted),
        "refused": sum(p.status is not None and 400 <= p.status < 500 for p in posts),
        "http_5xx": sum(p.status is not None and p.status >= 500 for p in posts),
        "gave_up": sum(p.status is None for p in posts),
        "retried": sum(p.attempts > 1 for p in posts),
        "decided": len(decided),
        # Still pending when the wait ended: in the broker's queue or the sweep's hands.
        "undecided": sum(d is not None and not d[1] for d in decisions.values()),
        "lost": sum(d is None for d in decisions.values()),
        "unrecoverable_errors": log_text.count("Unrecoverable error"),
        "restarts": {name: spawned.count(name) - 1 for name in sorted(set(spawned))},
        "unexpected_exits": sum(not (name in kills and "SIGKILL" in why) for name, why in exits),
        "web_down_s": round(downtime(probes), 1),
        "back_within_s": {name: None if s is None else round(s, 1) for name, s in kills.items()},
        "p50_ms": percentile(from_commit, 0.5),
        "p95_ms": percentile(from_commit, 0.95),
        "p95_from_send_ms": percentile(from_send, 0.95),
    }


# --- The stack ----------------------------------------------------------------------------


class Stack:
    """``bin/run`` in ``data_dir`` on ``port``, and supervisord's view of its processes."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.url = data_dir, f"http://127.0.0.1:{port}"
        drop = ("REDIS_URL", "DATABASE_URL", "AVITO_STORAGE_URL", "CLASSIFIER_INFERENCE_QUEUE")
        self.env = {k: v for k, v in os.environ.items() if k not in drop} | {
            "AVITO_DATA_DIR": str(data_dir),
            "AVITO_BIND": f"127.0.0.1:{port}",
            **UNLIMITED_UPLOADS,
        }
        self.output = open(data_dir / "run.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(ROOT / "bin/run")], cwd=ROOT, env=self.env, stdout=self.output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._rpc = None

    def rpc(self):
        if self._rpc is None:
            from supervisor.xmlrpc import SupervisorTransport

            config = configparser.RawConfigParser()
            config.read(self.data_dir / "supervisord.conf")
            control = config["supervisorctl"]
            transport = SupervisorTransport(
                control["username"], control["password"], control["serverurl"]
            )
            self._rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return self._rpc

    def pid(self, name: str) -> int:
        return self.rpc().supervisor.getProcessInfo(name)["pid"]

    def redis(self):
        import redis

        from avito_mod.broker import socket_path

        path = socket_path(self.data_dir / "broker")
        return redis.Redis(unix_socket_path=str(path), socket_timeout=1, socket_connect_timeout=1)

    def web_answers(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def broker_answers(self) -> bool:
        import redis

        try:
            return bool(self.redis().ping())
        except (redis.RedisError, OSError):
            return False

    def beat_since(self, queue: str, since: float) -> bool:
        """A worker on ``queue`` wrote a heartbeat after ``since``."""
        import redis

        try:
            last = self.redis().zrange(f"avito-mod:workers:{queue}", -1, -1, withscores=True)
        except (redis.RedisError, OSError):
            return False
        return bool(last) and last[0][1] > since

    def wait_ready(self, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"bin/run ended ({self.process.returncode}): see {self.output.name}"
                )
            if (
                self.web_answers()
                and self.beat_since("inference", 0)
                and self.beat_since("training", 0)
            ):
                return
            time.sleep(1)
        raise SystemExit(f"bin/run not ready after {seconds:.0f} s: see {self.output.name}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def kill_and_time(stack: Stack, name: str) -> float | None:
    """SIGKILL ``name``'s process; seconds until it is back (None: not within the limit)."""
    old = stack.pid(name)
    # gunicorn's worker processes outlive their master for a moment, still answering.
    children = Path(f"/proc/{old}/task/{old}/children").read_text().split()
    killed_at = time.time()
    os.kill(old, signal.SIGKILL)
    back = {
        "web": lambda: all(_gone(int(pid)) for pid in children) and stack.web_answers(),
        "broker": stack.broker_answers,
        "worker": lambda: stack.beat_since("inference", killed_at),
        "training": lambda: stack.beat_since("training", killed_at),
        "beat": lambda: stack.pid(name) not in (0, old),
    }[name]
    while time.time() - killed_at < BACK_WITHIN_LIMIT_S:
        time.sleep(0.1)
        if back():
            return time.time() - killed_at
    return None


def _gone(pid: int) -> bool:
    try:  # ended, or ended and not yet reaped (a zombie)
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


# --- The load -----------------------------------------------------------------------------


class Ads:
    """The i-th ad's form and files: ``photos`` real photos, or every ``hostile_every``-th a
    hostile file."""

    def __init__(self, hostile_every: int, photos: int = 3) -> None:
        from tests.support.hostile import corpus

        self.hostile, self.every, self.photos = corpus(), hostile_every, photos
        self.files = {c: sorted((DATA / c).glob("*.jpg")) for c in ("phone", "laptop")}

    def __call__(self, i: int) -> tuple[dict, list]:
        if self.every and i % self.every == self.every - 1:
            case = self.hostile[(i // self.every) % len(self.hostile)]
            return _form("phone"), [("photos", (case.name, case.data, case.content_type))]
        category = "phone" if i % 2 else "laptop"
        files = self.files[category]
        if not files:  # no shared dataset here: drawn photos
            from tests.support.images import jpeg_bytes

            photos = [(f"{k}.jpg", jpeg_bytes(category, 3 * i + k)) for k in range(self.photos)]
        else:
            chosen = [files[(3 * i + k) % len(files)] for k in range(self.photos)]
            photos = [(p.name, p.read_bytes()) for p in chosen]
        return _form(category), [("photos", (n, d, "image/jpeg")) for n, d in photos]


def _form(category: str) -> dict:
    return {"title": "soak", "price": "10", "category": category}


def send(url: str, token: str, post: Post, form: dict, files: list) -> None:
    """Posts one ad, again with the same key while the web server cannot answer."""
    import requests

    headers = {"Authorization": f"Token {token}", "Idempotency-Key": post.key}
    while True:
        post.attempts += 1
        try:
            answer = requests.post(
                f"{url}/api/v1/ads/", data=form, files=files, headers=headers, timeout=30
            )
            post.status = answer.status_code
            if answer.status_code == 201:
                post.ad_id = answer.json()["id"]
        except requests.RequestException:
            post.status = None
        if post.status not in RETRY_STATUSES | {None} or time.time() - post.sent_at > RETRY_FOR_S:
            return
        time.sleep(0.5)


def probe(stack: Stack, samples: list, stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append((time.time(), stack.web_answers()))
        stop.wait(PROBE_EVERY_S)


def load(stack: Stack, token: str, args, kills: dict) -> list[Post]:
    """Posts at the rate for the minutes, killing each process once on the way."""
    total = int(args.minutes * 60 * args.rate)
    schedule = {int(total * (k + 1) / (len(KILLED) + 1)): name for k, name in enumerate(KILLED)}
    ads, posts, killers = Ads(args.hostile_every, args.photos), [], []
    with ThreadPoolExecutor(64) as pool:
        start = time.perf_counter()
        for i in range(total):
            time.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            if i in schedule:
                name = schedule[i]
                print(f"{time.strftime('%H:%M:%S')} SIGKILL {name}", flush=True)
                killer = threading.Thread(
                    target=lambda n=name: kills.__setitem__(n, kill_and_time(stack, n))
                )
                killer.start()
                killers.append(killer)
            post = Post(key=str(uuid.uuid4()), sent_at=time.time())
            posts.append(post)
            pool.submit(send, stack.url, token, post, *ads(i))
    for killer in killers:
        killer.join()
    return posts


# --- The run ------------------------------------------------------------------------------


def decisions_of(posts: list[Post], drain_s: float) -> dict:
    """(committed_at, decided_at) per accepted ad, waiting up to ``drain_s`` for them all."""
    from django.db import connection

    from ads.models import Ad

    ids = [p.ad_id for p in posts if p.ad_id is not None]
    deadline = time.monotonic() + drain_s
    while Ad.objects.filter(pk__in=ids, decided_at=None).exists():
        if time.monotonic() > deadline:
            break
        connection.close()
        time.sleep(1)
    rows = Ad.objects.filter(pk__in=ids).values_list(
        "pk", "classification_requested_at", "decided_at"
    )
    found = {
        pk: (requested.timestamp() if requested else 0, decided.timestamp() if decided else 0)
        for pk, requested, decided in rows
    }
    return {i: found.get(i) for i in ids}


def seller_token() -> str:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    seller = get_user_model().objects.create_user(f"soak-{os.getpid()}")
    return Token.objects.create(user=seller).key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=5, help="ads offered per second")
    parser.add_argument("--port", type=int, default=8120)
    parser.add_argument("--photos", type=int, default=3, help="real photos per ad")
    parser.add_argument("--hostile-every", type=int, default=10, help="0: no hostile files")
    parser.add_argument("--drain", type=float, default=180, help="seconds to wait for decisions")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    loaded = os.getloadavg()[0]
    stack = Stack(data_dir, args.port)
    try:
        stack.wait_ready()
        os.environ.update(stack.env | {"DJANGO_SETTINGS_MODULE": "avito_mod.settings"})
        token = seller_token()
        kills: dict[str, float | None] = {}
        probes: list[tuple[float, bool]] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe, args=(stack, probes, stop))
        prober.start()
        try:
            posts = load(stack, token, args, kills)
            decisions = decisions_of(posts, args.drain)
        finally:
            stop.set()
            prober.join()
    finally:
        stack.stop()
    logs = "".join(p.read_text(errors="replace") for p in sorted(data_dir.glob("logs/*.log*")))
    result = summary(
        minutes=args.minutes,
        posts=posts,
        decisions=decisions,
        probes=probes,
        log_text=logs,
        supervisord_log=(data_dir / "logs/supervisord.log").read_text(),
        kills=kills,
    )
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores")
    print(
        f"data: {data_dir}; offered {args.rate:g} ads/s of {args.photos} photos, "
        f"every {args.hostile_every}th hostile"
    )
    # The machine's load: figures taken on shared cores say so.
    machine = {"cpu": cpu_name(), "load_avg_1min": [loaded, os.getloadavg()[0]]}
    print(json.dumps(result | {"photos_per_ad": args.photos} | machine))


if __name__ == "__main__":
    main()
