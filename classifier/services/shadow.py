"""Shadow mode: a candidate answers on live traffic beside the active version, and routes
nothing.

An admin puts one candidate in shadow (the database allows one at a time, and only a
candidate). The inference workers (``moderation.pipeline``) then score every new ad photo
with it too, once the ad is routed by the active version: a version on the active one's
served backbone costs only its heads, run on the features the active version's predictor
has just computed; another needs its own backbone run. Its answers go to tables of their
own (``ShadowPrediction``, ``ShadowRouting``) that routing, the sellers' pages and API, the
quick check and the review queue never read. Leaving shadow is a click; a change of the
active version (promoting the version in shadow, or any other) ends it, since its figures
are against the version that was active. Each start and end is a registry event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from ads.models import Ad

from ..ml.stats import Counts, counts, pair
from ..models import (
    SERVING_FIELDS,
    ModelVersion,
    ModelVersionEvent,
    Prediction,
    ShadowPrediction,
    ShadowRouting,
    TrainingImage,
)
from . import ClassifierError, classify_features, classify_images, comparing
from .comparing import Row
from .serving import Classification, load_heads, load_predictor

PROMOTE = "classifier.promote_modelversion"
Action = ModelVersionEvent.Action
Status = ModelVersion.Status
# What scoring reads of the version in shadow (as ``ModelVersionQuerySet.serving``).
FIELDS = (*SERVING_FIELDS, "in_shadow", "shadow_since")


class ShadowError(ClassifierError):
    """A version that cannot enter or leave shadow; the message is meant for the admin."""


def in_shadow() -> ModelVersion | None:
    """The version in shadow, with only what scoring reads; None when there is none."""
    return ModelVersion.objects.filter(in_shadow=True).only(*FIELDS).first()


def shares_backbone(version: ModelVersion, active: ModelVersion) -> bool:
    """Whether ``version`` can answer from ``active``'s backbone features (heads only)."""
    return (
        version.served_backbone_id is not None
        and version.served_backbone_id == active.served_backbone_id
        and version.input_size == active.input_size
    )


def cost_said(version: ModelVersion, active: ModelVersion) -> str:
    if shares_backbone(version, active):
        return f"on v{active.number}'s served backbone: its heads only, per photo"
    return f"not on v{active.number}'s served backbone: a second backbone run per photo"


# --- Entering and leaving ------------------------------------------------------------


def _require(user) -> None:
    if user is not None and not user.has_perm(PROMOTE):
        raise PermissionDenied(f"{user} may not put versions in shadow ({PROMOTE})")


def enter(version: ModelVersion, user) -> ModelVersionEvent:
    """Put a candidate in shadow: the workers score every new photo with it from now on."""
    _require(user)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        active = ModelVersion.objects.active()
        _check_can_enter(locked, active)
        locked.in_shadow, locked.shadow_since = True, timezone.now()
        try:
            with transaction.atomic():
                locked.save(update_fields=["in_shadow", "shadow_since"])
        except IntegrityError:  # the one-in-shadow constraint: another one, meanwhile
            raise ShadowError(
                f"v{locked.number} was not put in shadow: another version was put in shadow "
                "meanwhile (one at a time)."
            ) from None
        event = ModelVersionEvent.objects.create(
            version=locked,
            action=Action.SHADOW_START,
            user=user,
            note=f"beside v{active.number}, {cost_said(locked, active)}",
        )
    version.refresh_from_db()
    return event


def _check_can_enter(version: ModelVersion, active: ModelVersion | None) -> None:
    if version.in_shadow:
        raise ShadowError(f"v{version.number} is in shadow already.")
    if version.status != Status.CANDIDATE:
        raise ShadowError(
            f"v{version.number} is {version.get_status_display().lower()}: only a candidate "
            "can be put in shadow."
        )
    current = ModelVersion.objects.filter(in_shadow=True).first()
    if current is not None:
        raise ShadowError(
            f"v{current.number} is in shadow: take it out of shadow first (one version in "
            "shadow at a time)."
        )
    if active is None:
        raise ShadowError("There is no active version for it to run beside.")
    # Refused now, with the reason, rather than failing on every photo in the workers.
    try:
        load_heads(version) if shares_backbone(version, active) else load_predictor(version)
    except ClassifierError as error:
        raise ShadowError(f"v{version.number} cannot be put in shadow: {error}.") from error


