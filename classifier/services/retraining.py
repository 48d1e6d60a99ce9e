"""Retraining from moderators' labels: training a candidate on the training queue, measuring
it against the active version on the evaluation set, auto-promotion, and checking the
training labels. Promotion and rollback (the review queue is re-scored by the new active
version) are in ``classifier.services.promotion``, and imported here too.

Admin views, commands and tasks call these. Trainings run one at a time (the database
allows one version in "training"; label checks are refused while one trains, and the
other way round), outside any transaction: progress is written by conditional updates, so
a cancelled run notices at its next report and stops. A run whose worker dies is never
retried: the worker marks it failed when its process dies (``training_process_died``); a
second delivery of its task, or the periodic sweep, does when the whole worker died.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ads.models import Category

from ..ml.split import near_duplicate_groups
from ..models import LabelCheck, ModelVersion, ModelVersionEvent, TrainingImage
from . import (
    ClassifierError,
    TrainingCancelled,
    default_training_config,
    describe_training,
    labelled_set,
    measure_on_evaluation_set,
    require_enough_photos,
    start_version,
    train_version,
    trainable_images,
    training_data,
)
from .fairness import seen_in_training, unfairness
from .promotion import (  # noqa: F401  (promotion's API, long imported from here)
    PROMOTE,
    PromotionRefused,
    promote,
    promotion_guard,
    require,
    roll_back,
    switch,
)

logger = logging.getLogger(__name__)

TRAIN = "classifier.train_modelversion"
Action = ModelVersionEvent.Action
Status = ModelVersion.Status


# --- Training a candidate on the training queue -----------------------------------


def request_training(user, with_shipped: bool = True) -> ModelVersion:
    """Register a version in status "training" and, once committed, send it to the
    training queue; ``ClassifierError`` when the training worker is busy. Without
    ``with_shipped``, it trains on the database's photos alone (recorded on it)."""
    require(user, TRAIN)
    _refuse_while_checking_labels()
    require_enough_photos(with_shipped)
    # The input size is set by training: the web process must not import TensorFlow.
    version = start_version(requested_by=user, with_shipped=with_shipped)
    transaction.on_commit(lambda: _send_training(version))
    return version


def _send_training(version: ModelVersion) -> None:
    from kombu.exceptions import OperationalError

    from ..tasks import train_version as train_version_task

    try:
        train_version_task.delay(version.pk)
    except OperationalError as error:
        version.mark_failed(f"The broker could not be reached ({error}); try again.")


def run_training(version_id: int, config=None) -> str:
    """The training task: train version ``version_id``, measure it, maybe promote it."""
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return f"skipped: no version {version_id}"
    if not version.claim_training():
        return _not_claimed(version)
    config = config or default_training_config()
    report = _reporter(version)
    try:
        report({"stage": "reading the training images"})
        data, as_of = training_data(config.input_size, with_shipped=version.with_shipped_features)
        train_version(version, data, as_of, config, _progress_callbacks(report))
    except TrainingCancelled:
        return f"v{version.number} cancelled"
    except Exception as error:
        # Recorded on the version for the admin, logged with its traceback; the active
        # version keeps serving.
        version.mark_failed(f"{type(error).__name__}: {error}")
        logger.exception("v%s: training failed", version.number)
        return f"v{version.number} failed: {error}"
    after_training(version)
    return f"v{version.number} trained ({version.get_status_display().lower()})"


def _reporter(version: ModelVersion):
    def report(progress: dict) -> None:
        if not version.record_progress(progress):
            raise TrainingCancelled(f"v{version.number} is no longer training")

    return report


def _progress_callbacks(report, stage: str = "training"):
    from ..ml.progress import ProgressReport

    return [ProgressReport(report, stages=(stage,))]


