"""How sure a figure is: Wilson intervals for a share, McNemar's exact test for two models
answering the same photos, and a verdict in words. Standard library only (no SciPy).

A version's answers on the evaluation set are kept per photo (``Answers``: photo key to
true class, predicted class, confidence), so that two versions are compared photo by
photo on the photos both answered, not figure against figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
ALPHA = 0.05
# The smallest difference worth finding: a model wrong on 5 in 100 more photos of a class.
# With fewer photos than it takes to see that (``photos_to_detect``), "no difference" would
# only mean "not enough photos to tell".
DETECTABLE_DIFFERENCE = 0.05

# photo key -> [true class, predicted class, confidence]
Answers = Mapping[str, list]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the share ``k`` of ``n`` (95 % by default); (0, 1) when
    ``n`` is 0. Unlike the textbook p ± z·sqrt(p(1-p)/n), it is never [0, 0] at k = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(k: int, n: int) -> float:
    """Two-sided exact p-value of ``k`` successes in ``n`` fair coin tosses: twice the
    smaller tail, at most 1. Exact integers: no overflow, whatever ``n``."""
    if n <= 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / (1 << n))


def mcnemar(only_first_right: int, only_second_right: int) -> float:
    """McNemar's exact test: the photos one model gets right and the other wrong (the
    discordant pairs) split like fair coin tosses when the two are equally good."""
    return binomial_two_sided(only_first_right, only_first_right + only_second_right)


def fewest_discordant(alpha: float = ALPHA) -> int:
    """The fewest discordant photos, all going one way, that the exact test finds
    significant: 6 at 5 % (2 · 0.5⁶ = 0.031; five give 0.0625)."""
    k = 1
    while binomial_two_sided(0, k) >= alpha:
        k += 1
    return k


def photos_to_detect(difference: float = DETECTABLE_DIFFERENCE, alpha: float = ALPHA) -> int:
    """Photos needed before a model wrong on ``difference`` of them more than the other
    (and never less) is found worse: 120 for 5 points at 5 %."""
    return math.ceil(fewest_discordant(alpha) / difference)


@dataclass(frozen=True)
class Paired:
    """Two versions' answers on the same ``n`` photos: ``b`` only the first got right,
    ``c`` only the second; the second minus the first, in photos right."""

    n: int
    b: int
    c: int

    @property
    def p(self) -> float:
        return mcnemar(self.b, self.c)

    @property
    def difference(self) -> float:
        """The second version's accuracy minus the first's, on these photos."""
        return (self.c - self.b) / self.n if self.n else 0.0

    @property
    def verdict(self) -> Verdict:
        return verdict(self)


@dataclass(frozen=True)
class Verdict:
    word: str  # "better", "worse", "no difference", "too few photos"
    more_needed: int = 0

    def __str__(self) -> str:
        if self.word == "too few photos":
            return f"too few photos (about {self.more_needed} more needed)"
        if self.word == "no difference":
            return "no difference we can detect"
        return self.word


def verdict(paired: Paired, alpha: float = ALPHA) -> Verdict:
    """The second version against the first: *better* or *worse* when the exact test says
    so (p < ``alpha``); otherwise *too few photos* while a difference of
    ``DETECTABLE_DIFFERENCE`` could not have been seen, else *no difference*."""
    if paired.b != paired.c and paired.p < alpha:
        return Verdict("better" if paired.c > paired.b else "worse")
    needed = photos_to_detect(alpha=alpha)
    if paired.n < needed:
        return Verdict("too few photos", needed - paired.n)
    return Verdict("no difference")


def pair(first: Answers, second: Answers, classes: Iterable[str]) -> Paired:
    """The photos of ``classes`` both versions answered with the same true class (a photo
    relabelled between their measurements is left out)."""
    classes = set(classes)
    n = b = c = 0
    for key, (truth, predicted, _) in first.items():
        other = second.get(key)
        if other is None or other[0] != truth or truth not in classes:
            continue
        n += 1
        first_right, second_right = predicted == truth, other[1] == truth
        b += first_right and not second_right
        c += second_right and not first_right
    return Paired(n, b, c)


@dataclass(frozen=True)
class Counts:
    """A version's answers on photos of one class (or all), at its threshold: ``n``
    photos, ``correct`` of them; ``decided`` alone (confidence at the threshold), ``wrong``
    among those. ``claimed``: photos decided alone *as* the class, ``claimed_wrong`` of
    them not of it — the ads the model would publish wrongly under that category."""

    n: int = 0
    correct: int = 0
    decided: int = 0
    wrong: int = 0
    claimed: int = 0
    claimed_wrong: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def coverage(self) -> float:
        return self.decided / self.n if self.n else 0.0

    @property
    def error(self) -> float:
        return self.wrong / self.decided if self.decided else 0.0

    @property
    def claimed_error(self) -> float:
        return self.claimed_wrong / self.claimed if self.claimed else 0.0


def counts(answers: Answers, threshold: float | None, classes: Iterable[str]) -> dict:
    """``{"all": Counts, class: Counts, ...}`` for ``classes``; a version without a
    threshold decides nothing alone."""
    limit = math.inf if threshold is None else threshold
    tally = {name: [0] * 6 for name in ["all", *classes]}
    for truth, predicted, confidence in answers.values():
        right, alone = predicted == truth, confidence >= limit
        for name in ("all", truth):
            if name in tally:
                row = tally[name]
                row[0] += 1
                row[1] += right
                row[2] += alone
                row[3] += alone and not right
        if alone and predicted in tally:
            tally[predicted][4] += 1
            tally[predicted][5] += not right
    tally["all"][4], tally["all"][5] = tally["all"][2], tally["all"][3]
    return {name: Counts(*row) for name, row in tally.items()}