def leave(version: ModelVersion, user, note: str = "") -> ModelVersionEvent:
    """Take a version out of shadow; its figures stay on its page."""
    _require(user)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if not locked.in_shadow:
            raise ShadowError(f"v{locked.number} is not in shadow.")
        event = _end(locked, user, note)
    version.refresh_from_db()
    return event


def end_on_switch(new_active: ModelVersion, user) -> ModelVersionEvent | None:
    """Inside the transaction that makes ``new_active`` the active version: the version in
    shadow leaves it (its figures were against the version active until now)."""
    current = ModelVersion.objects.select_for_update().filter(in_shadow=True).first()
    if current is None:
        return None
    if current.pk == new_active.pk:
        note = "promoted from shadow"
    else:
        note = f"v{new_active.number} became active: put it in shadow again to compare with it"
    return _end(current, user, note)


def _end(version: ModelVersion, user, note: str) -> ModelVersionEvent:
    version.in_shadow = False
    version.save(update_fields=["in_shadow"])
    return ModelVersionEvent.objects.create(
        version=version, action=Action.SHADOW_END, user=user, note=note
    )


# --- Scoring, in the inference workers -----------------------------------------------


def score(
    version: ModelVersion,
    active: ModelVersion,
    images: list,
    features: dict[int, np.ndarray],
    read: Callable[[object], bytes],
) -> list[ShadowPrediction]:
    """The answers of ``version`` (in shadow) on ``images``, in their order, stored once per
    photo. ``features``: the served backbone's features ``active`` computed, by photo id;
    a photo without them (its active answer came from an earlier delivery) is read with
    ``read`` and run through the backbone again."""
    stored = {
        p.image_id: p
        for p in ShadowPrediction.objects.filter(image__in=images, model_version=version)
    }
    missing = [image for image in images if image.pk not in stored]
    if missing:
        results = _classify(version, active, missing, features, read)
        ShadowPrediction.objects.bulk_create(
            [
                _row(image, version, active, result)
                for image, result in zip(missing, results, strict=True)
            ],
            ignore_conflicts=True,
        )
        stored |= {
            p.image_id: p
            for p in ShadowPrediction.objects.filter(image__in=missing, model_version=version)
        }
    return [stored[image.pk] for image in images]


def _classify(version, active, images, features, read) -> list[Classification]:
    if shares_backbone(version, active) and all(image.pk in features for image in images):
        return classify_features(np.stack([features[image.pk] for image in images]), version)
    return classify_images([read(image) for image in images], version, slot="shadow")


def _row(image, version, active, result: Classification) -> ShadowPrediction:
    return ShadowPrediction(
        image=image,
        model_version=version,
        served_with=active,
        category=result.category,
        confidence=result.confidence,
        probabilities=result.probabilities,
        none_of_these=result.none_of_these,
    )


