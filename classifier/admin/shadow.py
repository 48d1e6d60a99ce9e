"""Shadow mode in the registry: the buttons to put a candidate in shadow and take it out
(POSTs, ``classifier.promote_modelversion``), the marker in the list, and on the version's
page its figures on live traffic (``classifier.services.shadow.figures``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..models import ModelVersion
from ..services import shadow
from .comparison import html_table, share


class ShadowButtons:
    """Mixed into the registry's ``ModelVersionAdmin``: buttons, views and the page's
    figures of shadow mode."""

    def shadow_buttons(self, request, version: ModelVersion) -> list[tuple[str, str]]:
        if not self.has_promote_permission(request):
            return []
        if version.in_shadow:
            return [("leave_shadow", "Leave shadow")]
        if version.status == ModelVersion.Status.CANDIDATE:
            return [("shadow", "Put in shadow")]
        return []

    def shadow_urls(self, own) -> list:
        return [
            own("<int:object_id>/shadow/", self.shadow_view, "shadow", enter=True),
            own("<int:object_id>/leave-shadow/", self.shadow_view, "leave_shadow", enter=False),
        ]

    def shadow_view(self, request, object_id: int, enter: bool):
        if not self.has_promote_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        try:
            if enter:
                shadow.enter(version, request.user)
            else:
                shadow.leave(version, request.user, note="taken out by hand")
        except shadow.ShadowError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, _entered(version) if enter else _left(version))
        return HttpResponseRedirect(
            reverse("admin:classifier_modelversion_change", args=[version.pk])
        )

    @admin.display(description="On live traffic")
    def shadow_figures(self, obj):
        return figures_html(obj)


def _entered(version: ModelVersion) -> str:
    return (
        f"v{version.number} is in shadow: the workers score every new photo with it too, "
        "and route by the active version only. Its figures on live traffic are below."
    )


def _left(version: ModelVersion) -> str:
    return f"v{version.number} left shadow; its figures until now stay on this page."


def status_marker(version: ModelVersion) -> str:
    """ "in shadow since 07-12 01:25" for the list; empty when it is not in shadow."""
    if not version.in_shadow:
        return ""
    return f"in shadow since {timezone.localtime(version.shadow_since):%m-%d %H:%M}"


def figures_html(version: ModelVersion):
    """Agreement with the active version, the ads each would have published alone, and
    both versions' accuracy on what moderators decided since, with the paired test."""
    if version.shadow_since is None:
        return "Never in shadow."
    found = shadow.figures(version)
    when = _period(version, found)
    if found is None:
        return format_html("<p>{}; no photo scored yet.</p>", when)
    a, b = f"v{found.active.number}", f"v{version.number}"
    return format_html(
        "<p>{}, beside {} ({}).</p>{}{}{}",
        when,
        a,
        shadow.cost_said(version, found.active),
        _agreement(found, a),
        _routing(found, a, b),
        _accuracy(found, a, b),
    )


def _period(version: ModelVersion, found) -> str:
    since = f"{timezone.localtime(version.shadow_since):%Y-%m-%d %H:%M}"
    if version.in_shadow:
        return f"In shadow since {since}"
    until = found.until if found is not None else None
    if until is None:
        return f"Was in shadow from {since}"
    return f"Was in shadow from {since} to {timezone.localtime(until):%Y-%m-%d %H:%M}"


def _agreement(found: shadow.Figures, a: str):
    if not found.photos:
        return ""
    return format_html(
        "<p><strong>Agreement with {}</strong> (the same top class): {} of {} photos, {} "
        "(95 % interval).</p>",
        a,
        found.agreed,
        found.photos,
        share(found.agreed, found.photos),
    )


def _routing(found: shadow.Figures, a: str, b: str):
    if not found.ads:
        return ""
    rows = [
        (f"{a} (active): published alone", found.routed_published, found.only_routed_published),
        (
            f"{b} (shadow): would have published alone",
            found.would_published,
            found.only_would_published,
        ),
    ]
    return format_html(
        "<p><strong>Ads routed</strong> since: {} (by the moderation policy's rule, applied "
        "to each version's answers).</p>{}",
        found.ads,
        html_table(["", "ads", "of which the other would not have"], rows),
    )


def _accuracy(found: shadow.Figures, a: str, b: str):
    if not found.rows:
        return mark_safe(
            "<p>No photo scored since was labelled by a moderator yet: accuracy will show "
            "as moderators decide ads.</p>"
        )
    overall = found.rows[0]
    rows = []
    for row in found.rows:
        mine, theirs = found.counts[row.slug]
        rows.append(
            (
                "all" if row.slug == "all" else row.name,
                row.paired.n,
                share(mine.correct, mine.n),
                share(theirs.correct, theirs.n),
                f"{row.paired.p:.3g}",
                row.said(a, b),
            )
        )
    headers = ["category", "photos", f"{a} accuracy", f"{b} accuracy", "p (McNemar, exact)", ""]
    return format_html(
        "<p><strong>On the ads moderators decided since</strong> ({} photos of {}), {} "
        "against {}: {}</p>{}<p>{}</p>",
        overall.paired.n,
        overall.name,
        b,
        a,
        overall.said(a, b),
        html_table(headers, rows),
        "Accuracy with its 95 % interval (Wilson); the verdict from McNemar's exact test on "
        "the photos one version got right and the other wrong.",
    )
