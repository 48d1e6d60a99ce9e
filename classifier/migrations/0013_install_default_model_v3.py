from django.db import migrations


def install(apps, schema_editor):
    """v3 (the last block's features beside the head's) becomes the active version where a
    shipped model was; v1 and v2 stay for rollback."""
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"), apps.get_model("classifier", "ModelVersion")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0012_artifact_checksums"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
