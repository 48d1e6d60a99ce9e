"""Pillow's own test images (fuzzer crashers, truncated files, exotic formats and modes)
posted to both upload endpoints: nothing may be a server error or leave anything behind.

    python bench/pillow_corpus.py [--limit N]

Takes ``Tests/images/`` from Pillow's source distribution on PyPI for the installed
version (``pip download --no-binary :all: --no-deps pillow==X``, kept in
``var/pillow-sdist/``), then, in a scratch data directory (SQLite and an embedded broker,
or ``DATABASE_URL`` / ``REDIS_URL`` when set), runs the Procfile's web server and one
inference worker and posts every file once as a one-photo ad (``POST /api/v1/ads/``) and
once to the quick check (``POST /api/v1/classify/``). Then it waits for every ad it got a
``201`` for to be decided and counts orphans: ad photos without a file, photo files without
a row, ads never decided. Ends with one JSON line:
``{"files", "accepted", "refused", "http_5xx", "orphans"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    UNLIMITED_QUICK_CHECKS,
    UNLIMITED_UPLOADS,
    bench_env,
    broker_for,
)

CACHE = ROOT / "var/pillow-sdist"


def corpus() -> list[tuple[str, bytes]]:
    """Every file under the sdist's Tests/images/, as (name, bytes)."""
    import PIL

    CACHE.mkdir(parents=True, exist_ok=True)
    archives = sorted(CACHE.glob(f"pillow-{PIL.__version__}.tar.gz"))
    if not archives:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
             "--no-deps", "--dest", str(CACHE), f"pillow=={PIL.__version__}"],
            check=True,
        )  # fmt: skip
        archives = sorted(CACHE.glob("pillow-*.tar.gz"))
    files = []
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            if member.isfile() and "/Tests/images/" in member.name:
                files.append(
                    (member.name.split("/Tests/images/", 1)[1], archive.extractfile(member).read())
                )
    return sorted(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N files (a quick look)")
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for decisions")
    args = parser.parse_args()
    files = corpus()[: args.limit]
    scratch = Path(tempfile.mkdtemp(prefix="avito-pillow-"))
    with broker_for(scratch) as broker:
        run_corpus(args, files, scratch, broker)


def run_corpus(args, files, scratch: Path, broker: dict) -> None:
    queue = f"bench-{os.getpid()}"
    env = bench_env(
        CLASSIFIER_INFERENCE_QUEUE=queue,
        AVITO_DATA_DIR=str(scratch),
        **UNLIMITED_UPLOADS,
        **UNLIMITED_QUICK_CHECKS,
        **broker,
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from ads.models import Ad, AdImage
    from bench.pipeline import free_port, wait_http, web_server_command

    seller = get_user_model().objects.create_user("corpus-seller")
    token = Token.objects.create(user=seller).key
    port = free_port()
    logs = open(scratch / "processes.log", "w")  # noqa: SIM115
    server, server_env = web_server_command(port)
    worker = [
        python, "-m", "celery", "-A", "avito_mod", "worker", "-Q", queue, "--concurrency", "1",
        "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs),
        subprocess.Popen(worker, cwd=ROOT, env=env, stdout=logs, stderr=logs),
    ]
    statuses = {"ads": Counter(), "classify": Counter()}
    server_errors = []
    try:
        import requests

        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/v1/categories/")
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for name, data in files:
            photo = {"image": (Path(name).name, data, "application/octet-stream")}
            ad = session.post(
                f"{url}/api/v1/ads/",
                data={"title": "corpus", "price": "1", "category": "phone"},
                files={"photos": photo["image"]},
                timeout=60,
            )
            check = session.post(
                f"{url}/api/v1/classify/", data={"category": "phone"}, files=photo, timeout=60
            )
            for endpoint, response in (("ads", ad), ("classify", check)):
                statuses[endpoint][response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{endpoint} {name}: {response.status_code}")
        deadline = time.monotonic() + args.wait
        while Ad.objects.filter(status=Ad.Status.PENDING).exists() and time.monotonic() < deadline:
            time.sleep(2)
        stored = {
            str(path.relative_to(settings.MEDIA_ROOT))
            for path in Path(settings.MEDIA_ROOT).glob("ads/**/*")
            if path.is_file()
        }
        rows = set(AdImage.objects.values_list("file", flat=True))
        orphans = {
            "rows_without_file": len(rows - stored),
            "files_without_row": len(stored - rows),
            "ads_never_decided": Ad.objects.filter(status=Ad.Status.PENDING).count(),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    from bench.serving import machine

    print(f"machine: {machine()}")
    print(f"Pillow's Tests/images/: {len(files)} files; statuses: {dict(statuses['ads'])} (ads), "
          f"{dict(statuses['classify'])} (quick check)")  # fmt: skip
    print(f"orphans: {orphans}")
    for line in server_errors:
        print(f"server error: {line}")
    print(
        json.dumps(
            {
                "files": len(files),
                "accepted": statuses["ads"][201],
                "refused": statuses["ads"][400],
                "http_5xx": len(server_errors),
                "orphans": sum(orphans.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
