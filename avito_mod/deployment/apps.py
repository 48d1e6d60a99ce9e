from django.apps import AppConfig


class DeploymentConfig(AppConfig):
    name = "avito_mod.deployment"
    label = "deployment"
    verbose_name = "Deployment"

    def ready(self):
        from . import checks  # noqa: F401 - registers the checks
