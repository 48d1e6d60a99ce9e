"""The sellers' quick check: does one photo match the category chosen, before the ad exists?

It runs in the web process, with the active version's LiteRT model (loaded once per
process, about a millisecond a photo) and the same preprocessing and threshold the workers
use, and stores nothing. Going through the inference queue instead would add the broker's
round trip and need a result backend, for no gain: ``bench/quick_check.py`` measures both.
"""

from __future__ import annotations

from dataclasses import dataclass

from ads.models import Category
from ads.verdicts import PhotoVerdict, is_confident, is_sure

from ..ml.preprocess import letterbox
from ..models import ModelVersion
from . import ClassifierError, predictor_for


@dataclass(frozen=True)
class QuickCheck:
    category: Category  # the one the seller chose
    predicted: str | None  # the predicted category's slug; None for none of these
    confidence: float
    # None when the model does not know the chosen category and cannot check it.
    matched: bool | None
    # At or above the version's threshold: the pipeline would decide on its own.
    confident: bool
    suggested: Category | None  # the predicted category, when it is not the chosen one
    version: ModelVersion
    # The photo shows none of the categories (False when the version cannot tell).
    none_of_these: bool = False
    # The verdict is told as certain (``ads.verdicts.is_sure``); else "not sure".
    sure: bool = False
    # The one-click switch a seller is offered: only for a confident mismatch.
    switch_to: Category | None = None


def quick_check(image, category: Category) -> QuickCheck:
    """Check one decoded photo (a PIL image) against ``category`` with the active model."""
    version = ModelVersion.objects.serving()
    if version is None:
        raise ClassifierError("no model is active; the photo cannot be checked now")
    pixels = letterbox(image, version.input_size)[None]
    answers = predictor_for(version).answers(pixels)
    probabilities = answers.probabilities[0]
    best = int(probabilities.argmax())
    none_of_these = answers.none_of_these is not None and bool(answers.none_of_these[0])
    verdict = PhotoVerdict(version.classes[best], float(probabilities[best]), none_of_these)
    sure = is_sure(verdict, version.threshold)
    known = category.slug in version.classes
    if none_of_these:
        # As the pipeline sees it: this photo alone sends the ad to a moderator.
        return QuickCheck(
            category=category,
            predicted=None,
            confidence=verdict.confidence,
            matched=False if known else None,
            confident=False,
            suggested=None,
            version=version,
            none_of_these=True,
            sure=sure,
        )
    matched = verdict.category == category.slug if known else None
    suggested = None
    if not matched:
        suggested = Category.objects.active().filter(slug=verdict.category).first()
    return QuickCheck(
        category=category,
        predicted=verdict.category,
        confidence=verdict.confidence,
        matched=matched,
        confident=is_confident(verdict.confidence, version.threshold),
        suggested=suggested,
        version=version,
        sure=sure,
        switch_to=suggested if matched is False and sure else None,
    )
