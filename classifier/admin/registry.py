"""The model registry: training a version and its progress, promotion and rollback, shadow
mode (``shadow``), the events that record them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from avito_mod import charts

from .. import services
from ..models import ModelVersion, ModelVersionEvent
from ..services import fairness, retraining, shipped
from .common import REFRESH_SECONDS, is_running, post_view
from .comparison import comparison_of, html_table, share
from .evidence import states_table
from .shadow import ShadowButtons, status_marker


@admin.register(ModelVersion)
class ModelVersionAdmin(ShadowButtons, admin.ModelAdmin):
    # What tells versions apart, in a list that fits a 1366 px screen beside its filter
    # (without the admin's navigation sidebar); the classes, the threshold and when it was
    # activated are on the version's page.
    list_display = [
        "number",
        "status_shown",
        "accuracy",
        "evaluation_accuracy",
        "coverage",
        "trained_on",
        "created",
    ]
    list_filter = ["status"]
    actions = ["promote_selected", "roll_back_selected", "evaluate_selected"]
    readonly_fields = [
        "number",
        "status",
        "training_progress",
        "error",
        "classes",
        "input_size",
        "threshold",
        "trained_on",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "data_as_of",
        "activated_at",
        "evaluation_comparison",
        "shadow_figures",
        "category_states",
        "training_curves",
        "summary",
        "per_class_table",
        "confusion_table",
        "history_table",
        "events_table",
        "artifact",
        "artifact_sha256",
        "serving_artifact",
        "serving_artifact_sha256",
        "served_backbone",
    ]
    fieldsets = [
        (None, {"fields": readonly_fields[:14]}),
        (
            "On the evaluation set, next to the active version",
            {"fields": ["evaluation_comparison"]},
        ),
        ("In shadow: on live traffic, next to the active version", {"fields": ["shadow_figures"]}),
        ("Which categories it would publish alone", {"fields": ["category_states"]}),
        ("Training curves", {"fields": ["training_curves"]}),
        (
            "Validation split (chosen by training, used for the threshold)",
            {
                "fields": ["summary", "per_class_table", "confusion_table", "history_table"],
                "classes": ["collapse"],
            },
        ),
        ("Promotions, rollbacks and shadow", {"fields": ["events_table"]}),
        (
            "Artifacts (each file is verified against its SHA-256 whenever it is loaded)",
            {
                "fields": [
                    "artifact",
                    "artifact_sha256",
                    "serving_artifact",
                    "serving_artifact_sha256",
                    "served_backbone",
                ]
            },
        ),
    ]

    def has_add_permission(self, request):
        return False  # versions are made by training, never by hand

    def has_train_permission(self, request) -> bool:
        return request.user.has_perm(retraining.TRAIN)

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm(retraining.PROMOTE)

    # --- Columns

    @admin.display(description="Status", ordering="status")
    def status_shown(self, obj):
        if obj.status == ModelVersion.Status.TRAINING:
            return _progress(obj)
        if obj.status == ModelVersion.Status.FAILED:
            return format_html("Failed<br><small>{}</small>", obj.error[:120])
        if marker := status_marker(obj):
            return format_html("{}<br><strong>{}</strong>", obj.get_status_display(), marker)
        return obj.get_status_display()

    @admin.display(description="Validation accuracy")
    def accuracy(self, obj):
        value = obj.metrics.get("accuracy")
        return "—" if value is None else f"{value:.2%}"

    @admin.display(description="Evaluation set accuracy (95 %)")
    def evaluation_accuracy(self, obj):
        value, n = obj.evaluation.get("accuracy"), obj.evaluation.get("n")
        if value is None or not n:
            return "—"
        seen = fairness.seen_in_training(obj)
        said = f"{share(round(value * n), n)}, n={n}"
        return said if seen.fair else format_html("{}<br><small>{}</small>", said, seen)

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj):
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="Decides alone")
    def coverage(self, obj):
        value = obj.metrics.get("coverage_at_threshold")
        if value is None:
            return "—"
        return f"{value:.1%} at {obj.metrics.get('error_at_threshold', 0):.2%} error"

    @admin.display(description="Progress")
    def training_progress(self, obj):
        if obj.status == ModelVersion.Status.TRAINING:
            return _progress(obj)
        if obj.finished_at and obj.started_at:
            return f"Trained in {duration(obj.started_at, obj.finished_at)}."
        return "—"

    @admin.display(description="Categories")
    def category_states(self, obj):
        return states_table(obj) if obj.is_usable else "—"

    @admin.display(description="Summary")
    def summary(self, obj):
        m = obj.metrics
        if not m:
            return "—"
        rows = [
            ("Validation images", m.get("n")),
            ("Training images", m.get("train_size")),
            ("… of which", shipped.sources_said(m.get("trained_on_sources"), obj)),
            ("Evaluation photos", shipped.sources_said(obj.evaluation.get("sources"), obj)),
            ("Class counts", _counts(m.get("class_counts"), obj.classes)),
            ("Epochs run", m.get("epochs_run")),
            ("Training time (s)", m.get("training_seconds")),
            ("Parameters", m.get("parameters")),
            ("Serving agrees with Keras", m.get("serving_agreement")),
            ("Target error", m.get("target_risk")),
            ("Frameworks", m.get("versions")),
        ]
        return html_table(["", ""], rows)

    @admin.display(description="Per class")
    def per_class_table(self, obj):
        per_class = obj.metrics.get("per_class", {})
        rows = [
            (name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", s["support"])
            for name in obj.classes  # in the version's order, not the JSON field's
            if (s := per_class.get(name))
        ]
        return html_table(["class", "precision", "recall", "F1", "n"], rows) if rows else "—"

    @admin.display(description="Confusion matrix (rows true, columns predicted)")
    def confusion_table(self, obj):
        matrix = obj.metrics.get("confusion_matrix")
        return charts.confusion_table(matrix, obj.classes) if matrix else "—"

    @admin.display(description="Per-epoch history")
    def history_table(self, obj):
        keys = sorted(obj.history)
        if not keys:
            return "—"
        epochs = len(obj.history[keys[0]])
        rows = [(i + 1, *(f"{obj.history[k][i]:.4f}" for k in keys)) for i in range(epochs)]
        return html_table(["epoch", *keys], rows)

    @admin.display(description="Loss and accuracy per epoch")
    def training_curves(self, obj):
        return charts.training_curves(obj.history) if obj.history else "—"

    @admin.display(description="Evaluation")
    def evaluation_comparison(self, obj):
        active = ModelVersion.objects.active()
        shown = [(f"v{obj.number} (this version)", obj, charts.CANDIDATE)]
        if active is not None and active.pk != obj.pk:
            shown.append((f"v{active.number} (active)", active, charts.ACTIVE))
        return comparison_of(shown)

    @admin.display(description="History")
    def events_table(self, obj):
        events = ModelVersionEvent.objects.filter(version=obj) | ModelVersionEvent.objects.filter(
            previous=obj
        )
        rows = [
            (
                f"{timezone.localtime(e.created_at):%Y-%m-%d %H:%M}",
                e.get_action_display(),
                f"v{e.previous.number}" if e.previous else "—",
                f"v{e.version.number}",
                e.user or "automatic",
                e.rescored_ads,
                e.note,
                _override(e),
            )
            for e in events.select_related("version", "previous", "user")
        ]
        headers = ["when", "what", "from", "to", "by", "ads re-scored", "note", "guard"]
        return html_table(headers, rows) if rows else "—"

    # --- Buttons: train (list page); promote, roll back, cancel, evaluate (version page)

    def changelist_view(self, request, extra_context=None):
        training = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).first()
        context = {
            "can_train": self.has_train_permission(request) and training is None,
            "shipped_photos": shipped.summary(),
            "too_few": [row for row in services.photos_per_category() if row.too_few],
            "training_version": training,
            "refresh_seconds": REFRESH_SECONDS if training else None,
            # The navigation sidebar would squeeze the list into a sideways-scrolling box.
            "is_nav_sidebar_enabled": False,
        }
        active = ModelVersion.objects.active()
        if active is not None:
            context |= {"active_version": active, "category_states": states_table(active)}
        return super().changelist_view(request, context | (extra_context or {}))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        context = {}
        if version is not None:
            context = {
                "version_buttons": self._buttons(request, version),
                "refresh_seconds": REFRESH_SECONDS if is_running(version) else None,
            }
            if version.status == ModelVersion.Status.CANDIDATE and self.has_promote_permission(
                request
            ):
                context["promotion_refused"] = retraining.promotion_guard(version)
        return super().change_view(request, object_id, form_url, context | (extra_context or {}))

    def _buttons(self, request, version: ModelVersion) -> list[tuple[str, str]]:
        Status = ModelVersion.Status
        offered = []
        if self.has_promote_permission(request):
            if version.status == Status.CANDIDATE:
                offered.append(("promote", "Promote to active"))
            if version.status == Status.RETIRED:
                offered.append(("rollback", "Roll back to this version"))
        if self.has_train_permission(request):
            if version.status == Status.TRAINING:
                offered.append(("cancel", "Cancel training"))
            if version.is_usable:
                offered.append(("evaluate", "Evaluate on the evaluation set"))
        offered += self.shadow_buttons(request, version)
        return [
            (reverse(f"admin:classifier_modelversion_{name}", args=[version.pk]), label)
            for name, label in offered
        ]

    def get_urls(self):
        def own(route, view, name, **kwargs):
            return path(
                route, post_view(self, view), kwargs, name=f"classifier_modelversion_{name}"
            )

        return [
            own("train/", self.train_view, "train"),
            own("<int:object_id>/promote/", self.switch_view, "promote", action="promote"),
            own("<int:object_id>/rollback/", self.switch_view, "rollback", action="rollback"),
            own("<int:object_id>/cancel/", self.cancel_view, "cancel"),
            own("<int:object_id>/evaluate/", self.evaluate_view, "evaluate"),
            *self.shadow_urls(own),
        ] + super().get_urls()

    def _page(self, version: ModelVersion) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:classifier_modelversion_change", args=[version.pk])
        )

    def train_view(self, request):
        if not self.has_train_permission(request):
            raise PermissionDenied
        try:
            with_shipped = request.POST.get("without_shipped") != "on"
            version = retraining.request_training(request.user, with_shipped=with_shipped)
        except services.ClassifierError as error:
            self.message_user(request, f"Nothing started: {error}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:classifier_modelversion_changelist"))
        self.message_user(
            request,
            f"v{version.number} is queued on the training worker; this page shows its "
            "progress and, when it is done, its figures next to the active version's.",
            messages.SUCCESS,
        )
        return self._page(version)

    def switch_view(self, request, object_id: int, action: str):
        if not self.has_promote_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        self._switch(request, version, action, request.POST.get("override_reason"))
        return self._page(version)

    def cancel_view(self, request, object_id: int):
        if not self.has_train_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        try:
            retraining.cancel_training(version, request.user)
        except services.ClassifierError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, f"v{version.number}: training cancelled.", messages.SUCCESS)
        return self._page(version)

    def evaluate_view(self, request, object_id: int):
        if not self.has_train_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=object_id)
        self._evaluate(request, [version])
        return self._page(version)

    @admin.action(description="Promote the selected candidate to active", permissions=["promote"])
    def promote_selected(self, request, queryset):
        if self._one(request, queryset):
            self._switch(request, queryset.get(), "promote")

    @admin.action(description="Roll back to the selected version", permissions=["promote"])
    def roll_back_selected(self, request, queryset):
        if self._one(request, queryset):
            self._switch(request, queryset.get(), "rollback")

    @admin.action(
        description="Evaluate on the evaluation set (and the active version)",
        permissions=["train"],
    )
    def evaluate_selected(self, request, queryset):
        self._evaluate(request, list(queryset))

    def _one(self, request, queryset) -> bool:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return False
        return True

    def _switch(self, request, version: ModelVersion, action: str, reason=None) -> None:
        try:
            if action == "promote":
                event = retraining.promote(version, request.user, override_reason=reason)
            else:
                event = retraining.roll_back(version, request.user)
        except services.ClassifierError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        was = f" (was v{event.previous.number})" if event.previous else ""
        self.message_user(
            request,
            f"Model v{version.number} is now active{was}; {event.rescored_ads} ads in review "
            "sent back to be classified by it.",
            messages.SUCCESS,
        )

    def _evaluate(self, request, versions: list[ModelVersion]) -> None:
        active = ModelVersion.objects.active()
        for version in {v.pk: v for v in [*versions, *filter(None, [active])]}.values():
            if not version.is_usable:
                continue
            try:
                report = services.measure_on_evaluation_set(version)
            except services.ClassifierError as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            said = f"{report['accuracy']:.2%} accuracy" if report["n"] else "no photos"
            self.message_user(
                request,
                f"v{version.number} on {report['n']} evaluation photos: {said}.",
                messages.SUCCESS,
            )


def duration(start, end) -> str:
    """ "51 s" under a minute ("0 minutes" said nothing), else "3 minutes" and the like."""
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.0f} s"
    return timesince(start, end)


def _override(event: ModelVersionEvent):
    if not event.refused:
        return "—"
    return format_html(
        "refused: {}<br><strong>overridden because:</strong> {}",
        event.refused,
        event.override_reason,
    )


def _counts(counts: dict[str, int] | None, classes: list[str]) -> str | None:
    """Photos per class in the version's order, e.g. "camera 40 · laptop 52" (a JSON
    field keeps its keys in an order of its own)."""
    if not counts:
        return None
    return " · ".join(f"{name} {counts[name]}" for name in classes if name in counts)


def _progress(version: ModelVersion):
    p = version.progress
    said = services.describe_training(version)
    loss = f" · loss {p['loss']:.4f}" if "loss" in p else ""
    updated = ""
    if version.heartbeat_at:
        updated = f" · last report {timesince(version.heartbeat_at, depth=1)} ago"
    return format_html(
        "{}{}{}<br>{}", said, loss, updated, charts.progress_bar(p.get("fraction", 0.0))
    )


@admin.register(ModelVersionEvent)
class ModelVersionEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "version",
        "action",
        "previous",
        "user",
        "rescored_ads",
        "note",
        "refused",
        "override_reason",
    ]
    list_filter = ["action"]
    list_select_related = ["version", "previous", "user"]
    fields = list_display
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False  # recorded by promotion and rollback

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail of what served when
