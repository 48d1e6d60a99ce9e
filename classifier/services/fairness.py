"""Whether versions' figures on the evaluation set can be compared: how many of the
evaluation photos each version trained on.

Training from the database never uses the evaluation subset, but a version trained on a
folder (the shipped v1, built from the whole shared dataset) may have seen the very photos
it is measured on once that dataset is imported, and its figures then flatter it. A version
records the photos it trained on in ``ModelVersion.training_photos`` (``models.photo_keys``
of each stored photo, validation split included); an empty list means unknown, never none.
Counted when asked, against today's evaluation set: the admin and auto-promotion apply the
same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..ml.dataset import scan_class_folders
from ..models import ModelVersion, TrainingImage, photo_keys
from . import ImportReport, read_folder, shipped, trainable_images


@dataclass(frozen=True)
class Seen:
    """How many of the ``total`` evaluation photos of its classes version ``number``
    trained on; ``count`` is None when it did not record its training photos."""

    number: int
    count: int | None
    total: int

    @property
    def fair(self) -> bool:
        return self.count == 0

    def __str__(self) -> str:
        if self.count is None:
            return f"trained on an unknown number of the {self.total} evaluation photos"
        return f"trained on {self.count} of the {self.total} evaluation photos"

    @property
    def reason(self) -> str:
        """Why its figures flatter it; empty when they do not."""
        if self.count is None:
            return f"which photos v{self.number} trained on is unknown"
        if self.count:
            return f"v{self.number} trained on {self.count} of these {self.total} photos"
        return ""


def seen_in_training(version: ModelVersion) -> Seen:
    """Count the photos of the evaluation set ``version`` is measured on (the held-out
    photos of its classes, as ``services.measure_on_evaluation_set`` reads them: the
    database's and the shipped ones) that it trained on."""
    evaluated = trainable_images().filter(
        subset=TrainingImage.Subset.EVALUATION, category__slug__in=version.classes
    )
    keys = set(photo_keys(evaluated.values_list("sha256", flat=True)))
    keys |= set(photo_keys(shipped.evaluation_sha256(version.input_size, set(version.classes))))
    if not version.training_photos:
        return Seen(version.number, None, len(keys))
    return Seen(version.number, len(keys & set(version.training_photos)), len(keys))


def unfairness(seen: list[Seen]) -> str:
    """Empty when none of the versions trained on the evaluation photos (known to be
    none); otherwise why comparing their figures there is not fair."""
    reasons = [each.reason for each in seen if not each.fair]
    if not reasons:
        return ""
    kind = "comparison" if len(seen) > 1 else "measure"
    return f"not a fair {kind}: {'; '.join(reasons)}"


def folder_photo_keys(directory: Path) -> list[str]:
    """``training_photos`` for a version trained on a folder-per-class dataset: the keys of
    its photos in the form ``import_images`` stores them (an import of the same folder
    gives the same sha256s). Files the import refuses are left out: they never become
    evaluation photos."""
    photos = read_folder(scan_class_folders(directory), set(), ImportReport())
    return photo_keys(candidate.photo.sha256 for candidate in photos)
