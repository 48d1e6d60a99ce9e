from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import TokenView
from avito_mod.metrics.views import metrics
from classifier.views import QuickCheckView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("classifier/", include("classifier.urls")),
    path("api/v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/v1/classify/", QuickCheckView.as_view(), name="quick-check"),
    path("api/v1/", include("ads.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("metrics", metrics, name="metrics"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # The sellers' pages: /, /accounts/…, /ads/…
    path("", include("ads.pages.urls")),
]
