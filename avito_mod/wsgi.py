import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
application = get_wsgi_application()

from avito_mod.deployment.checks import validate  # noqa: E402 - needs the apps loaded

validate()