def record_routing(
    ad, version: ModelVersion, active: ModelVersion, routed: tuple, would: tuple
) -> None:
    """What ``active`` did with ``ad`` and what ``version`` would have done, as (status,
    reason): the latest routing of the ad is kept."""
    ShadowRouting.objects.bulk_create(
        [
            ShadowRouting(
                ad=ad,
                model_version=version,
                served_with=active,
                routed_status=routed[0],
                routed_reason=routed[1],
                would_status=would[0],
                would_reason=would[1],
                created_at=timezone.now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["ad", "model_version"],
        update_fields=[
            "served_with",
            "routed_status",
            "routed_reason",
            "would_status",
            "would_reason",
            "created_at",
        ],
    )


# --- Figures, for the registry --------------------------------------------------------


@dataclass
class Figures:
    """The version in shadow against the active version it ran beside, on live traffic
    since it (last) entered shadow."""

    version: ModelVersion
    active: ModelVersion
    since: datetime
    until: datetime | None  # None while it is in shadow
    photos: int = 0  # photos both answered
    agreed: int = 0  # of them, with the same top class
    ads: int = 0
    routed_published: int = 0  # published alone by the active version
    would_published: int = 0  # that the version in shadow would have published alone
    only_would_published: int = 0  # of those, sent to review by the active version
    only_routed_published: int = 0
    # On the photos moderators labelled since, of the categories both know: the paired
    # test ("all" first, then per category) and each one's counts at its threshold.
    rows: list[Row] = field(default_factory=list)
    counts: dict[str, tuple[Counts, Counts]] = field(default_factory=dict)


def figures(version: ModelVersion) -> Figures | None:
    """``version``'s shadow figures, None when it was never in shadow or scored nothing."""
    if version.shadow_since is None:
        return None
    since = version.shadow_since
    answers = _answers(version, since)
    served_with = answers.values_list("served_with", flat=True).first()
    if served_with is None:
        return None
    result = Figures(version, ModelVersion.objects.get(pk=served_with), since, _until(version))
    result.photos, result.agreed = _agreement(answers)
    _routing_counts(result)
    _accuracy(result, answers)
    return result


def _answers(version: ModelVersion, since: datetime):
    """Its answers since ``since`` that the active version answered too, with the active
    version's answer beside them."""
    active = Prediction.objects.filter(
        image=OuterRef("image"), model_version=OuterRef("served_with")
    )
    return (
        ShadowPrediction.objects.filter(model_version=version, created_at__gte=since)
        .annotate(
            active_category=Subquery(active.values("category")[:1]),
            active_confidence=Subquery(active.values("confidence")[:1]),
        )
        .filter(active_category__isnull=False)
        .order_by()
    )


def _until(version: ModelVersion) -> datetime | None:
    if version.in_shadow:
        return None
    return (
        ModelVersionEvent.objects.filter(
            version=version, action=Action.SHADOW_END, created_at__gte=version.shadow_since
        )
        .values_list("created_at", flat=True)
        .first()
    )


def _agreement(answers) -> tuple[int, int]:
    said = answers.aggregate(
        photos=Count("pk"), agreed=Count("pk", filter=Q(category=F("active_category")))
    )
    return said["photos"], said["agreed"]


def _routing_counts(result: Figures) -> None:
    published = Ad.Status.PUBLISHED
    routed, would = Q(routed_status=published), Q(would_status=published)
    said = ShadowRouting.objects.filter(
        model_version=result.version, served_with=result.active, created_at__gte=result.since
    ).aggregate(
        ads=Count("pk"),
        routed=Count("pk", filter=routed),
        would=Count("pk", filter=would),
        only_would=Count("pk", filter=would & ~routed),
        only_routed=Count("pk", filter=routed & ~would),
    )
    result.ads, result.routed_published = said["ads"], said["routed"]
    result.would_published = said["would"]
    result.only_would_published = said["only_would"]
    result.only_routed_published = said["only_routed"]


def _accuracy(result: Figures, answers) -> None:
    """Both versions' answers on the photos that moderators labelled since it entered
    shadow (their decisions' labels, as training reads them; excluded photos left out)."""
    label = TrainingImage.objects.filter(
        sha256=OuterRef("image__sha256"),
        source=TrainingImage.Source.MODERATOR,
        labelled_at__gte=result.since,
        excluded=False,
        category__isnull=False,
    ).values("category__slug")[:1]
    shared = [c for c in result.active.classes if c in result.version.classes]
    labelled = answers.annotate(truth=Subquery(label)).filter(truth__in=shared)
    mine, theirs = {}, {}
    for (
        key,
        truth,
        category,
        confidence,
        active_category,
        active_confidence,
    ) in labelled.values_list(
        "pk", "truth", "category", "confidence", "active_category", "active_confidence"
    ):
        mine[key] = [truth, active_category, active_confidence]
        theirs[key] = [truth, category, confidence]
    if not mine:
        return
    names = comparing.names()
    active_counts = counts(mine, result.active.threshold, shared)
    shadow_counts = counts(theirs, result.version.threshold, shared)
    present = [c for c in shared if active_counts[c].n]
    everything = comparing.listed([names.get(c, c) for c in shared])
    result.rows = [Row("all", everything, pair(mine, theirs, shared))]
    result.rows += [Row(c, names.get(c, c), pair(mine, theirs, [c])) for c in present]
    result.counts = {
        row.slug: (active_counts[row.slug], shadow_counts[row.slug]) for row in result.rows
    }
