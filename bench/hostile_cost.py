"""What the costliest files cost the web server (issue 27): each posted to both upload
endpoints of a running gunicorn (the Procfile's, ``DJANGO_DEBUG=false``), with the CPU
seconds and the peak resident memory above idle of its processes measured per request.

    python bench/hostile_cost.py [--port 8130] [--processes 1]

The files: a progressive JPEG of 6000x6000 px with 2,500 scans; one at the scan limit and
the pixel cap (the costliest JPEG accepted); 16-bit and 1-bit PNGs at the pixel cap; a
maximal JPEG (the pixel cap, noise, just under the byte cap); a 5,000-frame GIF; the largest
body each endpoint takes (as many such JPEGs as an ad's photos may take together,
``ADS_MAX_AD_PHOTO_BYTES``), the costliest ads to decode (ten progressive JPEGs at the scan
limit and the pixel cap; ten WebPs of noise as large as the memory budget lets them be; ten
progressive 12-megapixel photos) and bodies over the caps (to
``/accounts/login/`` too); and, for comparison, an ordinary 12-megapixel phone photo, an ad
of ten photo-like ones (3 MB each) and a real ad photo. Its own SQLite database and data
folder under /tmp; Redis from ``REDIS_URL`` (the ads are queued for a worker that is not
started, on a queue of the bench's own, deleted after). Prints a line per request, then JSON:
``{"files", "max_cpu_s", "max_rss_mb", "http_5xx", "accepted", "requests"}``; bars: every
file answered within 2 s of CPU and 300 MB above idle per process, no 5xx. Linux only
(``/proc``: per-process CPU, and the peak reset through ``clear_refs``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import wait_http, web_server_command  # noqa: E402
from tests.support.costly import deep_png, many_frames_gif, many_scans_jpeg, noise_jpeg  # noqa: E402

DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
MIB = 1024 * 1024
PIXEL_SIDE = 6324  # 6324 x 6324 = 39,992,976: just under the 40,000,000 pixel cap
PHOTO_BYTES = 10 * MIB  # ADS_MAX_PHOTO_BYTES's default
AD_PHOTO_BYTES = int(os.environ.get("ADS_MAX_AD_PHOTO_BYTES", 50 * MIB))  # and its default
TICKS = os.sysconf("SC_CLK_TCK")
ADS, QUICK_CHECK = "/api/v1/ads/", "/api/v1/classify/"


def costly_files() -> dict[str, bytes]:
    maximal = largest_jpeg((PIXEL_SIDE, PIXEL_SIDE), PHOTO_BYTES)
    return {
        "progressive_2500_scans_6000px.jpg": many_scans_jpeg((6000, 6000), 2500),
        "progressive_32_scans_at_pixel_cap.jpg": many_scans_jpeg((PIXEL_SIDE,) * 2, 32),
        "png_16bit_at_pixel_cap.png": deep_png((PIXEL_SIDE, PIXEL_SIDE), 16),
        "png_1bit_at_pixel_cap.png": deep_png((PIXEL_SIDE, PIXEL_SIDE), 1),
        "maximal_jpeg.jpg": maximal,
        "gif_5000_frames.gif": many_frames_gif(5000, (256, 256)),
        "webp_of_noise_3960px.webp": noise_webp((3960, 3960)),
        "phone_photo_12mp.jpg": noise_jpeg((4032, 3024), quality=75),
        "photo_like_12mp.jpg": photo_like_jpeg((4032, 3024)),
        "photo_like_12mp_progressive.jpg": photo_like_jpeg((4032, 3024), progressive=True),
        "real_ad_photo.jpg": next(iter(sorted(DATA.rglob("*.jp*g")))).read_bytes(),
    }


def largest_jpeg(size: tuple[int, int], most: int) -> bytes:
    """A JPEG of random pixels at ``size``, of the highest quality that stays under ``most``."""
    for quality in range(60, 0, -5):
        data = noise_jpeg(size, quality)
        if len(data) <= most:
            return data
    raise SystemExit("no JPEG of random pixels that size fits the byte cap")


def noise_webp(size: tuple[int, int]) -> bytes:
    """A lossy WebP of random pixels: its decoder reads it whole, no clock check between;
    3960 px a side is about as large as the decoding memory budget lets a WebP be."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "WEBP", quality=5, method=0)
    return buffer.getvalue()


