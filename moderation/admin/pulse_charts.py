"""The queue's pulse drawn: decisions per day by action, and how often moderators follow the
model's suggestion (inline SVG, with the registry's chart code)."""

from __future__ import annotations

from django.utils import timezone


def pulse_charts(figures: dict) -> str:
    """Decisions per day by action, and the share of suggestions followed, as SVG."""
    from avito_mod.charts import Series, line_chart

    today = timezone.localdate()
    colours = {"Accepted": "#2f855a", "Recategorized": "#2b6cb0", "Rejected": "#c53030"}

    def offset(day) -> int:
        return (day - today).days

    decided = [
        Series(label, [(offset(day), n) for day, n in points], colours[label])
        for label, points in figures["per_day"].items()
    ]
    followed = Series(
        "suggestion followed",
        [(offset(day), share) for day, share in figures["followed"]["per_day"]],
        "#2b6cb0",
    )
    span = (-(figures["days"] - 1), 0)
    return line_chart(
        decided, title="Decisions per day", x_label="day (0: today)", y_label="decisions",
        x_range=span,
    ) + line_chart(
        [followed], title="Model's suggestion followed", x_label="day (0: today)",
        y_label="share of decisions", x_range=span, y_range=(0, 1),
    )  # fmt: skip
