"""Who is who: sellers are plain users, moderators are staff in the Moderators group,
admins are superusers. The group's permissions are granted here, in one place."""

MODERATORS_GROUP = "Moderators"
# The custom permission every decision in the review queue checks.
DECIDE_AD = "moderation.decide_ad"
# Moderators look at ads, photos and predictions, and decide the ads in the review queue.
# They get no permission on the model registry or training data: only admins retrain.
MODERATOR_PERMISSIONS = [
    ("ads", "view_ad"),
    ("ads", "view_adimage"),
    ("ads", "view_category"),
    ("classifier", "view_prediction"),
    ("moderation", "view_reviewitem"),
    ("moderation", "decide_ad"),
    ("moderation", "view_moderationdecision"),
]


def sync_moderators_group(
    group_model, permission_model, permissions: list[tuple[str, str]] = MODERATOR_PERMISSIONS
) -> None:
    """Give the Moderators group exactly ``permissions`` (data migrations pass the list
    as it stood when they were written: later permissions may not exist yet there)."""
    group, _ = group_model.objects.get_or_create(name=MODERATORS_GROUP)
    found = [
        permission_model.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in permissions
    ]
    group.permissions.set(found)
