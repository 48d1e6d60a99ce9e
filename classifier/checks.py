"""System checks: is there a model that can serve?"""

from django.core.checks import CheckMessage, Error, Warning, register
from django.db import connection
from django.db.utils import DatabaseError


def active_model_problem() -> CheckMessage | None:
    """What is wrong with the active model, or None. Through this process's loaded copy,
    which looks at the files again every CLASSIFIER_ARTIFACT_CHECK_SECONDS: a long-running
    process such as the admin's sees a file deleted or replaced since it was first loaded,
    without loading the model again for every page."""
    from .models import ModelVersion
    from .services import ClassifierError, predictor_for
    from .services.artifacts import ArtifactMismatch

    try:
        if ModelVersion._meta.db_table not in connection.introspection.table_names():
            return None  # not migrated yet: migrate will install the default model
        version = ModelVersion.objects.active()
    except DatabaseError as error:
        return Warning(f"could not read the model registry: {error}", id="classifier.W002")
    if version is None:
        return Warning(
            "There is no active model version: every ad will go to human review.",
            hint="Run `manage.py train --activate` or activate a version in the admin.",
            id="classifier.W001",
        )
    try:
        predictor_for(version)
    except ClassifierError as error:
        reason = "model_unverified" if isinstance(error, ArtifactMismatch) else "model_unavailable"
        return Error(
            f"The active model v{version.number} cannot be loaded, so every ad goes to "
            f"human review ({reason}): {error}",
            hint="Activate another version in the admin, or retrain.",
            id="classifier.E001",
        )
    return None


def model_ready() -> None:
    """/readyz's "model": the admin banner's check, through this process's loaded copy
    (looked at again every CLASSIFIER_ARTIFACT_CHECK_SECONDS), not a model loaded per probe."""
    from avito_mod.health.checks import Down

    problem = active_model_problem()
    if problem is not None:
        raise Down(problem.msg)


@register()
def active_model_check(app_configs, **kwargs):
    problem = active_model_problem()
    return [problem] if problem else []
