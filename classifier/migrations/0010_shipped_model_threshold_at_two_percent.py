from django.db import migrations


def follow_the_shipped_threshold(apps, schema_editor):
    """The shipped v2 decides alone at the threshold of its release (2 % error target)."""
    from classifier.bootstrap import install_shipped_models

    install_shipped_models(
        apps.get_model("ads", "Category"), apps.get_model("classifier", "ModelVersion")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0009_install_pretrained_default_model"),
    ]

    operations = [migrations.RunPython(follow_the_shipped_threshold, migrations.RunPython.noop)]
