"""Failed sign-ins and lock-outs in the admin (admins only): django-axes' ``AccessAttempt``
rows, one per username, address and browser, with what the account at that address and the
address count now, how much of the account's budget of guesses is used, and actions that
unlock them."""

from __future__ import annotations

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import guesses


def with_counts(queryset: QuerySet, request) -> QuerySet:
    """Each row with the failures its account at its address and its address count now
    (within the cool-off), as the sign-in checks them."""
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - get_cool_off(request))

    def total(*fields: str) -> Coalesce:
        sums = (
            recent.filter(**{field: OuterRef(field) for field in fields})
            .order_by()
            .values(*fields)
            .annotate(total=Sum("failures_since_start"))
            .values("total")
        )
        return Coalesce(Subquery(sums, output_field=IntegerField()), 0)

    return queryset.annotate(
        account_failures=total("username", "ip_address"), address_failures=total("ip_address")
    )


class LockedOutFilter(admin.SimpleListFilter):
    title = "locked out"
    parameter_name = "locked"

    def lookups(self, request, model_admin):
        return [("yes", "Locked out now"), ("no", "Not locked out")]

    def queryset(self, request, queryset):
        locked = Q(account_failures__gte=settings.AXES_FAILURE_LIMIT) | Q(
            address_failures__gte=settings.AXES_FAILURE_LIMIT
        )
        if self.value() == "yes":
            return queryset.filter(locked)
        if self.value() == "no":
            return queryset.exclude(locked)
        return queryset


@admin.register(AccessAttempt)
class SignInFailureAdmin(admin.ModelAdmin):
    """Who failed to sign in, from where, and whether that locks their account or address
    out now. Unlocking deletes the failures; a new failure starts counting from zero."""

    list_display = [
        "username",
        "ip_address",
        "failures_since_start",
        "attempt_time",
        "path_info",
        "account_count",
        "address_count",
        "guesses_used",
    ]
    list_filter = [LockedOutFilter, "path_info"]
    search_fields = ["username", "ip_address"]
    readonly_fields = [
        "username",
        "ip_address",
        "user_agent",
        "path_info",
        "failures_since_start",
        "attempt_time",
        "http_accept",
        "get_data",
        "post_data",
    ]
    actions = ["unlock_accounts", "unlock_addresses"]

    def get_queryset(self, request):
        return with_counts(super().get_queryset(request), request)

    def has_add_permission(self, request) -> bool:
        return False  # recorded by the sign-ins only

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="account's failures here", ordering="account_failures")
    def account_count(self, attempt) -> str:
        return self._count(attempt.account_failures)

    @admin.display(description="address's failures", ordering="address_failures")
    def address_count(self, attempt) -> str:
        return self._count(attempt.address_failures)

    @admin.display(description="guesses from unknown places")
    def guesses_used(self, attempt) -> str:
        used, budget = guesses.used(attempt.username or ""), settings.SIGNIN_ACCOUNT_GUESSES
        return f"{used} of {budget}: used up" if used >= budget else f"{used} of {budget}"

    @staticmethod
    def _count(failures: int) -> str:
        limit = settings.AXES_FAILURE_LIMIT
        return (
            f"{failures} of {limit}: locked out" if failures >= limit else f"{failures} of {limit}"
        )

    @admin.action(
        description="Unlock the selected accounts (their failures from every address, and "
        "their budget of guesses)",
        permissions=["delete"],
    )
    def unlock_accounts(self, request, queryset):
        self._unlock(request, queryset, "username", "account(s)")

    @admin.action(
        description="Unlock the selected addresses (their failures on every account)",
        permissions=["delete"],
    )
    def unlock_addresses(self, request, queryset):
        self._unlock(request, queryset, "ip_address", "address(es)")

    def _unlock(self, request, queryset, field: str, what: str) -> None:
        """Clear every failure sharing a selected row's ``field``, whatever the other one."""
        values = set(queryset.values_list(field, flat=True))
        deleted, _ = AccessAttempt.objects.filter(**{f"{field}__in": values}).delete()
        if field == "username":
            for username in values:
                guesses.reset(username or "")
        self.message_user(
            request, f"Unlocked {len(values)} {what}: {deleted} row(s) cleared.", messages.SUCCESS
        )
