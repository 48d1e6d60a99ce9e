"""Signing in: the limits on failed sign-ins (django-axes, configured in the settings) and
the API's token endpoint."""
