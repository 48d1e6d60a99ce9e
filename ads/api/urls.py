from rest_framework.routers import DefaultRouter

from .views import AdViewSet, CategoryViewSet

app_name = "ads"

router = DefaultRouter()
router.register("ads", AdViewSet, basename="ad")
router.register("categories", CategoryViewSet, basename="category")

urlpatterns = router.urls
