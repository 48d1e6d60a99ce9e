from django.db import migrations


def install(apps, schema_editor):
    """v4 (v3's recipe served as backbone then heads, with the none-of-these detector)
    becomes the active version where a shipped model was; the others stay for rollback."""
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"),
        apps.get_model("classifier", "ModelVersion"),
        apps.get_model("classifier", "ServedBackbone"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0014_none_of_these"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
