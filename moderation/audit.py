"""The live audit of automatic decisions: a random share (``MODERATION_AUDIT_RATE``) of the
ads the model publishes alone also goes to the review queue, marked as an audit, while it
stays published. A moderator's answer is an ordinary decision (``moderation.services``):
confirming keeps the ad published, correcting it recategorizes or rejects it, and the
photos are labelled for training like any decision's. The answers measure, per category,
how often the model's automatic decisions are wrong, with a 95 % Wilson interval
(``classifier.ml.stats``), shown on the queue's pulse and the model registry, on
``/metrics``, and on the admin index when the interval's lower end passes
``CLASSIFIER_TARGET_RISK``.

An error is an answer that the model's own judgement got wrong: the ad recategorized, or
rejected as not the product. A rejection as prohibited, duplicate or for another reason
counts among the answers (the photos were what the category said) but not as an error, and
is shown apart: the model does not judge those.

Each ad is drawn once, when the pipeline publishes it alone, and has at most one audit
(unique), answered by at most one decision (an undone answer reopens it): an ad re-scored
or delivered twice is never sampled or counted twice.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ads.models import Ad, Category
from classifier.ml.stats import wilson

from .models import Audit, ModerationDecision

Action = ModerationDecision.Action
# Windows offered by the pulse page and the registry, beside MODERATION_AUDIT_WINDOW_DAYS.
WINDOWS = (7, 30, 90)
WRONG = Q(decision__action=Action.RECATEGORIZE) | Q(
    decision__action=Action.REJECT, decision__rejection_reason=Ad.RejectionReason.NOT_PRODUCT
)
OTHER_REJECTION = Q(decision__action=Action.REJECT) & ~Q(
    decision__rejection_reason=Ad.RejectionReason.NOT_PRODUCT
)


class BadWindow(ValueError):
    """A window the pages do not offer; the message says which they do."""


# --- Sampling: in the pipeline, inside the transaction that publishes the ad -------------


def drawn(ad_id: int, rate: float, key: str | None = None) -> bool:
    """Whether ad ``ad_id`` is audited at ``rate``: an HMAC-SHA256 of its id, keyed with
    ``SECRET_KEY`` (``key`` in tests), read as a number in [0, 1) and compared with it.

    A hash of the id rather than a random draw: the same ad always gets the same answer,
    so a second delivery of its classification, or a retry after a crash, draws nothing
    new; and a test can say which ids are drawn. Unbiased: the id is given when the ad is
    posted, before any photo is seen, and the hash spreads ids uniformly, whatever the
    model answers; every ad published alone is audited with probability ``rate``,
    independently (a Bernoulli sample). Keyed: a seller who sees ids cannot tell which ads
    escape the audit. Compared in integers, so that 0 draws none and 1 draws all."""
    key = settings.SECRET_KEY if key is None else key
    digest = hmac.new(key.encode(), f"audit:{ad_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64


def sample(ad: Ad, version, now: datetime) -> bool:
    """Audit ``ad``, just published alone by ``version``, if it is drawn and was never
    audited. Returns whether an audit was opened."""
    if not drawn(ad.pk, settings.MODERATION_AUDIT_RATE):
        return False
    # Audited once already (published, answered, then re-scored): never again. The
    # caller holds the ad's row, which it just claimed: no other routing can race this.
    if Audit.objects.filter(ad_id=ad.pk).exists():
        return False
    Audit.objects.create(
        ad_id=ad.pk, category_id=ad.category_id, model_version=version, sampled_at=now
    )
    return True


# --- The queue: answering an audit is deciding the ad --------------------------------------


def open_audits() -> QuerySet[Audit]:
    return Audit.objects.open()


def in_queue(ads: QuerySet[Ad]) -> QuerySet[Ad]:
    """The review queue: ads in review and published ads with an open audit, oldest first
    (an audit by when the model published the ad), each marked ``audited`` or not."""
    waiting = open_audits().values("ad_id")
    return (
        ads.filter(Q(status=Ad.Status.NEEDS_REVIEW) | Q(status=Ad.Status.PUBLISHED, pk__in=waiting))
        .annotate(audited=Exists(open_audits().filter(ad=OuterRef("pk"))))
        .order_by("decided_at", "pk")
    )


def open_audit(ad: Ad) -> Audit | None:
    """The audit of ``ad`` waiting for an answer, locked until the transaction ends."""
    if ad.status != Ad.Status.PUBLISHED:
        return None
    return Audit.objects.select_for_update().filter(ad=ad, decision__isnull=True).first()


def answer(audit: Audit, decision: ModerationDecision) -> None:
    audit.decision = decision
    audit.save(update_fields=["decision"])


def answered_by(decision: ModerationDecision) -> Audit | None:
    """The audit ``decision`` answered (locked), or None for a decision on an ad in review."""
    return Audit.objects.select_for_update().filter(decision=decision).first()


def reopen(audit: Audit) -> None:
    """Its answer undone: the audit waits again, and its answer no longer counts."""
    audit.decision = None
    audit.save(update_fields=["decision"])


# --- The live error rate ----------------------------------------------------------------


@dataclass(frozen=True)
class LiveError:
    """One category's audits over a window: ``answered`` by moderators, ``wrong`` among
    them, ``other_rejections`` (answered, not counted as errors), ``waiting`` for an answer."""

    category: Category
    answered: int
    wrong: int
    other_rejections: int
    waiting: int

    @property
    def rate(self) -> float | None:
        return self.wrong / self.answered if self.answered else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.wrong, self.answered)

    def above(self, target: float) -> bool:
        """Wrong more often than ``target``, beyond doubt: the interval's lower end past it."""
        return self.answered > 0 and self.interval[0] > target

    @property
    def shown(self) -> str:
        """ "8.3 % (3.6–18.1 %), 5 of 60"; "no answer yet" when none."""
        if not self.answered:
            return "no answer yet"
        low, high = self.interval
        return (
            f"{percent(self.rate)} ({percent(low, sign=False)}–{percent(high)}), "
            f"{self.wrong} of {self.answered}"
        )


