"""A photo's verdict as the routing reads it, and when it counts: the one place for the
confidence rule, which the routing (``moderation.policy``), the quick check, the sellers'
pages and the API all apply."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Ad


@dataclass(frozen=True)
class PhotoVerdict:
    category: str
    confidence: float
    # The photo shows none of the model's categories (``classifier.ml.none_of_these``).
    none_of_these: bool = False


# The review reasons whose suggested category ``decide`` takes from confident photos only:
# a seller reads "they look like"; for the other reasons only "perhaps".
SURE_SUGGESTIONS = frozenset({Ad.ReviewReason.CATEGORY_MISMATCH, Ad.ReviewReason.NONE_OF_THESE})


def is_confident(confidence: float, threshold: float | None) -> bool:
    """The routing's confidence test: at or above the version's threshold a photo's
    category counts (to publish, or to call a mismatch); below it a human decides."""
    return threshold is not None and confidence >= threshold


def verdict_of(prediction) -> PhotoVerdict:
    """A stored answer (``Prediction`` or ``ShadowPrediction``) as the policy reads it."""
    return PhotoVerdict(prediction.category, prediction.confidence, bool(prediction.none_of_these))


def is_sure(verdict: PhotoVerdict, threshold: float | None) -> bool:
    """Whether a seller is told a photo's verdict as certain. A category: when confident.
    None of these: when no category is confident; a photo the heads place confidently yet
    the detector flags is a doubt for a moderator, not a verdict."""
    confident = is_confident(verdict.confidence, threshold)
    return not confident if verdict.none_of_these else confident
