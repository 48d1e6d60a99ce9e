"""System checks: is there a model that can serve?"""

from django.core.checks import Error, Warning, register
from django.db import connection
from django.db.utils import DatabaseError


@register()
def active_model_check(app_configs, **kwargs):
    from .models import ModelVersion
    from .services import ClassifierError, predictor_for

    try:
        if ModelVersion._meta.db_table not in connection.introspection.table_names():
            return []  # not migrated yet: migrate will install the default model
        version = ModelVersion.objects.active()
    except DatabaseError as error:
        return [Warning(f"could not read the model registry: {error}", id="classifier.W002")]
    if version is None:
        return [
            Warning(
                "There is no active model version: every ad will go to human review.",
                hint="Run `manage.py train --activate` or activate a version in the admin.",
                id="classifier.W001",
            )
        ]
    try:
        predictor_for(version)
    except ClassifierError as error:
        return [
            Error(
                f"The active model cannot be loaded: {error}",
                hint="Activate another version in the admin, or retrain.",
                id="classifier.E001",
            )
        ]
    return []
