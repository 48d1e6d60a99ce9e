from django.contrib.auth.management import create_permissions
from django.db import migrations

# The group's permissions as of the review queue (see accounts/roles.py).
PERMISSIONS = [
    ("ads", "view_ad"),
    ("ads", "view_adimage"),
    ("ads", "view_category"),
    ("classifier", "view_prediction"),
    ("moderation", "view_reviewitem"),
    ("moderation", "decide_ad"),
    ("moderation", "view_moderationdecision"),
]


def grant(apps, schema_editor):
    from accounts.roles import sync_moderators_group

    # Permissions are normally created after all migrations; the group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    sync_moderators_group(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), PERMISSIONS
    )


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0002_review_queue_and_decisions"),
        ("classifier", "0004_training_image_not_product_and_decision"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
