"""Quality figures for a classifier's probabilities. NumPy only.

The coverage/risk curve answers the product's question: if the model decides on its own
only when its confidence is at least t, what share of photos does it decide (coverage),
and how many of those does it get wrong (risk)?
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_scores(matrix: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    scores = {}
    for index, name in enumerate(classes):
        true_positive = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return scores


def coverage_risk_curve(confidence: np.ndarray, correct: np.ndarray) -> list[dict[str, float]]:
    """One point per distinct confidence, from the most confident down.

    Each point: ``threshold`` t, ``coverage`` = share of images with confidence >= t,
    ``risk`` = error rate among them, ``n`` = how many they are.
    """
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    errors = np.cumsum(~correct[order])
    counts = np.arange(1, len(order) + 1)
    # Keep the last index of each run of equal confidences: a threshold takes all of them.
    last_of_run = np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True]
    total = len(order)
    return [
        {
            "threshold": float(sorted_confidence[i]),
            "coverage": float(counts[i] / total),
            "risk": float(errors[i] / counts[i]),
            "n": int(counts[i]),
        }
        for i in np.flatnonzero(last_of_run)
    ]


def threshold_for_risk(curve: list[dict[str, float]], target_risk: float) -> dict[str, float]:
    """The lowest threshold whose automatic decisions keep risk at or under ``target_risk``.

    Returns the chosen curve point. When no threshold reaches the target, the threshold
    is 1.0 with coverage 0: nothing is decided automatically (fail towards humans).
    """
    best = {"threshold": 1.0, "coverage": 0.0, "risk": 0.0, "n": 0}
    for point in curve:  # ordered by falling threshold, rising coverage
        if point["risk"] <= target_risk:
            best = point
    return dict(best)


def at_threshold(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    decided = confidence >= threshold
    n_decided = int(decided.sum())
    return {
        "threshold": float(threshold),
        "coverage": float(n_decided / len(confidence)) if len(confidence) else 0.0,
        "risk": float((~correct[decided]).sum() / n_decided) if n_decided else 0.0,
    }


def evaluate_probabilities(
    probabilities: np.ndarray,
    y_true: np.ndarray,
    classes: list[str],
    threshold: float | None = None,
) -> dict:
    """Every figure we store or print about a set of predictions."""
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = y_pred == y_true
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    report = {
        # The order of the confusion matrix's rows (true) and columns (predicted).
        "classes": list(classes),
        "n": int(len(y_true)),
        "accuracy": float(correct.mean()) if len(y_true) else 0.0,
        "per_class": per_class_scores(matrix, classes),
        "confusion_matrix": matrix.tolist(),
        "coverage_risk_curve": thin_curve(coverage_risk_curve(confidence, correct)),
    }
    if threshold is not None:
        point = at_threshold(confidence, correct, threshold)
        report["coverage_at_threshold"] = point["coverage"]
        report["error_at_threshold"] = point["risk"]
    return report


def thin_curve(curve: list[dict[str, float]], max_points: int = 200) -> list[dict[str, float]]:
    """Keep a curve small enough to store and plot: at most ``max_points`` evenly spread."""
    if len(curve) <= max_points:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))
    return [curve[i] for i in keep]
