from django.contrib.auth.management import create_permissions
from django.db import migrations

# The group's permissions as they stood then; later migrations grant the newer ones.
PERMISSIONS = [
    ("ads", "view_ad"),
    ("ads", "view_adimage"),
    ("ads", "view_category"),
    ("classifier", "view_prediction"),
]


def create_group(apps, schema_editor):
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
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ads", "0002_ad_adimage_ad_ads_ad_status_f0db0f_idx_and_more"),
        ("classifier", "0003_prediction"),
    ]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