def _not_claimed(version: ModelVersion) -> str:
    """A second delivery: the first one finished, was cancelled, or its worker died."""
    if version.status != Status.TRAINING:
        return f"skipped: v{version.number} is {version.status}"
    if version.heartbeat_at and version.heartbeat_at > _stale_cutoff():
        return f"skipped: v{version.number} is training elsewhere"
    version.mark_failed(
        "The training worker stopped during training (killed or restarted); start a new training."
    )
    return f"v{version.number} failed: its first run died"


def after_training(version: ModelVersion) -> None:
    """Measure the candidate and the active version on the same evaluation set, then
    promote the candidate if it is clearly better and auto-promotion is on."""
    active = ModelVersion.objects.active()
    _measure(version)
    if active is not None and not _still_measured(active, version):
        _measure(active)
    auto_promote(version, active)


def _measure(version: ModelVersion) -> None:
    try:
        measure_on_evaluation_set(version)
    except ClassifierError as error:
        logger.error("v%s could not be evaluated: %s", version.number, error)
        ModelVersion.objects.filter(pk=version.pk).update(evaluation={"error": str(error)})
        version.evaluation = {"error": str(error)}


def _still_measured(active: ModelVersion, candidate: ModelVersion) -> bool:
    """The active version's stored figures are those of the photos and labels the
    candidate was just measured on, at its present threshold: measuring again would give
    the same figures (a deterministic model), so a retraining skips it."""
    mine, theirs = active.evaluation or {}, candidate.evaluation or {}
    return (
        "accuracy" in mine
        and mine.get("fingerprint") is not None
        and mine.get("fingerprint") == theirs.get("fingerprint")
        and mine.get("classes") == active.classes == candidate.classes
        and mine.get("threshold") == active.threshold
        # Measured before answers were kept per photo: the guard could not compare it.
        and "answers" in mine
    )


def auto_promote(candidate: ModelVersion, active: ModelVersion | None):
    """Promote ``candidate`` when CLASSIFIER_AUTO_PROMOTE_MARGIN is set and its accuracy on
    the evaluation set beats the active version's by that margin; the verdict is kept in
    its evaluation either way. Never when either version trained on evaluation photos (or
    did not record what it trained on): its figures there would flatter it. Returns the
    event, or None."""
    margin = settings.CLASSIFIER_AUTO_PROMOTE_MARGIN
    if margin is None or candidate.status != Status.CANDIDATE:
        return None
    better, verdict = _compare(candidate, active, margin)
    candidate.evaluation = candidate.evaluation | {"auto_promotion": verdict}
    ModelVersion.objects.filter(pk=candidate.pk).update(evaluation=candidate.evaluation)
    if not better:
        return None
    return switch(candidate, None, Action.AUTO_PROMOTE, note=verdict)


def _compare(
    candidate: ModelVersion, active: ModelVersion | None, margin: float
) -> tuple[bool, str]:
    if active is None:
        return False, "not promoted: there is no active version to compare with"
    mine, theirs = candidate.evaluation, active.evaluation
    if not mine.get("n") or "accuracy" not in theirs:
        return False, f"not promoted: no evaluation figures to compare with v{active.number}"
    if mine.get("fingerprint") != theirs.get("fingerprint"):
        return False, f"not promoted: v{active.number} was measured on other photos"
    said = (
        f"accuracy {mine['accuracy']:.2%} against {theirs['accuracy']:.2%} for "
        f"v{active.number} on {mine['n']} evaluation photos (margin {margin:.2%})"
    )
    unfair = unfairness([seen_in_training(candidate), seen_in_training(active)])
    if unfair:
        return False, f"not promoted, {unfair} — {said}"
    refused = promotion_guard(candidate, active)
    if refused:
        return False, f"not promoted: {refused} — {said}"
    # A hair of tolerance: the figures went through JSON and floating point.
    if mine["accuracy"] >= theirs["accuracy"] + margin - 1e-9:
        return True, f"promoted automatically: {said}"
    return False, f"not promoted: {said}"


