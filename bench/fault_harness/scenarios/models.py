"""Faults of the active model's serving file: replaced under running workers, or missing
when workers start."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from ..harness import FINAL, Harness, Result
from ..sellers import Tally
from ..services import PYTHON, ROOT

# A valid LiteRT model of other bytes than the active one's: the shipped int8 backbone.
OTHER_MODEL = ROOT / "classifier/default_model/v5/backbone.tflite"
REFUSED = ("model_unverified", "model_unavailable")
# "Within a few seconds" of the file put back, with room for a shared 2-core machine.
CLASSIFIED_AGAIN_WITHIN_S = 15


def model_replaced(h: Harness) -> Result:
    """The active version's serving file replaced under running workers (not restarted),
    by another valid LiteRT model, then by garbage: ads go to review as model_unverified,
    none is published; ``manage.py check`` and the admin name the version; once the
    recorded file is back, ads are classified again and the warning goes."""
    from classifier.models import ModelVersion

    result, tally = Result("model-replaced"), Tally()
    version = h.db(ModelVersion.objects.active)
    path = Path(version.serving_artifact.path)
    # Workers that have loaded (and verified) the model: the fault is its file changing.
    h.sellers.burst(2, tally, "model-replaced-before", 2)
    h.wait_decided(tally.ids, time.monotonic(), h.args.deadline)
    pids = [worker.process.pid for worker in h.workers]
    backup = path.with_suffix(".faults-backup")
    shutil.copy2(path, backup)
    try:
        for how, content in (
            ("another model", OTHER_MODEL.read_bytes()),
            ("garbage", b"not a model" * 100),
        ):
            _replace(path, content)
            # A worker looks at its files at most this long after its last look; until then
            # it serves the copy it verified, the file the registry recorded: right too.
            time.sleep(h.artifact_check_s + 0.5)
            tally.extend(_broken_ads(h, result, how, "model_unverified", version.number))
    finally:
        shutil.move(backup, path)
    restored = time.monotonic()
    h.account(result, tally, restored, h.args.deadline)
    _classified_again(h, result, version.number, restored)
    if [worker.process.pid for worker in h.workers] != pids or any(
        worker.process.poll() is not None for worker in h.workers
    ):
        result.problems.append(
            "a worker restarted or died: the file did not change under running workers"
        )
    return result


def model_broken(h: Harness) -> Result:
    """The active version's serving file missing when workers start (a deploy that lost
    it): ads go to review as model_unavailable, none is published; ``manage.py check`` and
    the admin say so; once the file is back, ads are classified again and the warning goes.
    """
    from classifier.models import ModelVersion

    result = Result("model-broken")
    version = h.db(ModelVersion.objects.active)
    path = Path(version.serving_artifact.path)
    backup = path.with_suffix(".faults-backup")
    shutil.move(path, backup)
    try:
        # Fresh worker processes, as after a deploy: no model loaded before the file went.
        for worker in h.workers:
            worker.stop()
            h.restart_worker(worker)
        tally = _broken_ads(h, result, "deleted", "model_unavailable", version.number)
    finally:
        shutil.move(backup, path)
    restored = time.monotonic()
    h.account(result, tally, restored, h.args.deadline)
    _classified_again(h, result, version.number, restored)
    return result


def _replace(path: Path, content: bytes) -> None:
    """Put ``content`` in place of the file at once, as a deploy's copy does: no process
    reads half a file."""
    new = path.with_suffix(".faults-new")
    new.write_bytes(content)
    os.replace(new, path)


def _broken_ads(h: Harness, result: Result, how: str, reason: str, number: int) -> Tally:
    """Ads posted while the file is broken: all must go to review for ``reason``; the
    system check and the admin must name the version."""
    part = Tally()
    h.sellers.burst(h.args.model_ads, part, f"model-{how.replace(' ', '-')}", 3)
    h.wait_decided(part.ids, time.monotonic(), h.args.deadline)
    reasons = _reasons(h, part.ids)
    bad = {k: n for k, n in reasons.items() if k != ("needs_review", reason)}
    if bad:
        result.problems.append(f"{how}: not all {reason}: {bad}")
    result.notes.append(f"{how}: {dict(reasons)}")
    _check_says_broken(h, result, how)
    said = "is not the file the registry recorded" if reason == "model_unverified" else ""
    _admin_says_broken(h, result, how, number, saying=said)
    return part


def _classified_again(h: Harness, result: Result, number: int, restored: float) -> None:
    """Ads posted once the recorded file is back are decided by the model again (published,
    or reviewed for another reason than a refused model) within a few seconds; the admin's
    warning is gone. ``recover_s``: from the file put back until they are decided."""
    after = Tally()
    h.sellers.burst(4, after, f"{result.fault}-restored", 2)
    result.recover_s = h.wait_decided(after.ids, restored, h.args.deadline)
    result.ids += after.ids
    reasons = _reasons(h, after.ids)
    bad = {k: n for k, n in reasons.items() if k[0] not in FINAL or k[1] in REFUSED}
    if bad:
        result.problems.append(f"not classified again after the restore: {dict(reasons)}")
    elif result.recover_s is None or result.recover_s > CLASSIFIED_AGAIN_WITHIN_S:
        result.problems.append(
            f"classified again {result.recover_s} s after the restore, "
            f"not within {CLASSIFIED_AGAIN_WITHIN_S} s"
        )
    result.notes.append(f"restored: {dict(reasons)}")
    _admin_says_broken(h, result, "restored", number, expect=False)


def _reasons(h: Harness, ids: list[int]) -> Counter:
    """How many of the ads are in each (status, review reason)."""
    from ads.models import Ad

    return Counter(h.db(lambda: list(
        Ad.objects.filter(pk__in=ids).values_list("status", "review_reason")
    )))  # fmt: skip


def _check_says_broken(h: Harness, result: Result, how: str) -> None:
    check = subprocess.run(
        [PYTHON, "manage.py", "check"], cwd=ROOT, env=h.env, capture_output=True, text=True
    )
    said = "classifier.E001" in check.stdout + check.stderr
    if not said or check.returncode == 0:
        result.problems.append(f"{how}: manage.py check said nothing (exit {check.returncode})")
    else:
        result.notes.append(f"{how}: manage.py check: classifier.E001, exit {check.returncode}")


def _admin_says_broken(
    h: Harness, result: Result, how: str, number: int, expect=True, saying=""
) -> None:
    """Whether the admin's index, review queue and registry warn that the active model vN
    cannot be loaded (and say ``saying``), as ``expect``s."""
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
        warns = f"model v{number} cannot" in response.text and saying in response.text
        if response.status_code != 200 or warns != expect:
            said = ("no warning " + saying).strip() if expect else "a warning still"
            result.problems.append(f"{how}: {page} ({response.status_code}) shows {said}")
            return
    if expect:
        said = f", saying {saying!r}" if saying else ""
        result.notes.append(f"{how}: the admin warns on its index, review queue and registry{said}")
