from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.authtoken import serializers as authtoken


def _username_length() -> int:
    model = get_user_model()
    return model._meta.get_field(model.USERNAME_FIELD).max_length


# DRF's, with the username capped as the sign-in forms cap it: no account has a longer one,
# and each failure is recorded with the name tried. (Same name: the same API schema.)
class AuthTokenSerializer(authtoken.AuthTokenSerializer):
    """The API's sign-in: a username and its password in, the account's token out."""

    username = serializers.CharField(
        label="Username", write_only=True, max_length=_username_length()
    )
