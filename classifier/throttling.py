"""Rate limits of the quick check: per account, and per client address signed in or not
(several accounts behind one address share its limit). The counters live in the default
cache: Redis when REDIS_URL is set, so that every web process counts together."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class QuickCheckUserThrottle(UserRateThrottle):
    scope = "quick_check_user"

    def get_rate(self) -> str:
        return settings.CLASSIFIER_QUICK_CHECK_USER_RATE


class QuickCheckAddressThrottle(SimpleRateThrottle):
    scope = "quick_check_address"

    def get_rate(self) -> str:
        return settings.CLASSIFIER_QUICK_CHECK_ADDRESS_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