def photo_like_jpeg(size: tuple[int, int], progressive: bool = False) -> bytes:
    """A JPEG with a phone photo's size and bytes (about 3 MB at 12 megapixels): smooth
    shapes and a little sensor noise, at quality 92."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    coarse = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), np.int16)
    noisy = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=92, progressive=progressive)
    return buffer.getvalue()


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "hostile-cost-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    for field, name, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def requests_to_send(files: dict[str, bytes]) -> Iterator[tuple[str, str, bytes, str]]:
    """(label, path, body, content type) of every request of the bench, made as it is sent."""
    ad = {"title": "Bench", "price": "1.00", "category": "phone"}
    for name, data in files.items():
        yield (name, ADS, *multipart(ad, [("photos", name, data)]))
        yield (name, QUICK_CHECK, *multipart({"category": "phone"}, [("image", name, data)]))
    maximal = files["maximal_jpeg.jpg"]
    fit = min(10, AD_PHOTO_BYTES // len(maximal))
    largest = [("photos", f"maximal_{n}.jpg", maximal) for n in range(fit)]
    yield (f"largest_body_{fit}_maximal_jpegs", ADS, *multipart(ad, largest))
    for name in (
        "progressive_32_scans_at_pixel_cap.jpg",
        "webp_of_noise_3960px.webp",
        "photo_like_12mp_progressive.jpg",
        "photo_like_12mp.jpg",
    ):
        ten = [("photos", f"{n}_{name}", files[name]) for n in range(10)]
        yield (f"ad_of_ten_{name}", ADS, *multipart(ad, ten))
    over_total = [("photos", f"maximal_{n}.jpg", maximal) for n in range(fit + 1)]
    yield ("ad_photos_over_their_total", ADS, *multipart(ad, over_total))
    # Ten photos at the byte cap and 1 MiB more than the form's room: over the ad's body cap.
    over = [("photos", "zeros.jpg", bytes(PHOTO_BYTES))] * 10 + [("photos", "more.jpg", bytes(MIB))]
    yield ("body_over_the_cap", ADS, *multipart(ad, over))
    big = bytes(30 * 1000 * 1000)
    yield ("photo_of_30_mb", ADS, *multipart(ad, [("photos", "big.jpg", big)]))
    yield ("photo_of_30_mb", QUICK_CHECK, *multipart({}, [("image", "big.jpg", big)]))
    login = {"username": "nobody", "password": "x" * (64 * MIB)}
    yield ("anonymous_64_mib_sign_in", "/accounts/login/", *multipart(login, []))


def workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_kb(pid: int, key: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(key)))


def measured(master: int, url: str, token: str | None, body: bytes, content_type: str) -> dict:
    import requests

    pids = workers(master)
    for pid in pids:  # the peak (VmHWM) starts again from the current size
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    idle = {pid: memory_kb(pid, "VmRSS") for pid in pids}
    cpu = {pid: cpu_seconds(pid) for pid in pids}
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Token {token}"
    started = time.monotonic()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=300)
        status, answer = response.status_code, response.text[:300]
    except requests.ConnectionError as error:  # a server closing on a refused body
        status, answer = 0, f"connection closed: {type(error).__name__}"
    wall = time.monotonic() - started
    time.sleep(0.2)  # the worker finishes its accounting after the answer
    return {
        "status": status,
        "wall_s": round(wall, 3),
        "cpu_s": round(sum(cpu_seconds(pid) - cpu[pid] for pid in pids), 2),
        "peak_above_idle_mb": round(max(memory_kb(p, "VmHWM") - idle[p] for p in pids) / 1024),
        "idle_mb": round(max(idle.values()) / 1024),
        "answer": answer,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8130)
    parser.add_argument("--processes", type=int, default=1, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="harden-a-hostile-cost-"))
    queue = f"bench-hostile-{os.getpid()}"
    env = {
        key: value for key, value in os.environ.items() if key != "DATABASE_URL"
    } | {  # its own SQLite database in its own data folder
        "AVITO_DATA_DIR": str(scratch),
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "CLASSIFIER_INFERENCE_QUEUE": queue,
        "ADS_UPLOAD_USER_RATE": "1000000/min",
        "ADS_UPLOAD_ADDRESS_RATE": "1000000/min",
        "CLASSIFIER_QUICK_CHECK_USER_RATE": "1000000/min",
        "CLASSIFIER_QUICK_CHECK_ADDRESS_RATE": "1000000/min",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    os.environ.clear()
    os.environ.update(env)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=get_user_model().objects.create_user("bench-seller")).key
    files = costly_files()
    server, server_env = web_server_command(args.port, args.processes, args.threads)
    logs = open(scratch / "web.log", "w")  # noqa: SIM115
    web = subprocess.Popen(server, cwd=ROOT, env=env | server_env, stdout=logs, stderr=logs)
    results = []
    try:
        base = f"http://127.0.0.1:{args.port}"
        wait_http(f"{base}/api/v1/categories/")
        for label, path, body, content_type in requests_to_send(files):
            seller = token if path.startswith("/api/") else None
            result = measured(web.pid, base + path, seller, body, content_type)
            result = {"file": label, "endpoint": path, "bytes": len(body)} | result
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "answer"}), flush=True)
    finally:
        web.terminate()
        web.wait(60)
        _forget_queue(queue)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"gunicorn {args.processes} process(es) x {args.threads} threads")  # fmt: skip
    print(
        json.dumps(
            {
                "files": sorted({result["file"] for result in results}),
                "max_cpu_s": max(result["cpu_s"] for result in results),
                "max_rss_mb": max(result["peak_above_idle_mb"] for result in results),
                "http_5xx": sum(result["status"] >= 500 for result in results),
                "accepted": [
                    f"{result['file']} {result['endpoint']}"
                    for result in results
                    if result["status"] in (200, 201)
                ],
                "requests": results,
            },
            indent=1,
        )
    )


def _forget_queue(queue: str) -> None:
    """The ads' classification tasks, which no worker of this bench takes."""
    import redis

    if os.environ.get("REDIS_URL"):
        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(queue)


if __name__ == "__main__":
    main()
