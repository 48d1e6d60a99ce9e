"""Rate limits of uploads (a new ad, or an edit that replaces its photos) and of seller
sign-ups (the counting and the client-address rule: ``avito_mod.throttling``)."""

from avito_mod.throttling import AccountThrottle, AddressThrottle


class UploadUserThrottle(AccountThrottle):
    scope = "ads_upload_user"
    rate_setting = "ADS_UPLOAD_USER_RATE"


class UploadAddressThrottle(AddressThrottle):
    scope = "ads_upload_address"
    rate_setting = "ADS_UPLOAD_ADDRESS_RATE"


class SignupAddressThrottle(AddressThrottle):
    scope = "sellers_signup_address"
    rate_setting = "SELLERS_SIGNUP_ADDRESS_RATE"
