"""Rate limits of the quick check: per account, and per client address signed in or not
(the counting and the client-address rule: ``avito_mod.throttling``)."""

from avito_mod.throttling import AccountThrottle, AddressThrottle


class QuickCheckUserThrottle(AccountThrottle):
    scope = "quick_check_user"
    rate_setting = "CLASSIFIER_QUICK_CHECK_USER_RATE"


class QuickCheckAddressThrottle(AddressThrottle):
    scope = "quick_check_address"
    rate_setting = "CLASSIFIER_QUICK_CHECK_ADDRESS_RATE"
