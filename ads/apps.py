from django.apps import AppConfig


class AdsConfig(AppConfig):
    name = "ads"
    verbose_name = "Ads"

    def ready(self) -> None:
        from . import checks, schema  # noqa: F401  (register the system checks, API docs)
