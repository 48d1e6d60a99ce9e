from django.db import migrations


def install(apps, schema_editor):
    """The default categories. The default model arrives with migration 0015, the first
    whose models can hold it (served as heads after a ``ServedBackbone``); v1, which this
    migration registered until it no longer shipped, stays in the registries it is in."""
    from classifier.bootstrap import install_default_categories

    install_default_categories(apps.get_model("ads", "Category"))


class Migration(migrations.Migration):
    dependencies = [
        ("ads", "0001_initial"),
        ("classifier", "0001_initial"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
