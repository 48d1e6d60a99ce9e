from django.apps import AppConfig


class AdsConfig(AppConfig):
    name = "ads"
    verbose_name = "Ads"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .api import schema  # noqa: F401  (registers the API docs' extensions)
