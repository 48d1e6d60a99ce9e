from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .models import ModelVersion, Prediction, TrainingImage


@admin.register(TrainingImage)
class TrainingImageAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "category",
        "not_product",
        "source",
        "original_name",
        "size",
        "created_at",
    ]
    list_filter = ["category", "not_product", "source"]
    search_fields = ["original_name", "sha256", "phash"]
    list_select_related = ["category"]
    readonly_fields = [
        "preview",
        "decision",
        "sha256",
        "phash",
        "width",
        "height",
        "file",
        "created_at",
    ]
    fields = ["preview", "category", "not_product", "source", "original_name", *readonly_fields[1:]]
    list_per_page = 50

    def has_add_permission(self, request):
        return False  # images come in through import_images and moderators' decisions

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


def _image_url(obj: TrainingImage) -> str:
    return reverse("classifier:training-image", args=[obj.pk])


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "status",
        "classes_shown",
        "accuracy",
        "threshold_shown",
        "coverage",
        "trained_on",
        "created_at",
        "activated_at",
    ]
    list_filter = ["status"]
    actions = ["activate"]
    readonly_fields = [
        "number",
        "status",
        "classes",
        "input_size",
        "threshold",
        "trained_on",
        "created_at",
        "activated_at",
        "artifact",
        "serving_artifact",
        "error",
        "summary",
        "per_class_table",
        "confusion_table",
        "history_table",
    ]
    exclude = ["metrics", "history"]

    def has_add_permission(self, request):
        return False  # versions are made by training, never by hand

    @admin.display(description="Classes")
    def classes_shown(self, obj):
        return ", ".join(obj.classes)

    @admin.display(description="Validation accuracy")
    def accuracy(self, obj):
        value = obj.metrics.get("accuracy")
        return "—" if value is None else f"{value:.2%}"

    @admin.display(description="Threshold")
    def threshold_shown(self, obj):
        return "—" if obj.threshold is None else f"{obj.threshold:.4f}"

    @admin.display(description="Decides alone")
    def coverage(self, obj):
        value = obj.metrics.get("coverage_at_threshold")
        if value is None:
            return "—"
        return f"{value:.1%} at {obj.metrics.get('error_at_threshold', 0):.2%} error"

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
        if not matrix:
            return "—"
        rows = [(name, *row) for name, row in zip(obj.classes, matrix, strict=True)]
        return _table(["", *obj.classes], rows)

    @admin.display(description="Per-epoch history")
    def history_table(self, obj):
        keys = sorted(obj.history)
        if not keys:
            return "—"
        epochs = len(obj.history[keys[0]])
        rows = [(i + 1, *(f"{obj.history[k][i]:.4f}" for k in keys)) for i in range(epochs)]
        return _table(["epoch", *keys], rows)

    @admin.action(description="Activate the selected version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        try:
            version.activate()
        except ValueError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"Model v{version.number} is now active.", messages.SUCCESS)


def _table(headers, rows):
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


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
