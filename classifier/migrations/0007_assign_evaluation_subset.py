from django.conf import settings
from django.db import migrations
from django.db.models import F, OuterRef, Subquery


def assign(apps, schema_editor):
    """Hold out the existing training images as new ones are (classifier.services)."""
    from classifier.ml.split import assign_held_out

    training_image = apps.get_model("classifier", "TrainingImage")
    rows = list(training_image.objects.order_by("id").values_list("id", "sha256", "phash"))
    held_out = assign_held_out(
        [(sha256, int(phash, 16)) for _, sha256, phash in rows],
        [],
        [],
        settings.CLASSIFIER_EVALUATION_PERCENT,
    )
    evaluation = [pk for (pk, _, _), out in zip(rows, held_out, strict=True) if out]
    for start in range(0, len(evaluation), 500):
        chunk = evaluation[start : start + 500]
        training_image.objects.filter(pk__in=chunk).update(subset="evaluation")
    decision = apps.get_model("moderation", "ModerationDecision")
    decided_at = decision.objects.filter(pk=OuterRef("decision_id")).values("created_at")[:1]
    training_image.objects.filter(decision__isnull=False).update(labelled_at=Subquery(decided_at))
    training_image.objects.filter(decision__isnull=True).update(labelled_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("classifier", "0006_retraining_evaluation_set_and_registry_events")]

    operations = [migrations.RunPython(assign, migrations.RunPython.noop)]
