"""Training a version: its data, the run, and the version it leaves behind."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..ml.dataset import scan_class_folders
from ..models import ModelVersion, photo_keys
from .artifacts import store
from .backbones import read_backbone, served_backbone
from .datasets import (
    LabelledSet,
    folder_set,
    labelled_set,
    require_enough_photos,
)
from .errors import ClassifierError, TrainingCancelled
from .importing import categories_for


def default_training_config():
    from ..ml.train import TrainingConfig

    return TrainingConfig(
        target_risk=settings.CLASSIFIER_TARGET_RISK,
        none_of_these_rate=settings.CLASSIFIER_NONE_OF_THESE_RATE,
    )


def train_and_package(
    data: LabelledSet, config, log_dir: Path | None, callbacks=None, backbone: bytes | None = None
):
    """Train the heads on ``data`` and package the served model: heads after ``backbone``
    (the shared int8 backbone's bytes) when given, else one whole int8 model; returns
    (TrainingResult, Package)."""
    from ..ml.split import near_duplicate_groups
    from ..ml.train import package, train

    groups = near_duplicate_groups(data.hashes)
    result = train(
        data.features,
        data.labels,
        data.classes,
        groups,
        config,
        log_dir=log_dir,
        callbacks=callbacks,
        others=data.others,
    )
    return result, package(
        result,
        lambda indices: data.pixels(indices, config.input_size),
        backbone=backbone,
        readable=data.readable,
    )


def training_data(
    size: int, data_dir: Path | None = None, with_shipped: bool = True
) -> tuple[LabelledSet, datetime]:
    """The training subset of the active categories, with the shipped photos' features
    unless told otherwise (``ClassifierError`` when a category has too few photos), or a
    folder's photos; and when it was read."""
    as_of = timezone.now()
    if data_dir is None:
        require_enough_photos(with_shipped)
        return labelled_set(size, with_shipped), as_of
    categories_for(sorted(scan_class_folders(data_dir)), create=False)
    return folder_set(data_dir, size), as_of


def start_version(input_size: int = 0, requested_by=None, with_shipped=True) -> ModelVersion:
    """A new version in status "training" (``retraining`` trains it). One at a time: the
    database enforces it."""
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                number=ModelVersion.next_number(),
                input_size=input_size,
                requested_by=requested_by,
                with_shipped_features=with_shipped,
            )
    except IntegrityError:
        running = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).first()
        if running is None:
            raise ClassifierError("another version was registered at the same moment") from None
        raise ClassifierError(f"{describe_training(running)}; wait for it to end") from None


def describe_training(version: ModelVersion) -> str:
    progress = version.progress
    if progress.get("epochs"):
        where = f"{progress.get('stage', 'training')}, epoch {progress['epoch']} of "
        return f"v{version.number} is training ({where}{progress['epochs']})"
    if version.started_at is None:
        return f"v{version.number} is waiting for the training worker"
    return f"v{version.number} is training ({progress.get('stage', 'starting')})"


def train_version(
    version: ModelVersion, data: LabelledSet, data_as_of: datetime, config, callbacks=None
) -> None:
    """Train ``version`` (status "training") on ``data``; a candidate when it succeeds."""
    try:
        log_dir = Path(settings.CLASSIFIER_TENSORBOARD_DIR) / f"v{version.number}"
        backbone = served_backbone(data, config)
        result, packaged = train_and_package(
            data, config, log_dir, callbacks, backbone=read_backbone(backbone)
        )
        _save_version(version, result, packaged, data, data_as_of, backbone)
    except TrainingCancelled:
        raise
    except Exception as error:
        version.mark_failed(f"{type(error).__name__}: {error}")
        raise


def _save_version(
    version: ModelVersion, result, packaged, data: LabelledSet, as_of, backbone
) -> None:
    store(version, "artifact", "model.keras", packaged.keras_bytes)
    store(version, "serving_artifact", "heads.npz", packaged.serving_bytes)
    values = {
        "served_backbone": backbone,
        "classes": result.classes,
        "input_size": result.metrics["input_size"],
        "backbone": result.metrics["backbone"],
        "metrics": packaged.metrics
        | {
            "unreadable_images": len(data.unreadable),
            # Where the training photos came from (the registry shows it).
            "trained_on_sources": {
                "shipped": data.from_shipped,
                "database": int(len(data.labels)) - data.from_shipped,
            },
        },
        "history": result.history,
        "threshold": packaged.metrics["threshold"],
        "trained_on": int(len(data.labels)),
        # Validation split included.
        "training_photos": photo_keys(data.sha256),
        "artifact": version.artifact.name,
        "serving_artifact": version.serving_artifact.name,
        "artifact_sha256": version.artifact_sha256,
        "serving_artifact_sha256": version.serving_artifact_sha256,
        "data_as_of": as_of,
        "finished_at": timezone.now(),
        "status": ModelVersion.Status.CANDIDATE,
    }
    # Conditional: an admin may have cancelled the run while it trained.
    if not ModelVersion.objects.filter(pk=version.pk, status=version.Status.TRAINING).update(
        **values
    ):
        version.artifact.delete(save=False)
        version.serving_artifact.delete(save=False)
        raise TrainingCancelled(f"v{version.number} was cancelled while it trained")
    version.refresh_from_db()