def percent(share: float, sign: bool = True) -> str:
    return f"{share * 100:.1f}{' %' if sign else ''}"


def window(value: str | None) -> int:
    """The window asked for (days, from a page's query string), the default when none;
    ``BadWindow`` for anything else."""
    offered = windows()
    if value in (None, ""):
        return settings.MODERATION_AUDIT_WINDOW_DAYS
    if not value.isdigit() or int(value) not in offered:
        named = ", ".join(str(days) for days in offered)
        raise BadWindow(f"The audit window is one of {named} days, not {value!r}.")
    return int(value)


def windows() -> list[int]:
    return sorted({*WINDOWS, settings.MODERATION_AUDIT_WINDOW_DAYS})


def live_errors(days: int | None, *, version=None, now: datetime | None = None) -> list[LiveError]:
    """Per category the model published ads in, the audits of the last ``days`` days (by
    when the ad was published; None: all), of one ``version`` or all; by category name."""
    audits = Audit.objects.all()
    if days is not None:
        audits = audits.filter(sampled_at__gte=(now or timezone.now()) - timedelta(days=days))
    if version is not None:
        audits = audits.filter(model_version=version)
    rows = (
        audits.order_by()
        .values("category", "category__name", "category__slug")
        .annotate(
            answered=Count("pk", filter=Q(decision__isnull=False)),
            wrong=Count("pk", filter=WRONG),
            other=Count("pk", filter=OTHER_REJECTION),
            waiting=Count("pk", filter=Q(decision__isnull=True, ad__status=Ad.Status.PUBLISHED)),
        )
    )
    found = [
        LiveError(
            # One query: the category's name and slug come with its counts.
            Category(pk=r["category"], name=r["category__name"], slug=r["category__slug"]),
            r["answered"],
            r["wrong"],
            r["other"],
            r["waiting"],
        )
        for r in rows
    ]
    return sorted(found, key=lambda e: e.category.name)


def notices(now: datetime | None = None) -> list[str]:
    """For the admin index: each category whose automatic decisions are wrong more often
    than ``CLASSIFIER_TARGET_RISK``, beyond doubt, over ``MODERATION_AUDIT_WINDOW_DAYS``."""
    target, days = settings.CLASSIFIER_TARGET_RISK, settings.MODERATION_AUDIT_WINDOW_DAYS
    said = []
    for error in live_errors(days, now=now):
        if error.above(target):
            low, high = error.interval
            said.append(
                f"Automatic decisions under {error.category} are wrong more often than the "
                f"{target * 100:g} % target: {error.wrong} of {error.answered} audited, "
                f"{percent(low, sign=False)}–{percent(high)} (95 %, last {days} days)."
            )
    return said
