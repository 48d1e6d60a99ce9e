from django.db import migrations
from django.utils import timezone


def fail_orphans(apps, schema_editor):
    """Versions left "training" by runs that died: the next migration allows one at most."""
    model_version = apps.get_model("classifier", "ModelVersion")
    model_version.objects.filter(status="training").update(
        status="failed", error="The training run stopped before it finished (found at upgrade)."
    )


class Migration(migrations.Migration):
    dependencies = [("classifier", "0004_training_image_not_product_and_decision")]

    operations = [migrations.RunPython(fail_orphans, migrations.RunPython.noop)]
