"""A version next to the active version on the evaluation set: the verdict in words (the
paired test on the photos both answered, ``classifier.services.comparing``), why the comparison
covers what it covers, figures with their 95 % intervals, confusion matrices, coverage/risk
curves, and whether the comparison is fair."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from avito_mod import charts

from ..ml.stats import wilson
from ..models import ModelVersion
from ..services import fairness
from ..services.comparing import Comparison, compare, names, version_counts


def comparison_of(shown: list[tuple[str, ModelVersion, str]]):
    """The verdict first, then why the comparison is what it is, then figures with their
    95 % intervals, confusion matrices and coverage/risk curves of versions side by side.
    ``shown``: this version first, then the active one if it is another."""
    evaluations = [(label, version.evaluation, colour) for label, version, colour in shown]
    measured = [(label, e, colour) for label, e, colour in evaluations if e.get("n")]
    seen = {label: fairness.seen_in_training(v) for label, v, _ in shown if v.evaluation.get("n")}
    notes = [_unfairness(list(seen.values()))]
    notes += [format_html("{}: {}.", label, said) for label, said in seen.items()]
    for label, evaluation, _ in evaluations:
        if evaluation.get("error"):
            notes.append(format_html("{}: could not be evaluated: {}", label, evaluation["error"]))
        elif not evaluation.get("n"):
            notes.append(format_html("{}: not measured on the evaluation set yet.", label))
        if evaluation.get("auto_promotion"):
            notes.append(format_html("Auto-promotion: {}", evaluation["auto_promotion"]))
    verdict = ""
    if len(shown) == 2 and len(measured) == 2:
        verdict = _verdict(compare(shown[1][1], shown[0][1]), evaluations)
    if not measured:
        return format_html_join("", "<p>{}</p>", ((n,) for n in notes if n))
    matrices = format_html_join(
        "",
        '<div style="display:inline-block;vertical-align:top;margin-right:24px">'
        "<strong>{}</strong>{}</div>",
        (
            (label, charts.confusion_table(e["confusion_matrix"], e["classes"]))
            for label, e, _ in measured
        ),
    )
    return format_html(
        "{}{}{}{}<div>{}</div>{}{}",
        verdict,
        format_html_join("", "<p>{}</p>", ((n,) for n in notes if n)),
        _intervals_table([(label, v) for label, v, _ in shown if v.evaluation.get("n")]),
        _figures_table(measured),
        matrices,
        charts.coverage_risk_chart(measured),
        charts.per_class_chart(measured),
    )


def _verdict(comparison: Comparison, evaluations) -> str:
    """The headline (this version against the active one), why the comparison covers what
    it covers, and the verdict per category."""
    first, second = f"v{comparison.first.number}", f"v{comparison.second.number}"
    reasons = list(comparison.reasons)
    same = len({e.get("fingerprint") for _, e, _ in evaluations}) == 1
    if same:
        reasons.insert(0, f"Both measured on the same {evaluations[0][1]['n']} held-out photos.")
    elif not reasons:
        reasons.append(
            "Measured on different photos (the evaluation set changed since one of them was "
            "measured): evaluate again to compare them."
        )
    banner = format_html_join("", "<li>{}</li>", ((capfirst(r),) for r in reasons))
    rows = [
        (
            row.name,
            row.paired.n,
            row.paired.c,
            row.paired.b,
            f"{row.paired.p:.3g}",
            row.said(first, second),
        )
        for row in comparison.rows
    ]
    headers = [
        "category",
        "photos both answered",
        f"right for {second} only",
        f"right for {first} only",
        "p (McNemar, exact)",
        f"{second} against {first}",
    ]
    return format_html(
        '<p style="font-size:1.2em"><strong>{}</strong></p><ul>{}</ul>{}',
        capfirst(comparison.headline),
        banner,
        html_table(headers, rows) if rows else "",
    )


def _intervals_table(shown: list[tuple[str, ModelVersion]]) -> str:
    """Per category and overall, for each version: its photos, accuracy, the share it
    decides alone at its threshold and its errors among those, each with a 95 % interval."""
    tallies = [(label, version_counts(version)) for label, version in shown]
    classes = list(dict.fromkeys(c for _, v in shown for c in v.classes))
    label = names()
    rows = []
    for name in ["all", *classes]:
        cells = []
        for _, tally in tallies:
            c = tally.get(name)
            if c is None or not c.n:
                cells += ["—"] * 4
                continue
            cells += [
                c.n,
                share(c.correct, c.n),
                share(c.decided, c.n),
                share(c.wrong, c.decided) if c.decided else "none decided",
            ]
        rows.append((label.get(name, "all categories" if name == "all" else name), *cells))
    headers = [""]
    for shown_label, _ in tallies:
        headers += [
            f"{shown_label}: photos",
            "accuracy",
            "decided alone",
            "errors when alone",
        ]
    note = mark_safe("<p>Each share with its 95 % interval (Wilson).</p>")
    return format_html("{}{}", note, html_table(headers, rows))


def share(k: int, n: int) -> str:
    """ "93.8 % (81.3–98.3)": k of n, and its 95 % interval."""
    low, high = wilson(k, n)
    return f"{k / n:.1%} ({low:.1%}–{high:.1%})"


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
        row("threshold", lambda e: "—" if e["threshold"] is None else f"{e['threshold']:.4f}"),
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
