import numpy as np
import pytest

from classifier.ml import evaluation
from classifier.ml.split import group_split, near_duplicate_groups


def test_confusion_matrix_and_per_class_scores():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    matrix = evaluation.confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    scores = evaluation.per_class_scores(matrix, ["a", "b", "c"])
    assert scores["a"]["precision"] == pytest.approx(2 / 3)
    assert scores["a"]["recall"] == pytest.approx(2 / 3)
    assert scores["b"]["precision"] == pytest.approx(2 / 3)
    assert scores["b"]["recall"] == 1.0
    assert scores["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_coverage_risk_curve_counts_errors_among_confident_predictions():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.6])
    correct = np.array([True, True, False, True, False])
    curve = evaluation.coverage_risk_curve(confidence, correct)
    assert [p["threshold"] for p in curve] == pytest.approx([0.99, 0.95, 0.9, 0.8, 0.6])
    assert [p["coverage"] for p in curve] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [p["risk"] for p in curve] == pytest.approx([0, 0, 1 / 3, 1 / 4, 2 / 5])


def test_equal_confidences_form_one_point():
    curve = evaluation.coverage_risk_curve(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]))
    assert [(p["threshold"], p["n"]) for p in curve] == [(0.9, 2), (0.5, 3)]


def test_threshold_is_the_lowest_that_keeps_risk_under_target():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.6])
    correct = np.array([True, True, False, True, False])
    curve = evaluation.coverage_risk_curve(confidence, correct)
    assert evaluation.threshold_for_risk(curve, 0.0)["threshold"] == pytest.approx(0.95)
    assert evaluation.threshold_for_risk(curve, 0.30)["threshold"] == pytest.approx(0.8)
    assert evaluation.threshold_for_risk(curve, 0.5)["coverage"] == 1.0


def test_unreachable_target_means_no_automatic_decisions():
    curve = evaluation.coverage_risk_curve(np.array([0.9, 0.8]), np.array([False, True]))
    chosen = evaluation.threshold_for_risk(curve, 0.01)
    assert chosen["threshold"] == 1.0
    assert chosen["coverage"] == 0.0


def test_evaluate_probabilities_reports_coverage_at_threshold():
    probabilities = np.array([[0.98, 0.02], [0.3, 0.7], [0.45, 0.55], [0.9, 0.1]])
    y_true = np.array([0, 1, 0, 1])
    report = evaluation.evaluate_probabilities(probabilities, y_true, ["a", "b"], threshold=0.7)
    assert report["n"] == 4
    assert report["accuracy"] == 0.5
    assert report["coverage_at_threshold"] == 0.75  # 0.98, 0.7 and 0.9 are decided
    assert report["error_at_threshold"] == pytest.approx(1 / 3)
    assert report["confusion_matrix"] == [[1, 1], [1, 1]]


def test_thin_curve_keeps_both_ends():
    curve = [{"threshold": 1 - i / 1000, "coverage": i / 1000} for i in range(1000)]
    thinned = evaluation.thin_curve(curve, max_points=50)
    assert len(thinned) == 50
    assert thinned[0] == curve[0] and thinned[-1] == curve[-1]


def test_near_copies_share_a_group_and_different_photos_do_not():
    base = 0x0F0F_0F0F_0F0F_0F0F
    groups = near_duplicate_groups(
        [base, base ^ 0b111, base ^ 0b111 ^ (0b111 << 8), ~base & (2**64 - 1)]
    )
    # 0-1 differ by 3 bits, 1-2 by 3 bits: one chain; 3 is the opposite of everything.
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_group_split_never_puts_copies_on_both_sides():
    labels = np.array([0] * 50 + [1] * 50)
    groups = np.arange(100) // 5  # groups of five copies
    rest, held_out = group_split(labels, groups, fraction=0.2, seed=3)
    assert set(groups[rest]).isdisjoint(groups[held_out])
    assert len(rest) + len(held_out) == 100
    assert 15 <= len(held_out) <= 25
    assert set(labels[held_out]) == {0, 1}
