from django.db import migrations


def install(apps, schema_editor):
    """v5 (v4's recipe on the EfficientNet-Lite1 backbone) becomes the active version where a
    shipped model was; the others stay in the registries that hold them, for rollback."""
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"),
        apps.get_model("classifier", "ModelVersion"),
        apps.get_model("classifier", "ServedBackbone"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0016_prediction_imagenet_labels"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
