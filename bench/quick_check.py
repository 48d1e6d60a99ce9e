"""The sellers' quick check under load: POST /api/v1/classify/ with concurrent clients.

    python bench/quick_check.py [--clients 20] [--requests 600] [--rate R]
    REDIS_URL=redis://127.0.0.1:6379/0 python bench/quick_check.py --via-queue

Starts its own web server (the Procfile's gunicorn, as ``bin/run`` does) on a scratch database,
signs in one seller per client, and sends real ad thumbnails (generated photos without the
shared dataset) from ``--clients`` threads, each sending its next check as soon as it has an
answer (the server's saturation), or with ``--rate R`` R checks a second on a fixed schedule
(latency below saturation, as sellers arriving independently see it). Prints p50, p95 and
requests per second, ending with one JSON line. ``--via-queue`` also measures the
alternative design, a round trip through the inference queue to a worker and back (needs
Redis, for the result), from the same number of threads, without HTTP.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@shared_task(name="bench.quick_check.check_through_queue", ignore_result=False)
def check_through_queue(image_b64: str, category: str) -> dict:
    """The alternative design: the worker runs the same quick check and sends back the answer."""
    from ads.models import Category
    from ads.uploads import read_photo
    from classifier.serializers import QuickCheckSerializer
    from classifier.services.quick_check import quick_check

    image = read_photo(io.BytesIO(base64.b64decode(image_b64)))
    return QuickCheckSerializer(quick_check(image, Category.objects.get(slug=category))).data


def photos(n: int) -> list[tuple[str, bytes]]:
    from bench.pipeline import photos_for

    return [(category, files[0][1]) for category, files in photos_for(n)]


def percentiles(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
    }


def over_http(url: str, tokens: list[str], sample, total: int, rate: float | None) -> dict:
    import requests

    def one(i: int):
        category, data = sample[i % len(sample)]
        session = sessions[i % len(tokens)]
        started = time.perf_counter()
        response = session.post(
            f"{url}/api/v1/classify/",
            data={"category": category},
            files={"image": ("photo.jpg", data, "image/jpeg")},
            timeout=30,
        )
        return response.status_code, (time.perf_counter() - started) * 1000

    sessions = []
    for token in tokens:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        sessions.append(session)
    return timed(one, total, len(tokens), rate)


def through_queue(sample, total: int, clients: int) -> dict:
    def one(i: int):
        category, data = sample[i % len(sample)]
        started = time.perf_counter()
        check_through_queue.apply_async(
            (base64.b64encode(data).decode(), category),
            queue=os.environ["CLASSIFIER_INFERENCE_QUEUE"],
        ).get(timeout=30)
        return 200, (time.perf_counter() - started) * 1000

    return timed(one, total, clients)


def timed(one, total: int, clients: int, rate: float | None = None) -> dict:
    """``total`` calls of ``one`` from ``clients`` threads: as fast as they go (closed
    loop), or with ``rate`` one call every 1/rate s on a fixed schedule (open loop), each
    timed from when it was due, so a wait for a free thread counts against it."""
    for i in range(clients):  # warm up: models loaded, connections open
        one(i)
    started = time.perf_counter()

    def on_schedule(i: int):
        due = started + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        status, _ = one(i)
        return status, (time.perf_counter() - due) * 1000

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one if rate is None else on_schedule, range(total)))
    seconds = time.perf_counter() - started
    times = [elapsed for _, elapsed in results]
    errors = sum(status != 200 for status, _ in results)
    return {**percentiles(times), "rps": round(total / seconds, 1), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument(
        "--rate",
        type=float,
        help="checks offered per second on a fixed schedule (open loop; latency below "
        "saturation); default: each client sends its next check as soon as it has an answer",
    )
    parser.add_argument("--via-queue", action="store_true")
    parser.add_argument(
        "--server", choices=["gunicorn", "runserver"], default="gunicorn",
        help="the Procfile's gunicorn, or Django's development server for comparison",
    )  # fmt: skip
    parser.add_argument("--web-processes", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (--via-queue)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="avito-bench-"))
    queue = f"bench-{os.getpid()}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        "CLASSIFIER_INFERENCE_QUEUE": queue,
        "DJANGO_DEBUG": "false",
        # Plain HTTP on 127.0.0.1: no HTTPS redirect, no secure-only cookies.
        "DJANGO_HTTPS": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        # One address and a few accounts send everything: the limits are not under test.
        "CLASSIFIER_QUICK_CHECK_USER_RATE": "1000000/min",
        "CLASSIFIER_QUICK_CHECK_ADDRESS_RATE": "1000000/min",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if "DATABASE_URL" not in os.environ:
        env["AVITO_DATA_DIR"] = str(scratch)
    os.environ.update(env)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from bench.pipeline import free_port, wait_http, web_server_command
    from classifier.models import ModelVersion

    version = ModelVersion.objects.active()
    users = [
        get_user_model().objects.create_user(f"bench-{os.getpid()}-{n}")
        for n in range(args.clients)
    ]
    tokens = [Token.objects.create(user=user).key for user in users]
    sample = photos(40)
    port = free_port()
    logs = open(scratch / "processes.log", "w")  # noqa: SIM115
    if args.server == "runserver":
        server = [
            python,
            "manage.py",
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            "--skip-checks",
        ]
        server_env = {}
    else:
        server, server_env = web_server_command(port, args.web_processes, args.threads)
    processes = [subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs)]
    figures = {}
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v1/categories/")
        figures["web_process"] = over_http(url, tokens, sample, args.requests, args.rate)
        resident = resident_mb(processes[0].pid)
        if args.via_queue:
            figures["via_queue"] = via_queue(args, env, processes, logs, sample)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        for user in users:
            user.delete()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    web = "manage.py runserver (threads)"
    if args.server == "gunicorn":
        web = f"gunicorn, {args.web_processes} processes x {args.threads} threads"
    offered = f"{args.rate}/s offered" if args.rate else "closed loop"
    print(f"model: v{version.number if version else '-'}; clients: {args.clients}; "
          f"requests: {args.requests} ({offered}); web server: {web}")  # fmt: skip
    print("web processes' resident memory after the run (MB): " + ", ".join(map(str, resident)))
    for design, result in figures.items():
        print(f"{design}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    print(json.dumps(figures["web_process"] | {"via_queue": figures.get("via_queue")}))


def resident_mb(pid: int) -> list[int]:
    """Resident memory of ``pid`` and of its children (gunicorn's workers), Linux only."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    sizes = []
    for process in [pid, *map(int, children)]:
        status = Path(f"/proc/{process}/status").read_text()
        kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        sizes.append(round(int(kb) / 1024))
    return sizes


def via_queue(args, env, processes, logs, sample) -> dict:
    redis = env.get("REDIS_URL")
    if not redis:
        raise SystemExit("--via-queue needs REDIS_URL (the answer comes back through Redis)")
    from avito_mod.celery import app

    app.conf.result_backend = redis
    worker = [
        sys.executable, "-m", "celery", "-A", "avito_mod", "--result-backend", redis,
        "worker", "-Q", env["CLASSIFIER_INFERENCE_QUEUE"], "--include", "bench.quick_check",
        "--concurrency", str(args.workers), "--without-gossip", "--without-mingle",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    processes.append(subprocess.Popen(worker, cwd=ROOT, env=env, stdout=logs, stderr=logs))
    time.sleep(5)  # the worker connects
    return through_queue(sample, args.requests, args.clients)


if __name__ == "__main__":
    main()
