"""Charts for the model registry: inline SVG and HTML drawn here, no plotting library.

Everything shown is escaped: labels are category slugs and version names, but a chart must
never be a way to inject markup into the admin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 380, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 26, 40
CANDIDATE, ACTIVE = "#2b6cb0", "#c05621"


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    colour: str
    dashed: bool = False
    marker: tuple[float, float] | None = None  # one point to mark (a threshold)


def line_chart(
    series: list[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
) -> SafeString:
    """Lines on shared axes, with ticks, axis labels and a legend."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return format_html("<p>{}: nothing to plot.</p>", title)
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    x_low, x_high = x_range or (min(xs), max(xs))
    y_low, y_high = y_range or _padded(min(ys), max(ys))
    scale = _Scale(x_low, x_high, y_low, y_high)
    parts = [
        _axes(scale, title, x_label, y_label),
        *(_line(scale, s) for s in drawn),
        _legend(drawn),
    ]
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'style="font:11px sans-serif;background:#fff;margin:0 12px 12px 0">'
        + "".join(parts)
        + "</svg>"
    )


class _Scale:
    def __init__(self, x_low: float, x_high: float, y_low: float, y_high: float):
        self.x_low, self.x_high = x_low, x_high if x_high > x_low else x_low + 1
        self.y_low, self.y_high = y_low, y_high if y_high > y_low else y_low + 1

    def x(self, value: float) -> float:
        share = (value - self.x_low) / (self.x_high - self.x_low)
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        share = (value - self.y_low) / (self.y_high - self.y_low)
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)


def _padded(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.05
    return low - pad, high + pad


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) between low and high."""
    raw = (high - low) / count if high > low else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _axes(scale: _Scale, title: str, x_label: str, y_label: str) -> str:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = [
        f'<text x="{LEFT}" y="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>',
    ]
    for value in ticks(scale.x_low, scale.x_high):
        x = scale.x(value)
        out.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#888"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle">{_number(value)}</text>'
        )
    for value in ticks(scale.y_low, scale.y_high):
        y = scale.y(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>'
        )
    middle = (LEFT + right) / 2
    out.append(
        f'<text x="{middle:.0f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="12" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + bottom) / 2:.0f})">{escape(y_label)}</text>'
    )
    return "".join(out)


def _line(scale: _Scale, series: Series) -> str:
    points = " ".join(f"{scale.x(x):.1f},{scale.y(y):.1f}" for x, y in series.points)
    dash = ' stroke-dasharray="5 3"' if series.dashed else ""
    out = (
        f'<polyline points="{points}" fill="none" stroke="{series.colour}" '
        f'stroke-width="1.8"{dash}/>'
    )
    if len(series.points) == 1:
        x, y = series.points[0]
        out += (
            f'<circle cx="{scale.x(x):.1f}" cy="{scale.y(y):.1f}" r="2.5" fill="{series.colour}"/>'
        )
    if series.marker is not None:
        x, y = series.marker
        out += (
            f'<circle cx="{scale.x(x):.1f}" cy="{scale.y(y):.1f}" r="4.5" fill="none" '
            f'stroke="{series.colour}" stroke-width="2"><title>threshold: coverage '
            f"{x:.1%}, error {y:.2%}</title></circle>"
        )
    return out


def _legend(series: list[Series]) -> str:
    out = []
    for row, item in enumerate(series):
        y = TOP + 4 + row * 14
        x = WIDTH - RIGHT - 150
        dash = ' stroke-dasharray="5 3"' if item.dashed else ""
        out.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{item.colour}" '
            f'stroke-width="2"{dash}/><text x="{x + 22}" y="{y + 4}">{escape(item.label)}</text>'
        )
    return "".join(out)


# --- The registry's charts -----------------------------------------------------------


def training_curves(history: dict[str, list[float]]) -> SafeString:
    """Loss and accuracy per epoch, training (solid) and validation (dashed)."""
    charts = []
    for metric, title, y_range in (("loss", "Loss", None), ("accuracy", "Accuracy", None)):
        series = [
            Series(
                f"{'validation' if key.startswith('val_') else 'training'}",
                [(epoch + 1, value) for epoch, value in enumerate(history.get(key, []))],
                CANDIDATE,
                dashed=key.startswith("val_"),
            )
            for key in (metric, f"val_{metric}")
        ]
        charts.append(
            line_chart(series, title=title, x_label="epoch", y_label=metric, y_range=y_range)
        )
    return mark_safe("".join(charts))


def coverage_risk_chart(evaluations: list[tuple[str, dict, str]]) -> SafeString:
    """Error rate against the share decided alone, for each (label, evaluation, colour);
    the circle marks each version's own threshold."""
    series = []
    for label, evaluation, colour in evaluations:
        curve = evaluation.get("coverage_risk_curve") or []
        marker = None
        if "coverage_at_threshold" in evaluation:
            marker = (evaluation["coverage_at_threshold"], evaluation["error_at_threshold"])
        points = [(point["coverage"], point["risk"]) for point in curve]
        series.append(Series(label, points, colour, marker=marker))
    highest = max((y for s in series for _, y in s.points), default=0.0)
    return line_chart(
        series,
        title="Coverage and error (evaluation set)",
        x_label="share of photos decided alone",
        y_label="error rate among them",
        x_range=(0.0, 1.0),
        y_range=(0.0, max(0.02, highest * 1.05)),
    )


