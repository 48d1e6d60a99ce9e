"""The rules of a multi-host deployment, as Django system checks (``manage.py check --deploy``
runs them too) and as the start-up gate of web processes and Celery processes."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

TAG = "avito_deployment"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


@checks.register(TAG, deploy=True)
def check_role(app_configs=None, **kwargs):
    role = settings.AVITO_ROLE
    if not role:
        return []
    errors = []
    if settings.DEBUG:
        errors.append(
            checks.Error(
                "DJANGO_DEBUG is on: it shows tracebacks to visitors and keeps every query in "
                "memory",
                hint="Set DJANGO_DEBUG=false (and DJANGO_SECRET_KEY).",
                id="deployment.E001",
            )
        )
    if not settings.SECRET_KEY_GIVEN:
        errors.append(
            checks.Error(
                "DJANGO_SECRET_KEY is not set: this machine made a key of its own, which the "
                "others do not share (sessions and signed cookies would fail between them)",
                hint="Set the same long random DJANGO_SECRET_KEY on every host.",
                id="deployment.E006",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        errors.append(
            checks.Error(
                "the database is a SQLite file, which no other host can reach",
                hint="Set DATABASE_URL=postgres://… on every host.",
                id="deployment.E002",
            )
        )
    if not settings.REDIS_URL:
        errors.append(
            checks.Error(
                "no REDIS_URL: the embedded broker listens on a Unix socket, which only "
                "processes of this machine reach",
                hint="Set REDIS_URL=redis://… on every host.",
                id="deployment.E003",
            )
        )
    if local_storage() and not settings.AVITO_SHARED_FILESYSTEM:
        errors.append(
            checks.Error(
                "photos and model files are stored on this host's disk "
                f"({settings.MEDIA_ROOT}), where workers on other hosts cannot read them",
                hint="Use object storage (AVITO_STORAGE_URL), or set AVITO_SHARED_FILESYSTEM=true "
                "if AVITO_MEDIA_ROOT is a network mount shared by every host.",
                id="deployment.E004",
            )
        )
    if role == "web" and set(settings.ALLOWED_HOSTS) <= LOCAL_HOSTS:
        errors.append(
            checks.Error(
                "DJANGO_ALLOWED_HOSTS names only this machine: every request from the load "
                "balancer would be refused",
                hint="Set DJANGO_ALLOWED_HOSTS to the site's host names.",
                id="deployment.E005",
            )
        )
    return errors


def local_storage() -> bool:
    backend = settings.STORAGES["default"]["BACKEND"]
    return backend.rsplit(".", 1)[-1] == "FileSystemStorage"


def validate() -> None:
    """Stop a process that has a role but cannot play it, naming every problem."""
    if not settings.AVITO_ROLE:
        return
    problems = [
        message
        for message in checks.run_checks(tags=[TAG], include_deployment_checks=True)
        if message.is_serious()
    ]
    if problems:
        lines = "\n".join(f"- {problem.msg}. {problem.hint}" for problem in problems)
        raise ImproperlyConfigured(
            f"AVITO_ROLE={settings.AVITO_ROLE}: this process cannot run on several machines "
            f"as configured:\n{lines}"
        )


# Directives without which a policy does little: where scripts come from (and everything
# else by default), no plugins, no <base> pointing elsewhere, no framing.
CSP_REQUIRED = ("default-src", "script-src", "object-src", "base-uri", "frame-ancestors")
CSP_LOOSE = {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"}


@checks.register(checks.Tags.security, deploy=True)
def check_content_security_policy(app_configs=None, **kwargs):
    """Every answer carries a Content-Security-Policy that keeps out injected scripts."""
    if "csp.middleware.CSPMiddleware" not in settings.MIDDLEWARE:
        return [
            checks.Warning(
                "no Content-Security-Policy is sent: csp.middleware.CSPMiddleware is not "
                "in MIDDLEWARE",
                id="deployment.W010",
            )
        ]
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES", {})
    warnings = [
        checks.Warning(
            f"the Content-Security-Policy has no {name}",
            hint="See CONTENT_SECURITY_POLICY in avito_mod/settings.py.",
            id="deployment.W011",
        )
        for name in CSP_REQUIRED
        if not directives.get(name)
    ]
    for name in ("default-src", "script-src"):
        loose = CSP_LOOSE & set(directives.get(name) or ())
        if loose:
            warnings.append(
                checks.Warning(
                    f"the Content-Security-Policy's {name} allows {', '.join(sorted(loose))}: "
                    "an injected script would run",
                    hint="Serve scripts as files, or inline with the page's nonce.",
                    id="deployment.W012",
                )
            )
    return warnings
