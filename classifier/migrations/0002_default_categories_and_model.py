from django.db import migrations


def install(apps, schema_editor):
    from classifier.bootstrap import install_defaults

    install_defaults(apps.get_model("ads", "Category"), apps.get_model("classifier", "ModelVersion"))


class Migration(migrations.Migration):
    dependencies = [
        ("ads", "0001_initial"),
        ("classifier", "0001_initial"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
