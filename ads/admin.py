from django.contrib import admin
from django.contrib.admin.options import IS_POPUP_VAR
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import Ad, AdImage, Category


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    """Admins add and deactivate categories here (``Category`` says what deactivating
    does); a category's page links to the classifier's "Add example photos"."""

    list_display = ["name", "slug", "active"]
    list_filter = ["active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def response_add(self, request, obj, post_url_continue=None):
        # A new category is learnt from example photos: go on to adding them.
        other_button = {"_addanother", "_continue", IS_POPUP_VAR} & set(request.POST)
        if request.user.has_perm("classifier.add_trainingimage") and not other_button:
            self.message_user(request, f"Category “{obj}” added; now add example photos of it.")
            url = reverse("admin:classifier_trainingimage_add_photos")
            return HttpResponseRedirect(f"{url}?category={obj.pk}")
        return super().response_add(request, obj, post_url_continue)


def photo_url(image: AdImage) -> str:
    # Through the permission-checked view: ad photos have no public media URL.
    return reverse("ads:ad-photo", args=[image.ad_id, image.pk])


def _thumbnail(image: AdImage, size: int = 80):
    return format_html(
        '<img src="{}" alt="" style="max-height:{}px;max-width:{}px">',
        photo_url(image),
        size,
        size,
    )


def _prediction(image: AdImage) -> str:
    prediction = image.latest_prediction()
    if prediction is None:
        return "—"
    return f"{prediction.category} {prediction.confidence:.2f} (v{prediction.model_version.number})"


class PhotoColumns:
    """Columns shown for a photo wherever photos are listed."""

    thumbnail_size = 80

    @admin.display(description="Photo")
    def thumbnail(self, image: AdImage):
        return _thumbnail(image, self.thumbnail_size)

    @admin.display(description="Size")
    def size(self, image: AdImage) -> str:
        return f"{image.width}×{image.height}"

    @admin.display(description="Latest prediction")
    def prediction(self, image: AdImage) -> str:
        return _prediction(image)


class AdImageInline(PhotoColumns, admin.TabularInline):
    model = AdImage
    fields = ["thumbnail", "position", "size", "prediction", "original_name", "sha256", "phash"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("predictions__model_version")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # photos arrive through the seller's upload, validated by content


@admin.register(Ad)
class AdAdmin(admin.ModelAdmin):
    list_display = ["title", "seller", "category", "status", "review_reason", "created_at"]
    list_filter = ["status", "review_reason", "rejection_reason", "category"]
    search_fields = ["title", "seller__username"]
    list_select_related = ["seller", "category"]
    date_hierarchy = "created_at"
    inlines = [AdImageInline]  # moderation adds the ad's decisions (moderation.admin)
    # Status changes go through the review queue, where each decision is recorded.
    readonly_fields = [
        "seller",
        "title",
        "description",
        "price",
        "category",
        "status",
        "review_reason",
        "suggested_category",
        "created_at",
        "updated_at",
        "decided_at",
        "classification_requested_at",
        "rejection_reason",
        "rejection_note",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def has_add_permission(self, request) -> bool:
        return False  # ads come in through the seller API, which validates the photos

    def delete_model(self, request, obj: Ad) -> None:
        services.delete_ad(obj)  # removes the photo files too

    def delete_queryset(self, request, queryset) -> None:
        for ad in queryset:
            services.delete_ad(ad)


@admin.register(AdImage)
class AdImageAdmin(PhotoColumns, admin.ModelAdmin):
    thumbnail_size = 60
    list_display = ["thumbnail", "ad", "position", "size", "prediction", "original_name"]
    list_select_related = ["ad"]
    search_fields = ["ad__title", "original_name", "sha256", "phash"]
    fields = [
        "preview",
        "ad",
        "position",
        "width",
        "height",
        "original_name",
        "sha256",
        "phash",
        "prediction",
    ]
    readonly_fields = fields
    list_per_page = 50

    def get_queryset(self, request):
        visible = Ad.objects.visible_to(request.user)
        return (
            super()
            .get_queryset(request)
            .filter(ad__in=visible)
            .prefetch_related("predictions__model_version")
        )

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: AdImage) -> None:
        services.delete_photos([obj])  # removes the file too

    def delete_queryset(self, request, queryset) -> None:
        services.delete_photos(queryset)

    @admin.display(description="Photo")
    def preview(self, image: AdImage):
        return _thumbnail(image, 480)
