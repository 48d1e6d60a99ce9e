"""The review queue's pulse, for admins: how long it is, how old its oldest ad, how fast
moderators decide, and how often they follow the model's suggestion; and whether the workers
that classify and train are alive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from ads.models import Ad
from avito_mod import workers

from .models import ModerationDecision

Action = ModerationDecision.Action


@dataclass
class ModeratorRow:
    moderator: str
    counts: dict[str, int]  # by action
    total: int
    active_hours: int  # hours in which they decided at least once

    @property
    def per_hour(self) -> float:
        return self.total / self.active_hours if self.active_hours else 0.0


def pulse(days: int = 7) -> dict:
    now = timezone.now()
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    queue = Ad.objects.in_review()
    oldest = queue.aggregate(oldest=Min("decided_at"))["oldest"]
    decisions = ModerationDecision.objects.filter(created_at__gte=since, undone_at__isnull=True)
    return {
        "days": days,
        "since": since,
        "queue_length": queue.count(),
        "oldest": queue.order_by("decided_at", "pk").first(),
        "oldest_waiting": now - oldest if oldest else None,
        "per_day": _per_day(decisions, since, days),
        "moderators": _by_moderator(decisions),
        "followed": _followed(decisions, since, days),
    }


def _days(since, days: int) -> list:
    return [(since + timedelta(days=n)).date() for n in range(days)]


def _per_day(decisions, since, days: int) -> dict[str, list[tuple]]:
    """Per action, decisions on each day (in the site's time zone)."""
    counts = {
        (row["day"], row["action"]): row["n"]
        for row in decisions.annotate(day=TruncDate("created_at"))
        .values("day", "action")
        .annotate(n=Count("pk"))
    }
    return {
        label: [(day, counts.get((day, action), 0)) for day in _days(since, days)]
        for action, label in Action.choices
    }


def _by_moderator(decisions) -> list[ModeratorRow]:
    rows: dict[str, ModeratorRow] = {}
    for row in decisions.values("moderator__username", "action").annotate(n=Count("pk")):
        name = row["moderator__username"] or "(deleted account)"
        entry = rows.setdefault(name, ModeratorRow(name, dict.fromkeys(Action.values, 0), 0, 0))
        entry.counts[row["action"]] += row["n"]
        entry.total += row["n"]
    hours = (
        decisions.annotate(hour=TruncHour("created_at"))
        .values("moderator__username")
        .annotate(hours=Count("hour", distinct=True))
    )
    for row in hours:
        name = row["moderator__username"] or "(deleted account)"
        rows[name].active_hours = row["hours"]
    return sorted(rows.values(), key=lambda r: -r.total)


def _followed(decisions, since, days: int) -> dict:
    """Of the decisions on ads the model suggested another category for, the share that
    published the ad in that category (the others overruled the model), per day and in all."""
    suggested = decisions.filter(suggested_category__isnull=False)
    per_day = {}
    for row in (
        suggested.annotate(day=TruncDate("created_at"))
        .values("day", "action", "to_category", "suggested_category")
        .annotate(n=Count("pk"))
    ):
        followed = row["to_category"] == row["suggested_category"]
        total, agreed = per_day.get(row["day"], (0, 0))
        per_day[row["day"]] = (total + row["n"], agreed + (row["n"] if followed else 0))
    total = sum(t for t, _ in per_day.values())
    agreed = sum(a for _, a in per_day.values())
    return {
        "total": total,
        "share": agreed / total if total else None,
        "per_day": [
            (day, per_day[day][1] / per_day[day][0]) for day in _days(since, days) if day in per_day
        ],
    }


def worker_states() -> dict:
    """The workers as the pulse page shows them: each role's, or why they cannot be seen."""
    try:
        return {"queues": list(workers.liveness().values()), "unknown": ""}
    except workers.Unknown as error:
        return {"queues": [], "unknown": str(error)}


def worker_notices() -> list[str]:
    """For the admin index: ads waiting for classification while no inference worker is
    alive ("No inference worker for 2 min: 14 ads waiting for classification.")."""
    waiting = Ad.objects.filter(status=Ad.Status.PENDING).count()
    if not waiting:
        return []
    ads = f"{waiting} ad{'s' if waiting != 1 else ''} waiting for classification"
    try:
        inference = workers.liveness()["inference"]
    except workers.Unknown as error:
        return [f"The workers cannot be seen (the broker does not answer: {error}): {ads}."]
    if inference.up:
        return []
    if inference.last_seen is None:
        return [f"No inference worker has ever answered: {ads}."]
    return [f"No inference worker for {workers.ago(inference.last_seen)}: {ads}."]
