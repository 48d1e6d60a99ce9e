"""The live audit of automatic decisions as a table, per category: on the queue's pulse and
the model registry (``moderation.audit`` computes it)."""

from __future__ import annotations

from django.conf import settings
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from classifier.admin.comparison import html_table

from .. import audit

HEADERS = [
    "category",
    "audited",
    "wrong",
    "error rate (95 % interval), wrong of audited",
    "rejected for other reasons",
    "waiting for an answer",
]


def live_audit(days: int | None, path: str, *, version=None) -> str:
    """The table over the last ``days`` (None: all days), of one ``version`` or all, with
    links to ``path`` for the other windows when ``days`` is given."""
    errors = audit.live_errors(days, version=version)
    target = settings.CLASSIFIER_TARGET_RISK
    rows = [
        (
            error.category.name,
            error.answered,
            error.wrong,
            error.shown,
            error.other_rejections,
            error.waiting,
            _against(error, target),
        )
        for error in errors
    ]
    headers = [*HEADERS, f"against the target ({target * 100:g} %)"]
    table = html_table(headers, rows) if rows else format_html("<p>{}</p>", _nothing(days))
    return format_html("{}{}", _intro(days, path), table)


def _against(error: audit.LiveError, target: float) -> str:
    if not error.answered:
        return "—"
    low, high = error.interval
    if low > target:
        return mark_safe("<strong>wrong more often than the target</strong>")
    if high <= target:
        return "within the target"
    return "cannot tell yet (the interval spans the target)"


def _intro(days: int | None, path: str) -> str:
    rate = settings.MODERATION_AUDIT_RATE
    if rate:
        said = format_html(
            "{} of the ads the model publishes alone also go to moderators as audits; a "
            "correction (recategorized, or rejected as not the product) is an error.",
            f"{rate * 100:g} %",
        )
    else:
        said = "The audit is off (MODERATION_AUDIT_RATE=0); earlier audits below."
    if days is None:
        return format_html("<p>{}</p>", said)
    links = format_html_join(
        " · ",
        "{}",
        (
            (
                format_html("<strong>{} days</strong>", n)
                if n == days
                else format_html('<a href="{}?audit_days={}">{} days</a>', path, n, n),
            )
            for n in audit.windows()
        ),
    )
    return format_html("<p>{} Ads published in the last: {}</p>", said, links)


def _nothing(days: int | None) -> str:
    if days is None:
        return "No ad it published alone was audited."
    return f"No ad published alone in the last {days} days was audited."
