from django.conf import settings
from django.db import models
from django.utils import timezone


class KnownSignIn(models.Model):
    """An address (an IPv6 client's /64) an account signed in from with its password: its
    owner's. Sign-ins from it are not refused by the account's guess budget
    (``accounts.guesses``), which guesses from elsewhere may have used up."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    address = models.GenericIPAddressField()
    last_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "known sign-in address"
        constraints = [
            models.UniqueConstraint(fields=["user", "address"], name="one_row_per_known_address")
        ]

    def __str__(self) -> str:
        return f"{self.user} from {self.address}"