def train_in_process(
    data_dir=None, config=None, callbacks=None, activate=False, user=None, with_shipped=True
):
    """``manage.py train``: train here on the training subset (or ``data_dir``), reporting
    progress like the queue does (the registry shows it; the sweep sees it alive), then
    measure; ``activate`` promotes. No data, no version: the data is read first."""
    config = config or default_training_config()
    with_shipped = with_shipped and data_dir is None
    data, as_of = training_data(config.input_size, data_dir, with_shipped=with_shipped)
    version = start_version(config.input_size, requested_by=user, with_shipped=with_shipped)
    version.claim_training()
    progress = _progress_callbacks(_reporter(version))
    train_version(version, data, as_of, config, [*(callbacks or []), *progress])
    after_training(version)
    version.refresh_from_db()
    if activate and version.status == Status.CANDIDATE:
        promote(version, user, note="manage.py train --activate")
        version.refresh_from_db()
    return version


def cancel_training(version: ModelVersion, user) -> None:
    """Stop a training: the version fails now; its run stops at its next progress report."""
    require(user, TRAIN)
    if not version.mark_failed(f"Cancelled by {user} at {timezone.now():%Y-%m-%d %H:%M}."):
        raise ClassifierError(f"v{version.number} is not training")


def scheduled_training() -> str:
    """The optional periodic retraining: only when labels came in since the last one."""
    last = ModelVersion.objects.filter(data_as_of__isnull=False).order_by("-data_as_of").first()
    if last is not None and not trainable_images().filter(labelled_at__gt=last.data_as_of).exists():
        return f"skipped: no new labels since v{last.number} was trained"
    try:
        version = request_training(None)
    except ClassifierError as error:
        return f"skipped: {error}"
    return f"v{version.number} queued"


def training_process_died(task_name: str, object_id: int, error: str) -> bool:
    """A training or label check whose process died: failed at once, with the reason.
    False for other tasks, or when it had already ended (finished, cancelled)."""
    message = f"Its worker process died ({error}); start it again."
    if task_name == "classifier.tasks.train_version":
        version = ModelVersion.objects.filter(pk=object_id).first()
        failed = version is not None and version.mark_failed(message)
    elif task_name == "classifier.tasks.find_label_errors":
        check = LabelCheck.objects.filter(pk=object_id).first()
        failed = check is not None and check.finish(LabelCheck.Status.FAILED, error=message)
    else:
        return False
    if failed:
        logger.error("%s(%s): %s", task_name, object_id, message)
    return failed


def _stale_cutoff():
    return timezone.now() - timedelta(seconds=settings.CLASSIFIER_TRAINING_STALE_AFTER)


def fail_stalled_training() -> int:
    """Mark failed the trainings and label checks with no sign of life for
    CLASSIFIER_TRAINING_STALE_AFTER seconds (worker killed, or no training worker)."""
    cutoff, failed = _stale_cutoff(), 0
    for version in ModelVersion.objects.filter(status=Status.TRAINING):
        if (version.heartbeat_at or version.created_at) < cutoff:
            failed += version.mark_failed(_stalled_message(version.started_at))
    for check in LabelCheck.objects.filter(status=LabelCheck.Status.RUNNING):
        if (check.heartbeat_at or check.created_at) < cutoff:
            failed += check.finish(
                LabelCheck.Status.FAILED, error=_stalled_message(check.started_at)
            )
    return failed


def _stalled_message(started_at) -> str:
    minutes = settings.CLASSIFIER_TRAINING_STALE_AFTER // 60
    if started_at is None:
        return (
            f"No training worker took it within {minutes} minutes: is a worker running on "
            f"the {settings.CLASSIFIER_TRAINING_QUEUE!r} queue?"
        )
    return f"No sign of life for {minutes} minutes: its worker was killed or restarted."


# --- Suspected label errors --------------------------------------------------------


def _refuse_while_checking_labels() -> None:
    check = LabelCheck.objects.filter(status=LabelCheck.Status.RUNNING).first()
    if check is not None:
        raise ClassifierError(f"{check} is using the training worker; wait for it to end")


