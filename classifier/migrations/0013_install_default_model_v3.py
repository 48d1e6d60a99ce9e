from django.db import migrations


def install(apps, schema_editor):
    """Released with v3 (the last block's features beside the head's), which became the
    active version where a shipped model was. Since only the default ships, it brings the
    registered shipped models up to their release (``classifier.bootstrap``)."""
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"), apps.get_model("classifier", "ModelVersion")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0012_artifact_checksums"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
