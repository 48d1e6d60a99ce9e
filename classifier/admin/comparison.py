"""A version's figures next to the active version's on the same evaluation photos: tables,
confusion matrices, coverage/risk curves, and whether the comparison is fair."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from .. import fairness, plots
from ..models import ModelVersion


def comparison_of(shown: list[tuple[str, ModelVersion, str]]):
    """Figures, confusion matrices and coverage/risk curves of versions side by side."""
    evaluations = [(label, version.evaluation, colour) for label, version, colour in shown]
    measured = [(label, e, colour) for label, e, colour in evaluations if e.get("n")]
    seen = {label: fairness.seen_in_training(v) for label, v, _ in shown if v.evaluation.get("n")}
    notes = [_sameness(evaluations), _unfairness(list(seen.values()))]
    notes += [format_html("{}: {}.", label, said) for label, said in seen.items()]
    for label, evaluation, _ in evaluations:
        if evaluation.get("error"):
            notes.append(format_html("{}: could not be evaluated: {}", label, evaluation["error"]))
        elif not evaluation.get("n"):
            notes.append(format_html("{}: not measured on the evaluation set yet.", label))
        if evaluation.get("auto_promotion"):
            notes.append(format_html("Auto-promotion: {}", evaluation["auto_promotion"]))
    if not measured:
        return format_html_join("", "<p>{}</p>", ((n,) for n in notes if n))
    matrices = format_html_join(
        "",
        '<div style="display:inline-block;vertical-align:top;margin-right:24px">'
        "<strong>{}</strong>{}</div>",
        (
            (label, plots.confusion_table(e["confusion_matrix"], e["classes"]))
            for label, e, _ in measured
        ),
    )
    return format_html(
        "{}{}<div>{}</div>{}{}",
        format_html_join("", "<p>{}</p>", ((n,) for n in notes if n)),
        _figures_table(measured),
        matrices,
        plots.coverage_risk_chart(measured),
        plots.per_class_chart(measured),
    )


def _sameness(evaluations) -> str:
    measured = [e for _, e, _ in evaluations if e.get("n")]
    if len(measured) < 2:
        return ""
    if len({e.get("fingerprint") for e in measured}) == 1:
        return format_html("Both measured on the same {} held-out photos.", measured[0]["n"])
    return mark_safe(
        "<strong>Measured on different photos</strong> (the evaluation set changed since one "
        "of them was measured): evaluate again to compare them."
    )


def _unfairness(seen: list[fairness.Seen]) -> str:
    unfair = fairness.unfairness(seen)
    if not unfair:
        return ""
    if len(seen) > 1:
        said = "The figures below are no verdict on which version is better."
    else:
        said = "Its figures below may flatter it."
    return format_html("<strong>{}.</strong> {}", capfirst(unfair), said)


def _figures_table(measured) -> str:
    def row(name, show):
        return (name, *(show(e) for _, e, _ in measured))

    rows = [
        row("photos", lambda e: e["n"]),
        row("accuracy", lambda e: f"{e['accuracy']:.2%}"),
        row("threshold", lambda e: "—" if e["threshold"] is None else f"{e['threshold']:.4f}"),
        row("decides alone", lambda e: f"{e['coverage_at_threshold']:.1%}"),
        row("errors when alone", lambda e: f"{e['error_at_threshold']:.2%}"),
        row("evaluated", lambda e: e["evaluated_at"][:16].replace("T", " ")),
    ]
    classes = sorted({c for _, e, _ in measured for c in e["per_class"]})
    for name in classes:
        rows.append(
            row(
                f"{name}: precision / recall",
                lambda e, name=name: _precision_recall(e["per_class"].get(name)),
            )
        )
    return html_table(["", *(label for label, _, _ in measured)], rows)


def _precision_recall(scores: dict | None) -> str:
    if not scores:
        return "—"
    return f"{scores['precision']:.3f} / {scores['recall']:.3f} (n={scores['support']})"


def html_table(headers, rows):
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)
