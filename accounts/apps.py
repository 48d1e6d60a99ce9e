from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .limits import signed_in_with_password

        user_logged_in.connect(signed_in_with_password, dispatch_uid="accounts-signed-in")