def request_label_check(user, folds: int = 3, epochs: int = 0) -> LabelCheck:
    """Queue a search for suspected label errors on the training queue."""
    require(user, TRAIN)
    check = _start_label_check(user, folds, epochs)
    transaction.on_commit(lambda: _send_label_check(check))
    return check


def _start_label_check(user, folds: int, epochs: int) -> LabelCheck:
    if folds < 2:
        raise ClassifierError("a label check needs at least 2 folds")
    _refuse_while_checking_labels()
    training = ModelVersion.objects.filter(status=Status.TRAINING).first()
    if training is not None:
        raise ClassifierError(f"{describe_training(training)}; wait for it to end")
    return LabelCheck.objects.create(folds=folds, epochs=epochs, requested_by=user)


def _send_label_check(check: LabelCheck) -> None:
    from kombu.exceptions import OperationalError

    from ..tasks import find_label_errors

    try:
        find_label_errors.delay(check.pk)
    except OperationalError as error:
        check.finish(LabelCheck.Status.FAILED, error=f"The broker could not be reached ({error})")


def find_label_errors(user=None, folds: int = 3, epochs: int = 0, config=None) -> LabelCheck:
    """``manage.py find_label_errors``: a label check run in this process."""
    check = _start_label_check(user, folds, epochs)
    run_label_check(check.pk, config)
    check.refresh_from_db()
    return check


def run_label_check(check_id: int, config=None) -> str:
    """The label check task: out-of-fold predictions, confident learning, suspects stored."""
    from dataclasses import replace

    check = LabelCheck.objects.filter(pk=check_id).first()
    if check is None or not check.claim():
        return f"skipped: label check {check_id} is not waiting to run"
    config = config or default_training_config()
    if check.epochs:
        config = replace(config, epochs=check.epochs)
    try:
        flagged, checked, thresholds = _check_labels(check, config)
    except TrainingCancelled:
        return f"{check} cancelled"
    except Exception as error:
        check.finish(LabelCheck.Status.FAILED, error=f"{type(error).__name__}: {error}")
        logger.exception("%s failed", check)
        return f"{check} failed: {error}"
    check.finish(LabelCheck.Status.DONE, checked=checked, flagged=flagged, thresholds=thresholds)
    return f"{check}: {flagged} suspected among {checked}"


def _check_labels(check: LabelCheck, config) -> tuple[int, int, dict]:
    from ..ml.label_errors import confident_learning, out_of_fold_probabilities

    def report(progress: dict) -> None:
        if not check.record_progress(progress):
            raise TrainingCancelled(f"{check} is no longer running")

    report({"stage": "reading the training images"})
    data = labelled_set(config.input_size)
    probabilities = out_of_fold_probabilities(
        data.features,
        data.labels,
        data.classes,
        near_duplicate_groups(data.hashes),
        config,
        folds=check.folds,
        callbacks=_progress_callbacks(report, stage=f"{check.folds} folds"),
    )
    suspects = confident_learning(probabilities, data.labels)
    _store_suspects(data, suspects)
    thresholds = dict(zip(data.classes, map(float, suspects.thresholds), strict=True))
    return len(suspects.indices), len(data.labels), thresholds


def _store_suspects(data, suspects) -> None:
    """Replace the previous list. A photo relabelled since it was read is not flagged: its
    suspicion was about the old label."""
    categories = {c.slug: c for c in Category.objects.filter(slug__in=data.classes)}
    now = timezone.now()
    with transaction.atomic():
        TrainingImage.objects.filter(suspected_category__isnull=False).update(
            suspected_category=None,
            suspected_confidence=None,
            suspected_margin=None,
            suspected_at=None,
        )
        for index, suspected, confidence, margin in zip(
            suspects.indices, suspects.suspected, suspects.confidence, suspects.margin, strict=True
        ):
            TrainingImage.objects.filter(
                pk=data.ids[index], category__slug=data.classes[data.labels[index]]
            ).update(
                suspected_category=categories[data.classes[suspected]],
                suspected_confidence=float(confidence),
                suspected_margin=float(margin),
                suspected_at=now,
            )
