from django.db import migrations


def install(apps, schema_editor):
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"), apps.get_model("classifier", "ModelVersion")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0008_backbone_features_and_training_photos"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
