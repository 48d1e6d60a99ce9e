"""Cross-validation folds by near-copy group (``classifier.ml.split.group_folds``), which
training's heads and the label-error check both use."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.ml.split import group_folds


def test_near_copies_share_a_fold_and_the_folds_come_out_even():
    # 30 photos: one group of 6 copies, three of 3, fifteen photos alone.
    groups = np.array([0] * 6 + [1] * 3 + [2] * 3 + [3] * 3 + list(range(4, 19)))

    folds = group_folds(groups, 3, seed=7)

    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1, group
    assert sorted(np.bincount(folds, minlength=3)) == [10, 10, 10]
    assert np.array_equal(folds, group_folds(groups, 3, seed=7))  # the same seed, the same


def test_one_fold_is_refused():
    with pytest.raises(ValueError, match="at least two folds"):
        group_folds(np.arange(4), 1, seed=0)
