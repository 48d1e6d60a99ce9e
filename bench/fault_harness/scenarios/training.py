"""A fault of training: its process killed mid-epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..harness import Harness, Result
from ..sellers import Tally
from ..services import PYTHON, ROOT, children


def training_kill(h: Harness) -> Result:
    """A small training's process SIGKILLed mid-epoch: the version is marked failed, the
    active one keeps serving."""
    result, tally = Result("training-kill"), Tally()
    from classifier.models import ModelVersion
    from classifier.services import retraining

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
    from tests.support.images import jpeg_bytes

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
