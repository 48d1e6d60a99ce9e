"""Where the CPU of one upload goes (issue 27): one ad of photos posted in-process through
Django's test client (every middleware, DRF, the services, storage, the database), timed
once plainly and once under cProfile, with the profile's time summed by stage.

    python bench/upload_profile.py [--photos N] [--photo-mib 10] [--real] [--key]

The photos: JPEGs of random pixels at the pixel cap just under ``--photo-mib`` (the costliest
bytes a seller can send; made once and kept under /tmp), or with ``--real`` a 12-megapixel
photo of noise at quality 75; by default as many as an ad may take
(``ADS_MAX_AD_PHOTO_BYTES``). Needs the project's database (``DATABASE_URL``, migrated) and
settings; a seller of its own is created and its ads deleted after. Prints JSON:
``{"photos", "photo_mb", "body_mb", "cpu_s", "wall_s", "status", "stages": {stage: cpu_s}}``:
``cpu_s`` is the process's (the storage's writer threads included); the stages are the main
thread's under the profiler, which inflates the Python-heavy ones (multipart parsing) more
than the C ones (decoding).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
PIXEL_SIDE = 6324  # just under the 40,000,000 pixel cap
# Stage: functions (file fragment, function name) whose cumulative time is the stage's.
STAGES = {
    "multipart parsing (and temporary files)": [("multipartparser.py", "parse")],
    "upload fingerprint (Idempotency-Key)": [("ads/api/idempotency.py", "fingerprint")],
    "reading the upload": [("ads/uploads.py", "read_capped")],
    "decoding": [("ads/photos.py", "decode_image")],
    "re-encoding": [("PIL/Image.py", "save")],
    "perceptual hash": [("ads/photos.py", "perceptual_hash")],
    "is it the stored form already": [("ads/uploads.py", "is_stored_form")],
    "sha256 of the stored file": [("~", "<built-in method _hashlib.openssl_sha256>")],
    "storage (writing the files)": [("ads/services.py", "_store_all")],
}


def body_of(photos: int, photo: bytes) -> tuple[bytes, str]:
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    from tests.support.factories import upload

    fields = {"title": "Profiled", "price": "1.00", "category": "phone"}
    fields["photos"] = [upload(f"photo_{n}.jpg", photo) for n in range(photos)]
    return encode_multipart(BOUNDARY, fields), MULTIPART_CONTENT


def photo_bytes(args: argparse.Namespace) -> bytes:
    from tests.support.costly import noise_jpeg

    name = "real" if args.real else f"maximal-{args.photo_mib}"
    cached = Path(f"/tmp/upload-profile-{name}.jpg")
    if cached.exists():
        return cached.read_bytes()
    if args.real:
        data = noise_jpeg((4032, 3024), quality=75)
    else:
        data = next(
            data
            for quality in range(60, 0, -5)
            if len(data := noise_jpeg((PIXEL_SIDE, PIXEL_SIDE), quality)) <= args.photo_mib * MIB
        )
    cached.write_bytes(data)
    return data


def post(client, body: bytes, content_type: str, key: str | None):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.generic("POST", "/api/v1/ads/", body, content_type=content_type, **extra)


def stage_times(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile).stats
    totals = {}
    for stage, wanted in STAGES.items():
        total = 0.0
        for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
            if any(part in filename and function == name for part, name in wanted):
                total += cumulative
        totals[stage] = round(total, 3)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, help="default: as many as an ad may take")
    parser.add_argument("--photo-mib", type=int, default=10)
    parser.add_argument("--real", action="store_true", help="a 12-megapixel phone photo")
    parser.add_argument("--key", action="store_true", help="send an Idempotency-Key")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from ads.models import Ad

    settings.ALLOWED_HOSTS = ["*"]
    settings.ADS_UPLOAD_USER_RATE = settings.ADS_UPLOAD_ADDRESS_RATE = "1000000/min"
    seller, _ = get_user_model().objects.get_or_create(username="upload-profile-seller")
    client = Client()
    client.force_login(seller)
    photo = photo_bytes(args)
    count = args.photos or min(
        settings.ADS_MAX_PHOTOS, settings.ADS_MAX_AD_PHOTO_BYTES // len(photo)
    )
    body, content_type = body_of(count, photo)
    results = {}
    try:
        post(client, body, content_type, None)  # warm: imports, first queries
        started, wall = time.process_time(), time.monotonic()
        response = post(client, body, content_type, "plain-1" if args.key else None)
        results["cpu_s"] = round(time.process_time() - started, 3)
        results["wall_s"] = round(time.monotonic() - wall, 3)
        results["status"] = response.status_code
        if response.status_code >= 300:
            results["answer"] = response.content[:300].decode(errors="replace")
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        post(client, body, content_type, "profiled-1" if args.key else None)
        profile.disable()
        results["stages"] = stage_times(profile)
    finally:
        Ad.objects.filter(seller=seller).delete()
    summary = {"photos": count, "photo_mb": round(len(photo) / 1e6, 2)}
    summary["body_mb"] = round(len(body) / 1e6, 1)
    print(json.dumps(summary | results, indent=1))


if __name__ == "__main__":
    main()
