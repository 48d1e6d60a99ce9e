"""How sure a figure is (``classifier.ml.stats``): Wilson intervals and McNemar's exact test
against published values, the verdicts, and the counts kept per photo."""

import math

import pytest

from classifier.ml.stats import (
    Paired,
    binomial_two_sided,
    counts,
    fewest_discordant,
    mcnemar,
    pair,
    photos_to_detect,
    wilson,
)


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        # Newcombe (1998), Statistics in Medicine 17:857, table I (Wilson score, method 3).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # All right: the upper end is 1, the lower is 1 - z²/(n + z²) = 0.7225 for n = 10.
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_intervals_match_the_published_values(k, n, low, high):
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_an_interval_on_no_photos_says_nothing():
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_exact_binomial_test_matches_the_closed_forms():
    # 2 of 12 fair tosses or fewer, both tails: 2·(1 + 12 + 66)/4096.
    assert binomial_two_sided(2, 12) == pytest.approx(2 * 79 / 4096)
    assert binomial_two_sided(10, 12) == binomial_two_sided(2, 12)
    assert binomial_two_sided(6, 12) == 1.0  # the middle: capped at 1
    assert binomial_two_sided(0, 0) == 1.0
    # Large n (no float overflow), against the same tail summed in logarithms.
    log_terms = [
        math.lgamma(1001) - math.lgamma(i + 1) - math.lgamma(1001 - i) - 1000 * math.log(2)
        for i in range(401)
    ]
    assert binomial_two_sided(400, 1000) == pytest.approx(
        2 * sum(math.exp(t) for t in log_terms), rel=1e-9
    )
    assert binomial_two_sided(0, 3000) == 0.0


def test_mcnemar_exact_matches_a_textbook_case():
    # Fagerland, Lydersen, Laake (2013), BMC Med Res Methodol 13:91: airway
    # hyper-responsiveness before and after treatment, 1 and 7 discordant pairs, exact
    # conditional p = 0.070 (2 · 9/256).
    assert mcnemar(1, 7) == pytest.approx(0.0703, abs=1e-4)
    assert mcnemar(7, 1) == mcnemar(1, 7)


def test_six_discordant_photos_all_one_way_are_the_fewest_that_show_a_difference():
    assert fewest_discordant() == 6
    assert mcnemar(0, 6) < 0.05 <= mcnemar(0, 5)
    assert photos_to_detect() == 120  # 6 photos in 100 wrong more: 5 points


def test_verdicts_in_words():
    assert str(Paired(40, 0, 9).verdict) == "better"
    assert str(Paired(40, 9, 0).verdict) == "worse"
    assert str(Paired(16, 0, 0).verdict) == "too few photos (about 104 more needed)"
    # Seven wrong one way, two the other, on 30 photos: not significant, and too few.
    assert Paired(30, 2, 7).p > 0.05
    assert str(Paired(30, 2, 7).verdict) == "too few photos (about 90 more needed)"
    assert str(Paired(500, 3, 4).verdict) == "no difference we can detect"
    assert Paired(40, 0, 9).difference == pytest.approx(9 / 40)


def test_pairs_are_the_photos_both_answered_with_the_same_label():
    first = {
        "a": ["phone", "phone", 0.99],
        "b": ["phone", "laptop", 0.6],
        "c": ["laptop", "laptop", 0.9],
        "d": ["phone", "phone", 0.9],  # relabelled before the second measurement
        "e": ["phone", "phone", 0.9],  # the second never saw it
    }
    second = {
        "a": ["phone", "laptop", 0.7],
        "b": ["phone", "phone", 0.95],
        "c": ["laptop", "phone", 0.97],
        "d": ["laptop", "laptop", 0.9],
        "f": ["headphones", "headphones", 1.0],
    }
    assert pair(first, second, ["phone", "laptop"]) == Paired(3, 2, 1)
    assert pair(first, second, ["phone"]) == Paired(2, 1, 1)


def test_counts_by_true_class_and_by_what_was_decided_alone():
    answers = {
        "a": ["phone", "phone", 0.99],
        "b": ["phone", "laptop", 0.95],  # decided alone, wrong: published as a laptop
        "c": ["laptop", "laptop", 0.5],  # not sure: to a moderator
        "d": ["laptop", "laptop", 0.97],
    }
    got = counts(answers, 0.9, ["laptop", "phone"])
    assert got["all"].n == 4 and got["all"].correct == 3
    assert (got["all"].decided, got["all"].wrong) == (3, 1)
    phone, laptop = got["phone"], got["laptop"]
    assert (phone.n, phone.correct, phone.decided, phone.wrong) == (2, 1, 2, 1)
    assert (phone.claimed, phone.claimed_wrong) == (1, 0)
    assert (laptop.claimed, laptop.claimed_wrong, laptop.claimed_error) == (2, 1, 0.5)
    assert counts(answers, None, ["phone"])["phone"].decided == 0  # no threshold
