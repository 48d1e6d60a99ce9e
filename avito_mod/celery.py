"""The Celery application. Workers import Django here, never TensorFlow: serving uses LiteRT,
loaded lazily inside each worker child process (see classifier.services.predictor_for)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")

app = Celery("avito_mod")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
