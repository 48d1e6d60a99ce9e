"""Who is who: sellers are plain users, moderators are staff in the Moderators group,
admins are superusers. The group's permissions are granted here, in one place."""

MODERATORS_GROUP = "Moderators"
# Moderators look at ads, photos and predictions; deciding arrives with the review queue.
# They get no permission on the model registry or training data: only admins retrain.
MODERATOR_PERMISSIONS = [
    ("ads", "view_ad"),
    ("ads", "view_adimage"),
    ("ads", "view_category"),
    ("classifier", "view_prediction"),
]


def sync_moderators_group(group_model, permission_model) -> None:
    group, _ = group_model.objects.get_or_create(name=MODERATORS_GROUP)
    permissions = [
        permission_model.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in MODERATOR_PERMISSIONS
    ]
    group.permissions.set(permissions)
