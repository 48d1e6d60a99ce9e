"""Faults of the models: the active version's file broken, a training killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from ..harness import Harness, Result
from ..sellers import Tally
from ..services import PYTHON, ROOT, children


def model_broken(h: Harness) -> Result:
    """The active version's serving file corrupted, then deleted, under workers started
    afresh: ads go to review, ``manage.py check`` and the admin say so; then restored."""
    result, tally = Result("model-broken"), Tally()
    from ads.models import Ad
    from classifier.models import ModelVersion

    version = h.db(ModelVersion.objects.active)
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
            for worker in h.workers:
                worker.stop()
                h.restart_worker(worker)
            part = Tally()
            h.sellers.burst(h.args.model_ads, part, f"model-{how}", 3)
            h.wait_decided(part.ids, time.monotonic(), h.args.deadline)
            reasons = Counter(h.db(lambda ids=part.ids: list(
                Ad.objects.filter(pk__in=ids).values_list("status", "review_reason")
            )))  # fmt: skip
            bad = {k: n for k, n in reasons.items() if k != ("needs_review", "model_unavailable")}
            if bad:
                result.problems.append(f"{how}: not all model_unavailable: {bad}")
            result.notes.append(f"{how}: {dict(reasons)}")
            _check_says_broken(h, result, how)
            _admin_says_broken(h, result, how, version.number)
            tally.ids += part.ids
            tally.statuses.update(part.statuses)
    finally:
        shutil.move(backup, path)
    restored = time.monotonic()
    h.account(result, tally, restored, h.args.deadline)
    after = Tally()
    h.sellers.burst(4, after, "model-restored", 2)
    h.wait_decided(after.ids, time.monotonic(), h.args.deadline)
    result.ids += after.ids
    reasons = Counter(h.db(lambda: list(
        Ad.objects.filter(pk__in=after.ids).values_list("review_reason", flat=True)
    )))  # fmt: skip
    if reasons["model_unavailable"]:
        result.problems.append(f"still model_unavailable after the restore: {dict(reasons)}")
    _admin_says_broken(h, result, "restored", version.number, expect=False)
    result.recover_s = round(time.monotonic() - restored, 1)
    return result


def _check_says_broken(h: Harness, result: Result, how: str) -> None:
    check = subprocess.run(
        [PYTHON, "manage.py", "check"], cwd=ROOT, env=h.env, capture_output=True, text=True
    )
    said = "classifier.E001" in check.stdout + check.stderr
    if not said or check.returncode == 0:
        result.problems.append(f"{how}: manage.py check said nothing (exit {check.returncode})")
    else:
        result.notes.append(f"{how}: manage.py check: classifier.E001, exit {check.returncode}")


def _admin_says_broken(h: Harness, result: Result, how: str, number: int, expect=True) -> None:
    import requests

    session = requests.Session()
    login = f"{h.url}/admin/login/"
    session.get(login, timeout=30)
    session.post(
        login,
        data={"username": "faults-admin", "password": h.admin_password,
              "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""), "next": "/admin/"},
        headers={"Referer": login}, timeout=30,
    )  # fmt: skip
    for page in ("/admin/", "/admin/moderation/reviewitem/", "/admin/classifier/modelversion/"):
        response = session.get(f"{h.url}{page}", timeout=30)
        warns = f"model v{number} cannot" in response.text
        if response.status_code != 200 or warns != expect:
            said = "no warning" if expect else "a warning still"
            result.problems.append(f"{how}: {page} ({response.status_code}) shows {said}")
            return
    if expect:
        result.notes.append(f"{how}: the admin warns on its index, review queue and registry")


def training_kill(h: Harness) -> Result:
    """A small training's process SIGKILLed mid-epoch: the version is marked failed, the
    active one keeps serving."""
    result, tally = Result("training-kill"), Tally()
    from classifier import retraining
    from classifier.models import ModelVersion

    _import_training_images(h)
    active = h.db(ModelVersion.objects.active)
    h.trainer.start()
    h.wait_workers([h.trainer])
    from django.db import transaction

    with transaction.atomic():
        version = retraining.request_training(None)
    epoch = _wait_training(version, seconds=h.args.deadline)
    child = children(h.trainer.process.pid)
    if epoch is None or not child:
        result.problems.append(f"the training never reached an epoch (child {child})")
    for pid in child:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    result.notes.append(f"training child {child} SIGKILLed at epoch {epoch}")
    deadline = killed + h.args.deadline
    while time.monotonic() < deadline:
        version.refresh_from_db()
        if version.status != ModelVersion.Status.TRAINING:
            break
        time.sleep(0.5)
    result.recover_s = round(time.monotonic() - killed, 1)
    result.notes.append(f"v{version.number}: {version.status}: {version.error}")
    if version.status != ModelVersion.Status.FAILED:
        result.problems.append(f"v{version.number} is {version.status}, not failed")
    still = h.db(ModelVersion.objects.active)
    if still is None or still.pk != active.pk:
        result.problems.append("the active version changed")
    h.sellers.burst(4, tally, "training-kill", 2)
    recovered = result.recover_s
    h.account(result, tally, time.monotonic(), h.args.deadline)
    from ads.models import Ad

    served = h.db(
        lambda: Ad.objects.filter(pk__in=tally.ids, review_reason="model_unavailable").count()
    )
    if served:
        result.problems.append(f"{served} ads found no model after the training died")
    result.recover_s = recovered
    h.trainer.stop()
    return result


def _import_training_images(h: Harness) -> None:
    from tests.images import jpeg_bytes

    folder = h.scratch / "training-images"
    for kind in ("laptop", "phone"):
        (folder / kind).mkdir(parents=True)
        for seed in range(h.args.training_images):
            (folder / kind / f"{seed}.jpg").write_bytes(jpeg_bytes(kind, 1000 + seed))
    subprocess.run([PYTHON, "manage.py", "import_images", str(folder)], cwd=ROOT,
                   env=h.env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def _wait_training(version, seconds: float) -> int | None:
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
