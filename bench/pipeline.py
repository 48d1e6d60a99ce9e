"""The main flow under load: N ads of 3 real photos each through web, broker and workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/avito_mod \\
    REDIS_URL=redis://127.0.0.1:6379/0 python bench/pipeline.py [--ads 200] [--workers 1] \\
    [--concurrency 2] [--clients 4 | --rate 10] [--storage local|s3] [--drain]

Starts its own web server and worker processes against the services the environment names
(the defaults, SQLite and an embedded broker of its own, when nothing is set), posts the ads over
HTTP, and waits until every ad is decided. Closed loop by default: ``--clients`` threads
each post their next ad as soon as the last one is answered, so past saturation a backlog
builds up. Open loop with ``--rate R``: ad i is sent at i/R seconds, however long earlier
answers take (a thread per ad in flight); a send that starts more than 50 ms late is
counted. Latency is measured per ad from the moment its upload committed
(``classification_requested_at``, stamped in the commit hook) to its final status
(``decided_at``); the completion rate over the span from the first commit (closed loop) or
the first scheduled send (open loop) to the last decision. Ends with one JSON line.

``--drain`` measures the worker alone: every ad is posted with no worker running, the web
server is stopped, then the workers start and empty the queue; the rate is counted from their
first decision to their last (their start-up left out), and the latencies are the queue's wait.

``--storage s3`` keeps the photos and the model in a bucket: the one ``AVITO_STORAGE_URL``
(and ``AVITO_S3_ENDPOINT_URL``, AWS_* credentials) names, else a local S3 API server (moto)
that the bench starts on 127.0.0.1 and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
LATE_S = 0.05  # an open-loop send starting later than this after its slot is counted late


# One account at one address sends everything in a bench: the rate limits are not under test.
UNLIMITED_UPLOADS = {
    "ADS_UPLOAD_USER_RATE": "1000000/min",
    "ADS_UPLOAD_ADDRESS_RATE": "1000000/min",
}
UNLIMITED_QUICK_CHECKS = {
    "CLASSIFIER_QUICK_CHECK_USER_RATE": "1000000/min",
    "CLASSIFIER_QUICK_CHECK_ADDRESS_RATE": "1000000/min",
}


def bench_env(**values: str) -> dict:
    """The environment of a bench's own processes (production settings, a throwaway secret),
    with ``values``; also applied to this process, which opens the same database."""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **values,
    }
    os.environ.update(env)
    return env


@contextmanager
def broker_for(scratch: Path) -> Iterator[dict]:
    """The Redis ``REDIS_URL`` names, else an embedded broker of the bench's own in
    ``scratch`` (as ``bin/run`` starts one): the ``REDIS_URL`` to add to the environment."""
    if os.environ.get("REDIS_URL"):
        yield {}
        return
    from avito_mod.broker import embedded_server, redis_url

    with embedded_server(scratch / "broker") as url:
        yield {"REDIS_URL": redis_url(url), "AVITO_BENCH_EMBEDDED_BROKER": "1"}


def describe_broker(env: dict) -> str:
    if env.get("AVITO_BENCH_EMBEDDED_BROKER"):
        return f"embedded ({env['REDIS_URL']})"
    return env["REDIS_URL"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_server_command(port: int, processes: int = 2, threads: int = 4) -> tuple[list, dict]:
    """The Procfile's web server (gunicorn and its settings), on ``port``: command, environment."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "avito_mod.wsgi",
        "--config",
        "avito_mod/gunicorn.conf.py",
    ]
    env = {"AVITO_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(processes)}
    # Plain HTTP on 127.0.0.1: no HTTPS redirect, no secure-only cookies.
    return command, env | {"WEB_THREADS": str(threads), "DJANGO_HTTPS": "false"}


def photos_for(n_ads: int) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """(category, three photos) per ad; real thumbnails when the shared dataset is here."""
    ads = []
    for i in range(n_ads):
        category = "phone" if i % 2 else "laptop"
        if DATA.is_dir():
            files = sorted((DATA / category).glob("*.jpg"))
            chosen = [files[(3 * i + k) % len(files)] for k in range(3)]
            ads.append((category, [(p.name, p.read_bytes()) for p in chosen]))
        else:
            from tests.support.images import jpeg_bytes

            ads.append(
                (category, [(f"{k}.jpg", jpeg_bytes(category, 3 * i + k)) for k in range(3)])
            )
    return ads


def wait_http(url: str, seconds: float = 60) -> None:
    """Until ``url`` answers 200: a server still starting may refuse, time out or fail."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass  # still starting
        time.sleep(0.3)
    raise SystemExit(f"the web server did not answer at {url}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ads", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="pool processes per worker (2: the Procfile's inference worker, as bin/run starts it)",
    )
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--clients", type=int, default=4, help="closed loop: concurrent clients")
    load.add_argument("--rate", type=float, help="open loop: ads offered per second")
    parser.add_argument(
        "--drain",
        action="store_true",
        help="post every ad first with no worker running, stop the web server, then time the "
        "worker alone emptying the queue (its own rate, with the machine's cores to itself)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=60,
        metavar="PHOTOS",
        help="instead of the load: one photo at a time (60), its time split by stage "
        "(CPU and wall ms; bench/stages.py)",
    )
    parser.add_argument(
        "--storage",
        choices=("local", "s3"),
        default="local",
        help="s3: a bucket (AVITO_STORAGE_URL, else a local moto S3 server the bench starts)",
    )
    args = parser.parse_args()
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")

    scratch = Path(tempfile.mkdtemp(prefix="avito-bench-"))
    queue = f"bench-{os.getpid()}"
    own_data = {} if "DATABASE_URL" in os.environ else {"AVITO_DATA_DIR": str(scratch)}
    bucket, s3_server = bucket_env(scratch) if args.storage == "s3" else ({}, None)
    python = sys.executable
    try:
        with broker_for(scratch) as broker:
            env = bench_env(
                CLASSIFIER_INFERENCE_QUEUE=queue,
                **UNLIMITED_UPLOADS,
                **own_data,
                **bucket,
                **broker,
            )
            # On a new bucket, the active model's files are copied in after migrating
            # (below); the system check, which loads them, would stop migrate before.
            skip = ["--skip-checks"] if args.storage == "s3" else []
            migrate = [python, "manage.py", "migrate", "-v0", *skip]
            subprocess.run(migrate, cwd=ROOT, env=env, check=True)
            if args.profile:
                profile(args, env, queue)
            else:
                bench(args, env, queue, scratch)
    finally:
        if s3_server is not None:
            s3_server.stop()


def bench(args, env: dict, queue: str, scratch: Path) -> None:
    python = sys.executable

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from ads import services
    from ads.models import Ad
    from classifier.models import ModelVersion

    version = ModelVersion.objects.active()
    if args.storage == "s3" and version is not None:
        copy_model_to_bucket(version)
    seller = get_user_model().objects.create_user(f"bench-{os.getpid()}")
    token = Token.objects.create(user=seller).key
    port = free_port()
    logs = open(scratch / "processes.log", "w")  # noqa: SIM115
    server, server_env = web_server_command(port)

    def start_workers() -> list:
        return [
            subprocess.Popen(
                [python, "-m", "celery", "-A", "avito_mod", "worker", "-Q", queue,
                 "--concurrency", str(args.concurrency), "-n", f"bench{n}@%h", "--without-gossip",
                 "--without-mingle", "--loglevel", "WARNING"],
                cwd=ROOT, env=env, stdout=logs, stderr=logs,
            )
            for n in range(args.workers)
        ]  # fmt: skip

    web = subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs)
    processes = [web] if args.drain else [web, *start_workers()]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v1/categories/")
        if not args.drain:
            time.sleep(3)  # workers connect to the broker
        results = run(url, token, photos_for(args.ads), args.clients, args.rate, not args.drain)
        if args.drain:  # the queue full, the web server gone: the workers alone on the cores
            web.terminate()
            web.wait(30)
            processes += start_workers()
            wait_for_decisions()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)

    ads = list(Ad.objects.filter(seller=seller))
    undecided = [ad for ad in ads if ad.decided_at is None]
    latencies = sorted(
        (ad.decided_at - ad.classification_requested_at).total_seconds() * 1000
        for ad in ads
        if ad.decided_at and ad.classification_requested_at
    )
    # Closed loop: from the first commit. Open loop: from the first scheduled send, as the
    # offered rate counts (cold web processes may commit the first ads late, all at once).
    first = results["first_send"] or min(
        ad.classification_requested_at for ad in ads if ad.classification_requested_at
    )
    if args.drain:  # the worker's own pace: from its first decision (its start-up left out)
        first = min(ad.decided_at for ad in ads if ad.decided_at)
    span = (max(ad.decided_at for ad in ads if ad.decided_at) - first).total_seconds()
    statuses = {}
    for ad in ads:
        key = f"{ad.status} {ad.review_reason}".strip()
        statuses[key] = statuses.get(key, 0) + 1
    summary = {
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
        "ads_per_s": round(len(latencies) / span, 1),
        "offered_ads_per_s": args.rate,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "ads": len(ads),
        "undecided": len(undecided),
        "http_errors": results["errors"],
        "late_sends": results["late"],
        "storage": args.storage,
        "drain": args.drain,
    }
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"database: {django.db.connection.vendor}; broker: {describe_broker(env)}"
        f"; storage: {describe_storage()}"
    )
    load = f"offered {args.rate:g} ads/s" if args.rate else f"clients: {args.clients}"
    load += "; drained by the workers alone" if args.drain else ""
    print(f"model: v{version.number if version else '-'}; {load}")
    print(f"upload: median {results['upload_p50_ms']:.0f} ms per request")
    if args.rate:
        print(f"sends: {results['late']} started over {LATE_S * 1000:.0f} ms late")
    print(f"outcomes: {statuses}")
    for key in ("p50_ms", "p95_ms", "max_ms", "ads_per_s"):
        print(f"{key}: {summary[key]}")
    for ad in ads:
        services.delete_ad(ad)
    seller.delete()
    print(json.dumps(summary))


def profile(args, env: dict, queue: str) -> None:
    """``--profile``: the split per stage of one photo from upload to decision."""
    import django

    os.environ["DJANGO_HTTPS"] = "false"  # plain HTTP, as the bench's web server

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from ads import services
    from ads.models import Ad
    from bench.stages import profile as split_by_stage
    from classifier.models import ModelVersion

    version = ModelVersion.objects.active()
    if args.storage == "s3" and version is not None:
        copy_model_to_bucket(version)
    seller = get_user_model().objects.create_user(f"bench-{os.getpid()}")
    token = Token.objects.create(user=seller).key
    photos = [ad_photos[0][1] for _, ad_photos in photos_for(args.profile)]
    try:
        split = split_by_stage(photos, queue, token)
    finally:
        for ad in Ad.objects.filter(seller=seller):
            services.delete_ad(ad)
        seller.delete()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores")
    print(f"database: {django.db.connection.vendor}; broker: {describe_broker(env)}")
    print(f"storage: {describe_storage()}; model: v{version.number if version else '-'}")
    for name, figures in split["stages"].items():
        print(f"{name:<22} cpu {figures['cpu_ms']:7.2f} ms   wall {figures['wall_ms']:7.2f} ms")
    print(
        f"{'total':<22} cpu {split['total_cpu_ms']:7.2f} ms   wall {split['total_wall_ms']:7.2f} ms"
    )
    print(json.dumps(split | {"cpu": cpu_name(), "database": django.db.connection.vendor}))


def cpu_name() -> str:
    """The CPU's model name (Linux), and whether it has AVX-512 VNNI."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())  # fmt: skip
    return f"{name} ({'with' if 'avx512_vnni' in info else 'no'} AVX-512 VNNI)"


def bucket_env(scratch: Path):
    """(environment, server): the bucket the environment names, or a moto S3 API server of
    the bench's own on 127.0.0.1 with an empty bucket (the server, to stop; else None)."""
    if os.environ.get("AVITO_STORAGE_URL"):
        return {}, None
    from tests.support.s3 import CREDENTIALS, MotoServer

    server = MotoServer(scratch / "moto.log").start()
    server.create_bucket("avito-bench")
    url = f"s3://avito-bench/pipeline-{os.getpid()}"
    env = {"AVITO_STORAGE_URL": url, "AVITO_S3_ENDPOINT_URL": server.endpoint_url}
    return CREDENTIALS | env, server


def copy_model_to_bucket(version) -> None:
    """The active version's files into the bucket when they are not there (a database
    migrated while they were on the local disk, or in an earlier bench's S3 server): from
    the local media folder, or the shipped models, whichever has the recorded bytes."""
    import hashlib

    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from classifier.bootstrap import MODELS_DIR

    owners = [(version, "serving_artifact")]
    if version.served_backbone_id is not None:
        owners.append((version.served_backbone, "artifact"))
    for owner, field in owners:
        file, recorded = getattr(owner, field), getattr(owner, f"{field}_sha256")
        if default_storage.exists(file.name):
            continue
        places = [
            Path(settings.MEDIA_ROOT) / file.name,
            *MODELS_DIR.glob(f"*/{Path(file.name).name}"),
        ]
        for place in places:
            if place.is_file() and hashlib.sha256(place.read_bytes()).hexdigest() == recorded:
                assert default_storage.save(file.name, ContentFile(place.read_bytes())) == file.name
                break
        else:
            raise SystemExit(
                f"{file.name}: not in the bucket, the media folder or the shipped models"
            )


def describe_storage() -> str:
    from django.core.files.storage import default_storage

    from avito_mod.storage import describe

    return describe(default_storage)


def run(url: str, token: str, ads, clients: int, rate: float | None = None, wait=True) -> dict:
    """Posts ``ads``: closed loop from ``clients`` threads, or open loop at ``rate`` per second;
    then, when ``wait``, waits for their decisions."""
    import requests
    from django.utils import timezone

    session_headers = {"Authorization": f"Token {token}"}
    times, errors, late, first_send = [], 0, 0, None

    def post(ad, due=None):
        category, photos = ad
        started = time.perf_counter()
        try:
            status = requests.post(
                f"{url}/api/v1/ads/",
                data={"title": "bench", "price": "10", "category": category},
                files=[("photos", (name, data, "image/jpeg")) for name, data in photos],
                headers=session_headers,
                timeout=60,
            ).status_code
        except requests.RequestException:
            status = None
        elapsed = (time.perf_counter() - started) * 1000
        return status, elapsed, due is not None and started - due > LATE_S

    if rate is None:
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(post, ads))
    else:
        # As many threads as ads: an idle one is reused, a new one started when all are
        # waiting for answers, so a slow answer never holds back the next send.
        with ThreadPoolExecutor(len(ads)) as pool:
            start, first_send = time.perf_counter(), timezone.now()
            futures = []
            for i, ad in enumerate(ads):
                due = start + i / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                futures.append(pool.submit(post, ad, due))
            answers = [future.result() for future in futures]
    for status, elapsed, was_late in answers:
        times.append(elapsed)
        errors += status != 201
        late += was_late
    if wait:
        wait_for_decisions()
    return {
        "errors": errors,
        "late": late if rate else None,
        "first_send": first_send,
        "upload_p50_ms": statistics.median(times),
    }


def wait_for_decisions(seconds: float = 300) -> None:
    """Until no bench ad is pending, or ``seconds`` (those left are counted undecided)."""
    from ads.models import Ad

    deadline = time.monotonic() + seconds
    while Ad.objects.filter(title="bench", status=Ad.Status.PENDING).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)


if __name__ == "__main__":
    main()
