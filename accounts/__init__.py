"""Signing in: the limits on failed sign-ins (django-axes, configured in the settings), the
API's token endpoint, and the admin's list of lock-outs."""
