"""Suspected label errors: confident learning on out-of-fold predictions.

A model cannot judge the labels it was trained on (it learnt them), so every photo is
judged by a model trained without it: k folds by near-duplicate group (a re-post would
otherwise testify for its copy), k trainings. Then, after Northcutt et al. (2021), each
class's bar is the mean probability that photos labelled with it get for it (its
self-confidence); a photo is suspect when another class clears its own bar and is the most
probable of all. Ranked by margin: that class's probability minus the given label's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    groups: np.ndarray,
    config,
    folds: int = 3,
    callbacks: list | None = None,
) -> np.ndarray:
    """Each photo's class probabilities (as served) from a head trained on
    the other folds' backbone ``features`` with ``config``: what training computes anyway
    to choose the threshold. Heads on cached features make a fold take seconds."""
    from .train import train

    config = replace(config, folds=folds)
    return train(features, labels, classes, groups, config, callbacks=callbacks).out_of_fold


@dataclass
class Suspects:
    """Photos whose given label the out-of-fold model contradicts, most confident first."""

    indices: np.ndarray  # into the photos checked
    suspected: np.ndarray  # the class each one looks like
    confidence: np.ndarray  # its probability for that class
    margin: np.ndarray  # that minus its probability for the given label
    thresholds: np.ndarray  # per class: mean self-confidence


def confident_learning(probabilities: np.ndarray, labels: np.ndarray) -> Suspects:
    """Flag photos whose out-of-fold probabilities contradict their labels confidently."""
    n_classes = probabilities.shape[1]
    thresholds = np.array(
        [
            probabilities[labels == c, c].mean() if np.any(labels == c) else 1.0
            for c in range(n_classes)
        ]
    )
    # Among the classes that clear their own bar, the most probable; none if none clears.
    cleared = np.where(probabilities >= thresholds, probabilities, -1.0)
    suspected = cleared.argmax(axis=1)
    rows = np.arange(len(labels))
    flagged = (
        (cleared[rows, suspected] >= 0)
        & (suspected != labels)
        & (suspected == probabilities.argmax(axis=1))
    )
    indices = np.flatnonzero(flagged)
    margin = probabilities[indices, suspected[indices]] - probabilities[indices, labels[indices]]
    order = np.argsort(-margin, kind="stable")
    indices = indices[order]
    return Suspects(
        indices=indices,
        suspected=suspected[indices],
        confidence=probabilities[indices, suspected[indices]],
        margin=margin[order],
        thresholds=thresholds,
    )


def precision_recall(flagged: np.ndarray, truly_wrong: np.ndarray) -> tuple[float, float]:
    """Of the flagged indices, the share truly mislabelled; of those, the share flagged."""
    flagged, truly_wrong = set(flagged.tolist()), set(truly_wrong.tolist())
    hits = len(flagged & truly_wrong)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truly_wrong) if truly_wrong else 0.0
    return precision, recall
