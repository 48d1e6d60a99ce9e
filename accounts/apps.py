from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .limits import forget_failures_on_sign_in

        user_logged_in.connect(forget_failures_on_sign_in, dispatch_uid="accounts-forget-failures")
