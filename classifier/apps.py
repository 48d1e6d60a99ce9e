from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self) -> None:
        from avito_mod.health.checks import register

        from . import checks, schema  # noqa: F401  (register the system checks, API docs)

        register("model", checks.model_ready)