def per_class_chart(evaluations: list[tuple[str, dict, str]]) -> SafeString:
    """Recall and precision per category, a bar per (label, evaluation, colour): a version
    that does not know a category has no bar there. Grows with the categories."""
    classes = sorted({c for _, e, _ in evaluations for c in e.get("per_class", {})})
    if not classes:
        return format_html("<p>{}</p>", "Per category: nothing to plot.")
    bar, gap, label_width = 9, 8, 96
    band = bar * len(evaluations) + gap
    height = TOP + band * len(classes) + 30
    scale = WIDTH - label_width - RIGHT - 40  # pixels for 100 %, the figures to its right
    out = [
        '<text x="4" y="14" font-weight="bold">Recall per category (evaluation set); '
        "| marks precision</text>"
    ]
    for row, name in enumerate(classes):
        y = TOP + row * band
        out.append(
            f'<text x="{label_width - 6}" y="{y + band / 2:.0f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        for n, (label, evaluation, colour) in enumerate(evaluations):
            scores = evaluation.get("per_class", {}).get(name)
            if not scores:
                continue
            top = y + n * bar
            recall, precision = scores["recall"], scores["precision"]
            out.append(
                f'<rect x="{label_width}" y="{top}" width="{recall * scale:.1f}" '
                f'height="{bar - 1}" fill="{colour}"><title>{escape(label)}, {escape(name)}: '
                f"recall {recall:.1%}, precision {precision:.1%} (n={scores['support']})"
                "</title></rect>"
            )
            x = label_width + precision * scale
            out.append(
                f'<line x1="{x:.1f}" y1="{top - 1}" x2="{x:.1f}" y2="{top + bar}" '
                'stroke="#222" stroke-width="1.5"/>'
            )
            out.append(
                f'<text x="{label_width + scale + 6:.1f}" y="{top + bar - 1}" '
                f'font-size="9">{recall:.0%}</text>'
            )
    legend_y = height - 10
    for n, (label, _, colour) in enumerate(evaluations):
        x = label_width + n * 150
        out.append(
            f'<rect x="{x}" y="{legend_y - 8}" width="10" height="9" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{legend_y}">{escape(label)}</text>'
        )
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Recall per category" '
        'style="font:11px sans-serif;background:#fff;margin:0 12px 12px 0">'
        + "".join(out)
        + "</svg>"
    )


def confusion_table(matrix: list[list[int]], classes: list[str]) -> SafeString:
    """Rows true, columns predicted, then each row's photos and recall. Readable at six
    classes and more: right answers (the diagonal) in blue, mistakes in red, each cell
    shaded by its share of its row, with the share on hover; empty cells stay blank."""
    head = format_html_join("", "<th>{}</th>", ((name,) for name in classes))
    rows = []
    for true_index, (name, row) in enumerate(zip(classes, matrix, strict=True)):
        total = sum(row)
        cells = format_html_join(
            "",
            "{}",
            (
                (_confusion_cell(name, predicted, value, total, predicted_index == true_index),)
                for predicted_index, (predicted, value) in enumerate(zip(classes, row, strict=True))
            ),
        )
        recall = f"{row[true_index] / total:.0%}" if total else "—"
        rows.append(
            format_html(
                '<tr><th>{}</th>{}<td class="total">{}</td><td class="total">{}</td></tr>',
                name,
                cells,
                total,
                recall,
            )
        )
    return format_html(
        '<table class="confusion"><thead><tr><th>true \\ predicted</th>{}<th>photos</th>'
        "<th>recall</th></tr></thead><tbody>{}</tbody></table>",
        head,
        mark_safe("".join(rows)),
    )


def _confusion_cell(true: str, predicted: str, value: int, total: int, right: bool) -> str:
    if not value:
        return format_html('<td title="{} never predicted as {}"></td>', true, predicted)
    share = value / total
    # A mistake, however rare, stays visible: its shade starts darker.
    colour, alpha = (
        ("43,108,176", 0.1 + 0.6 * share) if right else ("197,48,48", 0.25 + 0.6 * share)
    )
    return format_html(
        '<td class="{}" style="text-align:right;background:rgba({},{})" '
        'title="{} predicted as {}: {} of {} ({})">{}</td>',
        "right" if right else "wrong",
        colour,
        f"{alpha:.2f}",
        true,
        predicted,
        value,
        total,
        f"{share:.0%}",
        value,
    )


def progress_bar(fraction: float, width: int = 220) -> SafeString:
    fraction = min(1.0, max(0.0, fraction))
    return format_html(
        '<span style="display:inline-block;width:{}px;height:10px;border:1px solid #888;'
        'vertical-align:middle"><span style="display:block;height:100%;width:{}%;'
        'background:{}"></span></span>',
        width,
        f"{fraction * 100:.1f}",
        CANDIDATE,
    )
