"""Two versions compared photo by photo on the evaluation set, and how sure that is.

Each version keeps its answer on every evaluation photo it was measured on
(``evaluation["answers"]``). Two versions are compared on the photos both answered, of the
categories both know: per category and over all of them, McNemar's exact test on the
photos one got right and the other wrong gives a verdict in words (``ml.stats.verdict``).
What the comparison leaves out, and why, is said in words too (``Comparison.reasons``):
a category one of them does not know, photos added to the evaluation set (or relabelled)
since one of them was measured.

The promotion guard (``retraining``) refuses a candidate found worse on any category.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ads.models import Category

from ..ml.stats import Counts, Paired, Verdict, counts, pair
from ..models import ModelVersion


def answers_of(version: ModelVersion) -> dict:
    return (version.evaluation or {}).get("answers") or {}


def version_counts(version: ModelVersion) -> dict[str, Counts]:
    """``{"all": Counts, class: Counts}`` of its last measurement; empty if none was kept."""
    answers = answers_of(version)
    if not answers:
        return {}
    return counts(answers, version.evaluation.get("threshold"), version.classes)


@dataclass(frozen=True)
class Row:
    """One category (or all the shared ones, ``slug`` "all") of a comparison."""

    slug: str
    name: str
    paired: Paired

    @property
    def verdict(self) -> Verdict:
        return self.paired.verdict

    def said(self, first: str, second: str) -> str:
        """ "worse: 9 more of the 40 photos wrong (p = 0.004)"; for ``second`` against
        ``first``."""
        p, verdict = self.paired, self.verdict
        if p.n == 0:
            return "no photos both answered"
        if verdict.word in ("better", "worse"):
            more = abs(p.c - p.b)
            who = second if verdict.word == "better" else first
            return (
                f"{verdict}: {more} more of the {p.n} photos right for {who} "
                f"({p.difference:+.1%} accuracy, p = {p.p:.3g})"
            )
        return f"{verdict} ({p.n} photos; {p.c} right for {second} only, {p.b} for {first} only)"


@dataclass
class Comparison:
    """``second`` (a candidate) against ``first`` (the active version)."""

    first: ModelVersion
    second: ModelVersion
    rows: list[Row] = field(default_factory=list)  # all shared categories first
    reasons: list[str] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return bool(self.rows) and self.rows[0].paired.n > 0

    @property
    def worse(self) -> list[Row]:
        """The categories (never "all") on which the second version is found worse."""
        return [row for row in self.rows[1:] if row.verdict.word == "worse"]

    @property
    def headline(self) -> str:
        if not self.comparable:
            return "no verdict: no photos both versions answered"
        a, b = f"v{self.first.number}", f"v{self.second.number}"
        overall = self.rows[0]
        said = f"v{self.second.number} against {a}, {overall.name}: {overall.said(a, b)}"
        if self.worse:
            said += "; worse on " + ", ".join(row.name for row in self.worse)
        return said


def names() -> dict[str, str]:
    return dict(Category.objects.values_list("slug", "name"))


def listed(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def compare(first: ModelVersion, second: ModelVersion) -> Comparison:
    """``second`` against ``first``, on the photos both answered."""
    result = Comparison(first, second)
    mine, theirs = answers_of(first), answers_of(second)
    for version, answers in ((first, mine), (second, theirs)):
        if version.evaluation.get("n") and not answers:
            result.reasons.append(
                f"v{version.number} was measured before answers were kept photo by photo: "
                "evaluate it again to compare"
            )
    if not (mine and theirs):
        return result
    label = names()
    shared = [c for c in first.classes if c in second.classes]
    result.reasons += _class_reasons(first, second, shared, theirs, mine, label)
    result.reasons += _photo_reasons(first, second, shared, mine, theirs)
    if shared:
        everything = listed([label.get(c, c) for c in shared])
        result.rows.append(Row("all", everything, pair(mine, theirs, shared)))
        result.rows += [Row(c, label.get(c, c), pair(mine, theirs, [c])) for c in shared]
    return result


def _class_reasons(first, second, shared, second_answers, first_answers, label) -> list[str]:
    """ "v4 does not know Headphones: compared on Laptops and Phones; Headphones measured
    for v5 alone on 15 photos"."""
    reasons = []
    for one, other, other_answers in (
        (first, second, second_answers),
        (second, first, first_answers),
    ):
        unknown = [c for c in other.classes if c not in one.classes]
        if not unknown:
            continue
        photos = sum(1 for truth, _, _ in other_answers.values() if truth in unknown)
        said = listed([label.get(c, c) for c in unknown])
        where = (
            f"compared on {listed([label.get(c, c) for c in shared])}"
            if shared
            else "no category in common"
        )
        reasons.append(
            f"v{one.number} does not know {said}: {where}; {said} measured for "
            f"v{other.number} alone on {photos} photos"
        )
    return reasons


def _photo_reasons(first, second, shared, mine: dict, theirs: dict) -> list[str]:
    """Photos of the shared categories one version was measured on and the other not
    (the evaluation set grew, or lost photos), and photos relabelled in between."""
    shared = set(shared)
    mine_keys = {k for k, (truth, _, _) in mine.items() if truth in shared}
    their_keys = {k for k, (truth, _, _) in theirs.items() if truth in shared}
    reasons = []
    for version, only in ((second, their_keys - mine_keys), (first, mine_keys - their_keys)):
        if only:
            other = first if version is second else second
            reasons.append(
                f"{len(only)} photos were measured for v{version.number} only (the evaluation "
                f"set changed since v{other.number} was measured): evaluate "
                f"v{other.number} again to compare on them too"
            )
    relabelled = sum(1 for k in mine_keys & their_keys if mine[k][0] != theirs[k][0])
    if relabelled:
        reasons.append(
            f"{relabelled} photos were relabelled between the two measurements: left out"
        )
    return reasons
