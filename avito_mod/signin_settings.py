"""The sign-in limits (django-axes and accounts/), read into ``avito_mod.settings``."""

from datetime import timedelta

from .env import env_int

# --- Sign-in limits (django-axes; accounts/) ---------------------------------------------
# Every way in (POST /api/v1/auth/token/, the sellers' /accounts/login/, /admin/login/)
# authenticates through Django, so axes' backend refuses a locked-out account or address
# before the password is checked: its backend comes first and only refuses; ModelBackend
# checks the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # The account's budget of guesses from places it is not known at (accounts/guesses.py).
    "accounts.backends.GuessBudgetBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# This many failed sign-ins lock out the account at that client address and, separately,
# the address (whatever usernames it tried), for SIGNIN_LOCKOUT_SECONDS after the last
# failure that counted. Not the account everywhere: anyone could then lock its owner out.
SIGNIN_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 5, low=1)
SIGNIN_LOCKOUT_SECONDS = env_int("SIGNIN_LOCKOUT_SECONDS", 15 * 60, low=1)
# At most this many passwords checked per username per SIGNIN_LOCKOUT_SECONDS from all the
# addresses and browsers it never signed in from, together; its known ones (a sign-in with
# the right password within SIGNIN_KNOWN_DAYS) are spared, so its owner is never locked out.
SIGNIN_ACCOUNT_GUESSES = env_int("SIGNIN_ACCOUNT_GUESSES", 10, low=1)
SIGNIN_KNOWN_DAYS = env_int("SIGNIN_KNOWN_DAYS", 90, low=1)
AXES_FAILURE_LIMIT = SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=SIGNIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
# In the database: lock-outs outlive a restart and every web process sees the same ones.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# The project's client address (DJANGO_NUM_PROXIES deep in X-Forwarded-For), an IPv6
# client's /64 network as one address.
AXES_CLIENT_IP_CALLABLE = "accounts.limits.signin_address"
AXES_LOCKOUT_CALLABLE = "accounts.limits.locked_out_response"
AXES_HTTP_RESPONSE_CODE = 429
# Attempts while locked out are refused unchecked and not counted: the lock-out ends when
# Retry-After said, and a user who tries again meanwhile does not prolong it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A correct password clears that account's failures from that address only (accounts.limits),
# not the whole address's count, which another account's sign-in would otherwise reset.
AXES_RESET_ON_SUCCESS = False
# The failed attempts are listed in the admin with unlock actions (accounts/admin.py);
# successful sign-ins are not logged (a table that would only grow).
AXES_ENABLE_ADMIN = False
AXES_DISABLE_ACCESS_LOG = True
# Failures and lock-outs are logged (warnings, names and addresses masked), not the rest.
AXES_VERBOSE = False
