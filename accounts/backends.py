"""An authentication backend that only refuses: after axes' (which refuses a locked-out
username at an address, or address) and before ``ModelBackend`` (which checks the password)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from . import guesses, known
from .limits import signin_address


class GuessBudgetBackend:
    """Refuses a sign-in from a place ``username`` is not known at once its budget of
    checks is used up (``accounts.guesses``). Marked as axes marks its own refusals, so
    that axes does not count it and every way in answers it with its ``429``
    (``accounts.limits.locked_out_response``)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or not username:
            return None
        if known.is_known(request, username, signin_address(request)):
            return None
        wait = guesses.take(username)
        if wait is None:
            return None  # ModelBackend checks the password
        request.axes_locked_out = True
        request.signin_guesses_wait = wait
        raise PermissionDenied

    # No ``get_user``: a session never names this backend (``force_login`` and ``login()``
    # take the first backend that has one).
