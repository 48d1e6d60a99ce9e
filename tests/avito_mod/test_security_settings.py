"""The production settings, read in a fresh process from the environment as a deployment
sets it: HTTPS, cookies, ``check --deploy``, the secret key, the rate limits' and the sign-in
limits' variables."""

from __future__ import annotations

import json

import pytest

from avito_mod.secret_key import DEVELOPMENT_KEY
from tests.support.live import production, run

SHOWN = [
    "DEBUG",
    "SECRET_KEY",
    "CONTENT_SECURITY_POLICY",
    "SIGNIN_ACCOUNT_GUESSES",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SAMESITE",
    "CSRF_TRUSTED_ORIGINS",
    "ADS_UPLOAD_USER_RATE",
    "ADS_UPLOAD_ADDRESS_RATE",
    "SELLERS_SIGNUP_ADDRESS_RATE",
    "SIGNIN_FAILURE_LIMIT",
    "SIGNIN_LOCKOUT_SECONDS",
    "AXES_FAILURE_LIMIT",
    "AXES_LOCKOUT_PARAMETERS",
    "AXES_HANDLER",
]
PRINT_SETTINGS = f"""
import json
from django.conf import settings
print(json.dumps({{name: getattr(settings, name, None) for name in {SHOWN!r}}}, default=repr))
"""


def settings_under(env: dict) -> dict:
    done = run(env, "-c", "import django; django.setup()\n" + PRINT_SETTINGS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_production_serves_https_only_with_secure_cookies(environment):
    shown = settings_under(environment(**production()))
    assert shown["DEBUG"] is False
    assert shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"]
    assert shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and shown["SECURE_HSTS_PRELOAD"]
    assert shown["SESSION_COOKIE_HTTPONLY"] and shown["CSRF_COOKIE_HTTPONLY"]
    assert shown["SESSION_COOKIE_SAMESITE"] == shown["CSRF_COOKIE_SAMESITE"] == "Lax"
    # No proxy is trusted to say the request came over HTTPS unless one is configured.
    assert shown["SECURE_PROXY_SSL_HEADER"] is None


def test_plain_http_is_one_switch(environment):
    shown = settings_under(environment(**production(DJANGO_HTTPS="false")))
    assert shown["DEBUG"] is False
    assert not shown["SESSION_COOKIE_SECURE"] and not shown["CSRF_COOKIE_SECURE"]
    assert not shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] == 0
    assert shown["SESSION_COOKIE_HTTPONLY"]


def test_with_nothing_set_debug_is_off_and_https_on(environment):
    shown = settings_under(environment())
    assert shown["DEBUG"] is False
    assert shown["SECURE_SSL_REDIRECT"] and shown["SESSION_COOKIE_SECURE"]


def test_bin_runs_plain_http_keeps_debug_off(environment):
    # What bin/run sets on 127.0.0.1, and nothing else.
    shown = settings_under(environment(DJANGO_HTTPS="false"))
    assert shown["DEBUG"] is False
    assert not shown["SECURE_SSL_REDIRECT"] and not shown["SESSION_COOKIE_SECURE"]
    assert shown["SECURE_HSTS_SECONDS"] == 0


def test_debug_is_on_only_when_asked_for(environment):
    shown = settings_under(environment(DJANGO_DEBUG="true"))
    assert shown["DEBUG"] is True
    assert not shown["SECURE_SSL_REDIRECT"]  # development: plain HTTP


def test_without_a_key_one_machine_makes_one_and_keeps_it(environment, tmp_path):
    first = settings_under(environment())["SECRET_KEY"]
    again = settings_under(environment())["SECRET_KEY"]
    kept = tmp_path / "data" / "secret_key"
    assert first == again == kept.read_text().strip()
    assert len(first) >= 50 and first != DEVELOPMENT_KEY
    assert kept.stat().st_mode & 0o777 == 0o600
    other = settings_under(environment(AVITO_DATA_DIR=str(tmp_path / "elsewhere")))
    assert other["SECRET_KEY"] != first  # no two installations share one


