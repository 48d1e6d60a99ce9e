from django.db import migrations


def install(apps, schema_editor):
    """Released with v4 (v3's recipe served as backbone then heads, with the none-of-these
    detector). Since only the default ships, the migration that installs it (v5) on a
    fresh install, and where an earlier shipped model is active."""
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
