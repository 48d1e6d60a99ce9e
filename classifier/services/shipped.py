"""The shipped model's knowledge, which travels with it: the backbone features (not the
photos) of the photos the default model was trained and evaluated on, with their labels,
content hashes, near-copy hashes and side of the split (``default_model/vN/features.npz``,
``CLASSIFIER_SHIPPED_FEATURES``).

No install has those photos. Without their features a retrain would learn the shipped
categories from whatever the database holds (on a fresh install: nothing) and forget the
rest. So every retrain on the same backbone trains on them as well, every evaluation
measures the shipped categories on the shipped evaluation photos as well, and an import of
one of those photos keeps its side of the split and reuses its features. A photo in the
database always wins over its shipped copy: moderators may have relabelled it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from ..ml import features as ml_features
from ..models import TrainingImage


@dataclass(frozen=True)
class ShippedPhotos:
    backbone: str  # the backbone id the features are of
    input_size: int  # the pixels they were computed at (in the id too)
    classes: list[str]
    features: np.ndarray  # (n, 2, F) float16: each photo and its mirror image
    labels: np.ndarray  # (n,) index into classes
    sha256: list[str]  # of each photo's stored form, as an import stores it
    phashes: list[int]
    evaluation: np.ndarray  # (n,) bool: held out for evaluation

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def slugs(self) -> list[str]:
        return [self.classes[label] for label in self.labels]

    @classmethod
    def of_folder(cls, every, input_size: int) -> ShippedPhotos:
        """A folder's photos (``datasets.folder_set``: all of them, with ``held_out``) as
        the shipped model's, for the default backbone at ``input_size``."""
        return cls(
            ml_features.backbone_id(input_size),
            input_size,
            every.classes,
            every.features,
            every.labels,
            every.sha256,
            every.hashes,
            every.held_out,
        )

    def only(self, keep: np.ndarray) -> ShippedPhotos:
        indices = np.flatnonzero(keep)
        return ShippedPhotos(
            self.backbone,
            self.input_size,
            self.classes,
            self.features[indices],
            self.labels[indices],
            [self.sha256[i] for i in indices],
            [self.phashes[i] for i in indices],
            self.evaluation[indices],
        )


def write(path: Path, photos: ShippedPhotos) -> None:
    """Store ``photos`` compactly: int8 features with a scale per vector, compressed."""
    values, scales = ml_features.quantize(photos.features)
    np.savez_compressed(
        path,
        backbone=np.array(photos.backbone),
        input_size=np.array(photos.input_size),
        classes=np.array(photos.classes),
        features=values,
        scales=scales,
        labels=np.asarray(photos.labels, dtype=np.int16),
        sha256=np.array(photos.sha256),
        phashes=np.array(photos.phashes, dtype=np.uint64),
        evaluation=np.asarray(photos.evaluation, dtype=bool),
    )


def read(path: Path) -> ShippedPhotos:
    with np.load(path, allow_pickle=False) as data:
        return ShippedPhotos(
            str(data["backbone"]),
            int(data["input_size"]),
            [str(name) for name in data["classes"]],
            ml_features.dequantize(data["features"], data["scales"]),
            data["labels"].astype(int),
            [str(sha) for sha in data["sha256"]],
            [int(h) for h in data["phashes"]],
            data["evaluation"].astype(bool),
        )


def features_path() -> Path | None:
    """Where the shipped features are (``CLASSIFIER_SHIPPED_FEATURES``), or None: off."""
    from ..bootstrap import DEFAULT_MODEL_DIR

    chosen = settings.CLASSIFIER_SHIPPED_FEATURES.strip()
    if not chosen:
        return DEFAULT_MODEL_DIR / "features.npz"
    return None if chosen.lower() == "off" else Path(chosen)


_cache: dict[tuple[str, float], ShippedPhotos] = {}


def shipped_photos() -> ShippedPhotos | None:
    """The shipped photos (read once per process and file), or None when there are none."""
    path = features_path()
    if path is None or not path.exists():
        return None
    key = (str(path), path.stat().st_mtime)
    if key not in _cache:
        _cache.clear()
        _cache[key] = read(path)
    return _cache[key]