def test_behind_a_tls_proxy_its_header_and_origins_are_trusted(environment):
    env = production(
        DJANGO_PROXY_SSL_HEADER="X-Forwarded-Proto",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://ads.example.com, https://www.ads.example.com",
        DJANGO_HSTS_SECONDS="600",
    )
    shown = settings_under(environment(**env))
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert shown["CSRF_TRUSTED_ORIGINS"] == [
        "https://ads.example.com",
        "https://www.ads.example.com",
    ]
    assert shown["SECURE_HSTS_SECONDS"] == 600


def test_check_deploy_is_clean_in_production(environment):
    done = run(
        environment(**production()), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_sends_a_content_security_policy(environment):
    directives = settings_under(environment(**production()))["CONTENT_SECURITY_POLICY"][
        "DIRECTIVES"
    ]
    assert directives["script-src"] == ["'self'", "csp.constants.NONCE"]  # no inline script
    assert directives["object-src"] == directives["frame-ancestors"] == ["'none'"]


def test_check_deploy_warns_when_served_over_plain_http(environment):
    env = environment(**production(DJANGO_HTTPS="false"))
    done = run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr, warning


def test_production_does_not_start_with_the_development_key(environment):
    env = environment(**production(DJANGO_SECRET_KEY=DEVELOPMENT_KEY))
    done = run(env, "manage.py", "check")
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set" in done.stderr


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_a_process_with_a_role_does_not_start_without_a_secret_key(environment, secret):
    # Each machine would make a key of its own: their sessions would not carry over.
    env = environment(**production(AVITO_ROLE="web", DJANGO_SECRET_KEY=secret or ""))
    if secret is None:
        del env["DJANGO_SECRET_KEY"]
    done = run(env, "-c", "import avito_mod.wsgi")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set: this machine made a key of its own" in done.stderr


def test_the_development_key_is_accepted_only_with_debug_on(environment):
    shown = settings_under(environment(DJANGO_DEBUG="true", DJANGO_SECRET_KEY=DEVELOPMENT_KEY))
    assert shown["SECRET_KEY"] == DEVELOPMENT_KEY


def test_the_rate_limits_have_marketplace_defaults(environment):
    shown = settings_under(environment(**production()))
    assert shown["ADS_UPLOAD_USER_RATE"] == "60/hour"
    assert shown["ADS_UPLOAD_ADDRESS_RATE"] == "300/hour"
    assert shown["SELLERS_SIGNUP_ADDRESS_RATE"] == "20/hour"
    changed = settings_under(environment(ADS_UPLOAD_USER_RATE="5/min"))
    assert changed["ADS_UPLOAD_USER_RATE"] == "5/min"


@pytest.mark.parametrize(
    "name",
    ["ADS_UPLOAD_USER_RATE", "SELLERS_SIGNUP_ADDRESS_RATE", "CLASSIFIER_QUICK_CHECK_USER_RATE"],
)
def test_a_bad_rate_stops_start_up_naming_the_variable(environment, name):
    done = run(environment(**{name: "lots/min"}), "manage.py", "check")
    assert done.returncode != 0
    assert f"{name} must be a rate such as 60/min" in done.stderr


def test_sign_ins_are_limited_per_account_and_address_in_the_database(environment):
    shown = settings_under(environment(**production()))
    assert shown["SIGNIN_FAILURE_LIMIT"] == shown["AXES_FAILURE_LIMIT"] == 5
    assert shown["SIGNIN_LOCKOUT_SECONDS"] == 15 * 60
    # An account at one address, and an address: never an account from everywhere.
    assert shown["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"], "ip_address"]
    assert shown["SIGNIN_ACCOUNT_GUESSES"] == 10
    # Shared by every web process and kept over a restart.
    assert shown["AXES_HANDLER"] == "axes.handlers.database.AxesDatabaseHandler"
    changed = settings_under(environment(SIGNIN_FAILURE_LIMIT="3", SIGNIN_LOCKOUT_SECONDS="60"))
    assert changed["AXES_FAILURE_LIMIT"] == 3 and changed["SIGNIN_LOCKOUT_SECONDS"] == 60


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("SIGNIN_FAILURE_LIMIT", "0", "must be at least 1"),
        ("SIGNIN_LOCKOUT_SECONDS", "15min", "must be an integer"),
    ],
)
def test_a_bad_sign_in_limit_stops_start_up_naming_the_variable(environment, name, value, said):
    done = run(environment(**{name: value}), "manage.py", "check")
    assert done.returncode != 0
    assert f"{name} {said}" in done.stderr
