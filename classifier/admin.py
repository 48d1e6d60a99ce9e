"""The classifier's admin: training images (the training and evaluation sets, exclusion,
suspected label errors), the model registry (training, progress, evaluation side by side
with the active version, promotion and rollback) and predictions.

Thin: every button and action calls ``classifier.services`` or ``classifier.retraining``.
Buttons are POSTs (CSRF-protected) and check their permission: relabelling and excluding
need ``classifier.change_trainingimage``, training and label checks
``classifier.train_modelversion``, promotion and rollback
``classifier.promote_modelversion``; the Moderators group has none of them.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from . import fairness, plots, retraining, services
from .models import LabelCheck, ModelVersion, ModelVersionEvent, Prediction, TrainingImage

REFRESH_SECONDS = 5


def _post_view(model_admin: admin.ModelAdmin, view):
    return model_admin.admin_site.admin_view(require_POST(view))


def _back(request, url: str) -> HttpResponseRedirect:
    """To ``url`` with the filters the admin had on the page the button was on."""
    filters = QueryDict(request.POST.get("_changelist_filters", ""))
    return HttpResponseRedirect(f"{url}?{filters.urlencode()}" if filters else url)


# --- Training images ----------------------------------------------------------------


class SuspectedFilter(admin.SimpleListFilter):
    title = "suspected label error"
    parameter_name = "suspected"

    def lookups(self, request, model_admin):
        return [("yes", "Suspected"), ("no", "Not suspected")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(suspected_category__isnull=False)
        if self.value() == "no":
            return queryset.filter(suspected_category__isnull=True)
        return queryset


@admin.register(TrainingImage)
class TrainingImageAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "category",
        "suspicion",
        "source",
        "subset",
        "use",
        "original_name",
        "size",
        "labelled_at",
        "fix",
    ]
    list_filter = [SuspectedFilter, "category", "not_product", "source", "subset", "excluded"]
    search_fields = ["original_name", "sha256", "phash"]
    list_select_related = ["category", "suspected_category"]
    readonly_fields = [
        "preview",
        "decision",
        "subset",
        "labelled_at",
        "excluded",
        "excluded_by",
        "excluded_at",
        "exclusion_reason",
        "relabelled_from",
        "relabelled_by",
        "relabelled_at",
        "suspected_category",
        "suspected_confidence",
        "suspected_margin",
        "suspected_at",
        "sha256",
        "phash",
        "width",
        "height",
        "file",
        "created_at",
    ]
    fields = ["preview", "category", "not_product", "source", "original_name", *readonly_fields[1:]]
    actions = ["exclude_selected", "include_selected", "relabel_selected"]
    list_per_page = 50

    def has_add_permission(self, request):
        return False  # images come in through import_images and moderators' decisions

    def get_ordering(self, request):
        if request.GET.get(SuspectedFilter.parameter_name) == "yes":
            return ["-suspected_margin", "-id"]  # the most glaring first
        return super().get_ordering(request)

    def save_model(self, request, obj, form, change):
        # A label changed by hand is an admin's relabel: say who and from what.
        if change and "category" in form.changed_data and obj.category_id:
            obj.relabelled_from_id = form.initial.get("category")
            obj.relabelled_by, obj.relabelled_at = request.user, timezone.now()
            obj.labelled_at = obj.relabelled_at
            obj.clear_suspicion(save=False)
        super().save_model(request, obj, form, change)

    # --- Columns

    @admin.display(description="Photo")
    def thumbnail(self, obj):
        return format_html(
            '<img src="{}" alt="" style="max-height:60px;max-width:80px">', _image_url(obj)
        )

    @admin.display(description="Photo")
    def preview(self, obj):
        return format_html('<img src="{}" alt="" style="max-width:320px">', _image_url(obj))

    @admin.display(description="Size")
    def size(self, obj):
        return f"{obj.width}×{obj.height}"

    @admin.display(description="Looks like", ordering="-suspected_margin")
    def suspicion(self, obj):
        if obj.suspected_category_id is None:
            return "—"
        return f"{obj.suspected_category} ({obj.suspected_confidence:.0%})"

    @admin.display(description="Used", ordering="excluded")
    def use(self, obj):
        if obj.excluded:
            return format_html("excluded<br><small>{}</small>", obj.exclusion_reason)
        return "yes"

    @admin.display(description="Fix")
    def fix(self, obj):
        if obj.suspected_category_id is None or obj.excluded or not getattr(obj, "can_fix", 0):
            return ""
        form = f"fix-{obj.pk}"
        return format_html(
            '<button type="submit" class="button" form="{}" formaction="{}">Relabel as {}'
            '</button> <button type="submit" class="button" form="{}" formaction="{}">'
            "Exclude</button>",
            form,
            reverse("admin:classifier_trainingimage_relabel", args=[obj.pk]),
            obj.suspected_category,
            form,
            reverse("admin:classifier_trainingimage_exclude", args=[obj.pk]),
        )

    # --- The page: the per-category summary, the label check, one-click fixes

    def changelist_view(self, request, extra_context=None):
        check = LabelCheck.objects.first()
        context = {
            "summary": services.training_set_summary(),
            "active_version": ModelVersion.objects.active(),
            "label_check": check,
            "can_check_labels": request.user.has_perm(retraining.TRAIN),
            "refresh_seconds": REFRESH_SECONDS if _running(check) else None,
        }
        response = super().changelist_view(request, context | (extra_context or {}))
        if hasattr(response, "context_data") and "cl" in response.context_data:
            can_fix = self.has_change_permission(request)
            for image in response.context_data["cl"].result_list:
                image.can_fix = can_fix
        return response

    def get_urls(self):
        own = [
            path(
                "<int:object_id>/relabel-suspected/",
                _post_view(self, self.relabel_view),
                name="classifier_trainingimage_relabel",
            ),
            path(
                "<int:object_id>/exclude/",
                _post_view(self, self.exclude_view),
                name="classifier_trainingimage_exclude",
            ),
            path(
                "check-labels/",
                _post_view(self, self.check_labels_view),
                name="classifier_trainingimage_check_labels",
            ),
        ]
        return own + super().get_urls()

    def _changelist(self, request) -> HttpResponseRedirect:
        return _back(request, reverse("admin:classifier_trainingimage_changelist"))

    def relabel_view(self, request, object_id: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        image = get_object_or_404(TrainingImage, pk=object_id)
        self._relabel(request, [image])
        return self._changelist(request)

    def exclude_view(self, request, object_id: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        image = get_object_or_404(TrainingImage, pk=object_id)
        self._exclude(request, [image])
        return self._changelist(request)

    def check_labels_view(self, request):
        if not request.user.has_perm(retraining.TRAIN):
            raise PermissionDenied
        try:
            check = retraining.request_label_check(request.user)
        except services.ClassifierError as error:
            self.message_user(request, f"Nothing started: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{check} is queued on the training worker ({check.folds} trainings); the "
                "suspected label errors will be listed here when it is done.",
                messages.SUCCESS,
            )
        return self._changelist(request)

    @admin.action(description="Exclude from training and evaluation", permissions=["change"])
    def exclude_selected(self, request, queryset):
        self._exclude(request, list(queryset))

    @admin.action(description="Include again", permissions=["change"])
    def include_selected(self, request, queryset):
        count = services.include_images(list(queryset))
        self.message_user(request, f"{count} images included again.", messages.SUCCESS)

    @admin.action(description="Relabel as the suspected category", permissions=["change"])
    def relabel_selected(self, request, queryset):
        self._relabel(request, list(queryset.select_related("category", "suspected_category")))

    def _relabel(self, request, images):
        relabelled = services.relabel_as_suspected(images, request.user)
        if not relabelled:
            self.message_user(
                request, "No suspected label among them; nothing done.", messages.ERROR
            )
            return
        said = ", ".join(
            f"{image} (was {image.relabelled_from.slug if image.relabelled_from else '—'})"
            for image in relabelled
        )
        self.message_user(request, f"Relabelled: {said}.", messages.SUCCESS)

    def _exclude(self, request, images):
        reason = "suspected label error" if any(i.suspected_category_id for i in images) else ""
        count = services.exclude_images(images, request.user, reason or f"by {request.user}")
        self.message_user(request, f"{count} images excluded from training.", messages.SUCCESS)


def _image_url(obj: TrainingImage) -> str:
    return reverse("classifier:training-image", args=[obj.pk])


def _running(item) -> bool:
    return item is not None and item.status in (
        ModelVersion.Status.TRAINING,
        LabelCheck.Status.RUNNING,
    )


# --- The model registry ------------------------------------------------------------


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "status_shown",
        "classes_shown",
        "accuracy",
        "evaluation_accuracy",
        "threshold_shown",
        "coverage",
        "trained_on",
        "created_at",
        "activated_at",
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
        "training_curves",
        "summary",
        "per_class_table",
        "confusion_table",
        "history_table",
        "events_table",
        "artifact",
        "serving_artifact",
    ]
    fieldsets = [
        (None, {"fields": readonly_fields[:14]}),
        (
            "On the evaluation set, next to the active version",
            {"fields": ["evaluation_comparison"]},
        ),
        ("Training curves", {"fields": ["training_curves"]}),
        (
            "Validation split (chosen by training, used for the threshold)",
            {
                "fields": ["summary", "per_class_table", "confusion_table", "history_table"],
                "classes": ["collapse"],
            },
        ),
        ("Promotions and rollbacks", {"fields": ["events_table"]}),
        ("Artifacts", {"fields": ["artifact", "serving_artifact"]}),
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
        return obj.get_status_display()

    @admin.display(description="Classes")
    def classes_shown(self, obj):
        return ", ".join(obj.classes)

    @admin.display(description="Validation accuracy")
    def accuracy(self, obj):
        value = obj.metrics.get("accuracy")
        return "—" if value is None else f"{value:.2%}"

    @admin.display(description="Evaluation set accuracy")
    def evaluation_accuracy(self, obj):
        value = obj.evaluation.get("accuracy")
        if value is None:
            return "—"
        seen = fairness.seen_in_training(obj)
        said = f"{value:.2%} (n={obj.evaluation['n']})"
        return said if seen.fair else format_html("{}<br><small>{}</small>", said, seen)

    @admin.display(description="Threshold")
    def threshold_shown(self, obj):
        return "—" if obj.threshold is None else f"{obj.threshold:.4f}"

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
            return f"Trained in {timesince(obj.started_at, obj.finished_at)}."
        return "—"

    @admin.display(description="Summary")
    def summary(self, obj):
        m = obj.metrics
        if not m:
            return "—"
        rows = [
            ("Validation images", m.get("n")),
            ("Training images", m.get("train_size")),
            ("Class counts", m.get("class_counts")),
            ("Epochs run", m.get("epochs_run")),
            ("Training time (s)", m.get("training_seconds")),
            ("Parameters", m.get("parameters")),
            ("Serving agrees with Keras", m.get("serving_agreement")),
            ("Target error", m.get("target_risk")),
            ("Frameworks", m.get("versions")),
        ]
        return _table(["", ""], rows)

    @admin.display(description="Per class")
    def per_class_table(self, obj):
        per_class = obj.metrics.get("per_class", {})
        rows = [
            (name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", s["support"])
            for name, s in per_class.items()
        ]
        return _table(["class", "precision", "recall", "F1", "n"], rows) if rows else "—"

    @admin.display(description="Confusion matrix (rows true, columns predicted)")
    def confusion_table(self, obj):
        matrix = obj.metrics.get("confusion_matrix")
        return plots.confusion_table(matrix, obj.classes) if matrix else "—"

    @admin.display(description="Per-epoch history")
    def history_table(self, obj):
        keys = sorted(obj.history)
        if not keys:
            return "—"
        epochs = len(obj.history[keys[0]])
        rows = [(i + 1, *(f"{obj.history[k][i]:.4f}" for k in keys)) for i in range(epochs)]
        return _table(["epoch", *keys], rows)

    @admin.display(description="Loss and accuracy per epoch")
    def training_curves(self, obj):
        return plots.training_curves(obj.history) if obj.history else "—"

    @admin.display(description="Evaluation")
    def evaluation_comparison(self, obj):
        active = ModelVersion.objects.active()
        shown = [(f"v{obj.number} (this version)", obj, plots.CANDIDATE)]
        if active is not None and active.pk != obj.pk:
            shown.append((f"v{active.number} (active)", active, plots.ACTIVE))
        return _comparison(shown)

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
            )
            for e in events.select_related("version", "previous", "user")
        ]
        headers = ["when", "what", "from", "to", "by", "ads re-scored", "note"]
        return _table(headers, rows) if rows else "—"

    # --- Buttons: train (list page); promote, roll back, cancel, evaluate (version page)

    def changelist_view(self, request, extra_context=None):
        training = ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).first()
        context = {
            "can_train": self.has_train_permission(request) and training is None,
            "training_version": training,
            "refresh_seconds": REFRESH_SECONDS if training else None,
        }
        return super().changelist_view(request, context | (extra_context or {}))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        context = {}
        if version is not None:
            context = {
                "version_buttons": self._buttons(request, version),
                "refresh_seconds": REFRESH_SECONDS if _running(version) else None,
            }
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
        return [
            (reverse(f"admin:classifier_modelversion_{name}", args=[version.pk]), label)
            for name, label in offered
        ]

    def get_urls(self):
        def own(route, view, name, **kwargs):
            return path(
                route, _post_view(self, view), kwargs, name=f"classifier_modelversion_{name}"
            )

        return [
            own("train/", self.train_view, "train"),
            own("<int:object_id>/promote/", self.switch_view, "promote", action="promote"),
            own("<int:object_id>/rollback/", self.switch_view, "rollback", action="rollback"),
            own("<int:object_id>/cancel/", self.cancel_view, "cancel"),
            own("<int:object_id>/evaluate/", self.evaluate_view, "evaluate"),
        ] + super().get_urls()

    def _page(self, version: ModelVersion) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:classifier_modelversion_change", args=[version.pk])
        )

    def train_view(self, request):
        if not self.has_train_permission(request):
            raise PermissionDenied
        try:
            version = retraining.request_training(request.user)
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
        self._switch(request, version, action)
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

    def _switch(self, request, version: ModelVersion, action: str) -> None:
        switch = retraining.promote if action == "promote" else retraining.roll_back
        try:
            event = switch(version, request.user)
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


def _progress(version: ModelVersion):
    p = version.progress
    said = services.describe_training(version)
    loss = f" · loss {p['loss']:.4f}" if "loss" in p else ""
    updated = ""
    if version.heartbeat_at:
        updated = f" · last report {timesince(version.heartbeat_at, depth=1)} ago"
    return format_html(
        "{}{}{}<br>{}", said, loss, updated, plots.progress_bar(p.get("fraction", 0.0))
    )


def _comparison(shown: list[tuple[str, ModelVersion, str]]):
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
        "{}{}<div>{}</div>{}",
        format_html_join("", "<p>{}</p>", ((n,) for n in notes if n)),
        _figures_table(measured),
        matrices,
        plots.coverage_risk_chart(measured),
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
    return _table(["", *(label for label, _, _ in measured)], rows)


def _precision_recall(scores: dict | None) -> str:
    if not scores:
        return "—"
    return f"{scores['precision']:.3f} / {scores['recall']:.3f} (n={scores['support']})"


def _table(headers, rows):
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


@admin.register(ModelVersionEvent)
class ModelVersionEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "version", "action", "previous", "user", "rescored_ads", "note"]
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


@admin.register(LabelCheck)
class LabelCheckAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "status",
        "folds",
        "epochs",
        "checked",
        "flagged",
        "requested_by",
        "finished_at",
        "error",
    ]
    list_filter = ["status"]
    fields = [*list_display, "thresholds", "progress"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # started from the training images page or find_label_errors

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["image_link", "category", "confidence_shown", "model_version", "created_at"]
    list_filter = ["category", "model_version"]
    search_fields = ["image__ad__title"]
    list_select_related = ["image__ad", "model_version"]

    def has_add_permission(self, request):
        return False  # predictions are made by the model only

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Photo")
    def image_link(self, obj):
        url = reverse("admin:ads_ad_change", args=[obj.image.ad_id])
        return format_html('<a href="{}">{}</a>', url, obj.image)

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_shown(self, obj):
        return f"{obj.confidence:.1%}"