def usable(
    size: int, slugs: set[str], subset: str, known: set[str] | None = None
) -> ShippedPhotos | None:
    """The shipped photos of ``subset`` (training or evaluation) that count for a version at
    ``size`` pixels over categories ``slugs``: of the same backbone id, of those categories,
    and not in the database (where its copy, and label, rule; ``known``: the database's
    sha256s, when the caller has them already)."""
    photos, keep = _counted(size, slugs, subset, known)
    return photos.only(keep) if photos is not None and keep.any() else None


def evaluation_sha256(size: int, slugs: set[str]) -> list[str]:
    """The sha256s of the shipped evaluation photos a version at ``size`` pixels over
    ``slugs`` is measured on (those ``usable`` gives), without copying their features."""
    photos, keep = _counted(size, slugs, TrainingImage.Subset.EVALUATION, None)
    if photos is None:
        return []
    return [sha for sha, kept in zip(photos.sha256, keep, strict=True) if kept]


def _counted(size: int, slugs: set[str], subset: str, known: set[str] | None):
    """(the shipped photos, which of them count: see ``usable``), or (None, None)."""
    from ..ml.features import backbone_id

    photos = shipped_photos()
    if photos is None or photos.backbone != backbone_id(size):
        return None, None
    if known is None:
        known = set(TrainingImage.objects.values_list("sha256", flat=True))
    keep = np.array(
        [
            slug in slugs and sha not in known
            for slug, sha in zip(photos.slugs, photos.sha256, strict=True)
        ],
        dtype=bool,
    )
    keep &= photos.evaluation == (subset == TrainingImage.Subset.EVALUATION)
    return photos, keep


# The shipped photos' sides, worked out once per set read: every moderator's decision that
# labels photos asks (some 3,000 pairs, ~5 ms of a decision's ~20 ms of CPU when made anew).
_sides: list = [None, ()]


def known_sides() -> tuple[tuple[str, str], ...]:
    """Each shipped photo as (pHash hex, subset): imports place its copies on its side."""
    photos = shipped_photos()
    if photos is None:
        return ()
    if _sides[0] is not photos:  # the object kept, so its id cannot be another set's
        sides = (TrainingImage.Subset.TRAIN, TrainingImage.Subset.EVALUATION)
        _sides[:] = [
            photos,
            tuple(
                (f"{phash:016x}", sides[int(held_out)])
                for phash, held_out in zip(photos.phashes, photos.evaluation, strict=True)
            ),
        ]
    return _sides[1]


def counts(slugs: set[str]) -> dict[tuple[str, str], int]:
    """``{(slug, subset): photos}`` the shipped set adds for ``slugs``, at the input size
    its features were computed at (the default model's: what the train button uses)."""
    photos = shipped_photos()
    if photos is None:
        return {}
    known = set(TrainingImage.objects.values_list("sha256", flat=True))  # read once for both
    found: dict[tuple[str, str], int] = {}
    for subset in (TrainingImage.Subset.TRAIN, TrainingImage.Subset.EVALUATION):
        counted = usable(photos.input_size, slugs, subset, known)
        for slug in counted.slugs if counted is not None else []:
            found[slug, subset] = found.get((slug, subset), 0) + 1
    return found


def reuse_features(images: list[TrainingImage]) -> int:
    """Keep, for each of ``images`` that is a shipped photo, its shipped features (no
    second feature pass); returns how many."""
    from ..models import ImageFeatures

    photos = shipped_photos()
    if photos is None:
        return 0
    index = {sha: i for i, sha in enumerate(photos.sha256)}
    rows = [
        ImageFeatures(
            image=image,
            backbone=photos.backbone,
            data=ml_features.to_bytes(photos.features[index[image.sha256]]),
        )
        for image in images
        if image.sha256 in index
    ]
    ImageFeatures.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def summary() -> str:
    """What a retrain adds, in words ("" when nothing)."""
    photos = shipped_photos()
    if photos is None:
        return ""
    held_out = int(photos.evaluation.sum())
    return (
        f"{len(photos) - held_out:,} training and {held_out:,} evaluation photos "
        f"({', '.join(photos.classes)})"
    )


def sources_said(sources: dict | None, version) -> str:
    """``{"shipped": n, "database": m}`` in words, for the registry."""
    if not sources:
        return "—"
    said = f"{sources['shipped']:,} shipped, {sources['database']:,} from this database"
    if not version.with_shipped_features:
        said += " (the shipped photos left out by the admin)"
    return said
