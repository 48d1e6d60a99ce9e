"""Settings, read from the environment with local defaults.

With nothing set, avito-mod runs on SQLite under ``AVITO_DATA_DIR`` (default ``./var``).
``DATABASE_URL`` (e.g. ``postgres://postgres@127.0.0.1:5432/avito_mod``) switches to PostgreSQL.
"""

import math
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from . import broker
from .env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_optional_float,
    env_rate,
    env_str,
)
from .secret_key import secret_key
from .storage import default_storage_config

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("AVITO_DATA_DIR", str(BASE_DIR / "var"))).resolve()

# Off unless asked for (DJANGO_DEBUG=true, for development only): it shows tracebacks and
# the URL patterns to anyone.
DEBUG = env_bool("DJANGO_DEBUG", False)

# --- Deployment on several machines (deploy/, avito_mod/deployment) -----------------------
# The role of a process started by deploy/'s units; with a role, start-up stops on settings
# that only work on one machine. Unset: one machine (bin/run, tests), nothing required.
AVITO_ROLE = env_choice("AVITO_ROLE", ("", "web", "inference", "training", "beat"))

# Unset on one machine (bin/run): a random key made once and kept in the data folder, which
# every process there reads (avito_mod/secret_key.py). Several machines must share one: a
# process with a role refuses to start without it (deployment.E006). The key this project
# once shipped for development is refused unless DJANGO_DEBUG is on.
SECRET_KEY_GIVEN = bool(env_str("DJANGO_SECRET_KEY", ""))
SECRET_KEY = secret_key(env_str("DJANGO_SECRET_KEY", ""), DATA_DIR, debug=DEBUG)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# AVITO_MEDIA_ROOT is a network mount every host shares (instead of object storage).
AVITO_SHARED_FILESYSTEM = env_bool("AVITO_SHARED_FILESYSTEM", False)

# --- HTTPS, cookies and security headers ------------------------------------------------
# Served over HTTPS (the default unless DJANGO_DEBUG is on): cookies only over TLS, plain
# HTTP redirected, HSTS. DJANGO_HTTPS=false serves plain HTTP (bin/run on 127.0.0.1, the
# tests and the benchmarks).
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
# Behind a proxy that terminates TLS: the header it sets to "https" (X-Forwarded-Proto).
# Never set otherwise: a client could then claim HTTPS over plain HTTP.
_PROXY_SSL_HEADER = env_str("DJANGO_PROXY_SSL_HEADER", "").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
SESSION_COOKIE_HTTPONLY = True
# The pages' scripts take the CSRF token from the form, never from the cookie.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A Content-Security-Policy on every answer (django-csp): scripts and <style> blocks from
# this site's own files, or inline with the page's nonce ({{ request.csp_nonce }}); no
# plugins, no framing, forms posted to this site only. Style attributes stay allowed
# (style-src-attr): the admin's charts and photo sizes are drawn with them, and they run
# no code. ``check --deploy`` checks the policy (avito_mod/deployment/checks.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        # blob: the previews the sellers' page draws of the photos chosen, before upload.
        "img-src": [SELF, "data:", "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs' scripts, served from here, not a CDN
    "axes",  # failed sign-ins and lock-outs (configured under "Sign-in limits" below)
    "csp",  # the Content-Security-Policy header (its checks of the settings)
    "accounts",
    "ads",
    "classifier",
    "moderation",
    "avito_mod.backup",
    "avito_mod.deployment",
]

MIDDLEWARE = [
    # Request counts and latencies per view for /metrics (django-prometheus): first and last.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Bodies over their view's cap: 413 before anything reads them (avito_mod/body_limits.py).
    "avito_mod.body_limits.BodyLimitMiddleware",
    # /healthz and /readyz, before the HTTPS redirect and the host check: load balancers
    # probe each process by its address over plain HTTP (avito_mod/health/).
    "avito_mod.health.middleware.HealthProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Static files from the web process itself, compressed and cached for good.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The database down (restarting): a 503 with Retry-After, not a 500.
    "avito_mod.middleware.DatabaseUnavailableMiddleware",
    # The bucket of AVITO_STORAGE_URL unreachable: a 503 with Retry-After as well.
    "avito_mod.middleware.StorageUnavailableMiddleware",
    # Sign-ins: one password check at a time per client address, then django-axes turns a
    # locked-out sign-in into its 429 page (last, as axes asks).
    "accounts.middleware.OneSignInAtATimeMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "avito_mod.urls"
WSGI_APPLICATION = "avito_mod.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict:
    url = env_str("DATABASE_URL", "")
    if url:
        return dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        # Kept between requests and tasks, as on PostgreSQL: a worker drained 9 % more ads
        # a second than when it opened the file (and set its pragmas) for every task.
        "CONN_MAX_AGE": 60,
        # Web and worker processes share the file: WAL and IMMEDIATE avoid "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;",
        },
    }


DATABASES = {"default": _database()}
# The same backends, counting queries, their errors and durations for /metrics.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The sellers' pages (ads/pages/urls.py); staff sign in at /admin/.
LOGIN_URL = "sellers:login"
LOGIN_REDIRECT_URL = "sellers:my-ads"

# Sign-in limits (django-axes; accounts/): their own module, one concern.
from .signin_settings import *  # noqa: E402, F403

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("AVITO_MEDIA_ROOT", str(DATA_DIR / "media")))

# --- Object storage (avito_mod/storage.py) ----------------------------------------------
# Photos, training images, model artifacts and backbones go through Django's storage API:
# the local folder MEDIA_ROOT, or, with AVITO_STORAGE_URL=s3://bucket[/prefix], a private
# S3-compatible bucket shared by web processes and workers on any machine. Credentials
# come from boto3's usual places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
# an instance role); AVITO_S3_ENDPOINT_URL for another provider than AWS (MinIO, Ceph...).
STORAGES = {
    "default": default_storage_config(
        env_str("AVITO_STORAGE_URL", ""),
        endpoint_url=env_str("AVITO_S3_ENDPOINT_URL", ""),
        region=env_str("AVITO_S3_REGION", ""),
    ),
    # Hashed names (cache forever, no stale script after a deploy) and pre-compressed copies,
    # written by ``collectstatic``, which ``bin/run`` runs.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    # Token first: an anonymous API call gets 401 with "WWW-Authenticate: Token", not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Proxies in front of the web process: the client address is read from X-Forwarded-For
    # only that deep (0: the connection's address), so that a client cannot choose its own.
    "NUM_PROXIES": env_int("DJANGO_NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "avito-mod API",
    "DESCRIPTION": (
        "Sellers post classified ads with photos; a CNN checks every photo and the ad is "
        "published or sent to moderators. Authenticate with a token (`Authorization: Token "
        "<key>`, from `/api/v1/auth/token/`) or the session of a signed-in seller."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response shapes (uploads in, URLs out).
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Ads: uploads' caps and budgets, their rates, idempotency (their own module, one concern).
from .ads_settings import *  # noqa: E402, F403

# --- The classifier ---------------------------------------------------------------
# Automatic decisions may be wrong at most this often; each model version stores the
# confidence threshold that meets it on its validation split.
CLASSIFIER_TARGET_RISK = env_float("CLASSIFIER_TARGET_RISK", 0.02, low=0.0, high=0.5)
# The share of real product photos each new version's none-of-these detector may flag as
# showing none of the categories (sending their ads to a moderator), to catch the rest.
CLASSIFIER_NONE_OF_THESE_RATE = env_float(
    "CLASSIFIER_NONE_OF_THESE_RATE", 0.01, low=0.001, high=0.5
)
# TensorBoard logs of every training run, one folder per version.
CLASSIFIER_TENSORBOARD_DIR = Path(
    env_str("CLASSIFIER_TENSORBOARD_DIR", str(DATA_DIR / "tensorboard"))
)
# Threads per process for one inference. 1 suits many worker processes (one per core);
# more lowers the latency of a large batch in a process that has the machine to itself.
CLASSIFIER_INFERENCE_THREADS = env_int("CLASSIFIER_INFERENCE_THREADS", 1, low=1)
# The form of the backbone a process serves: auto, the faster on its CPU of int8 (shipped)
# and float32 (built by the training queue when first needed), timed when it loads a model;
# or one of them (classifier/services/serving_forms.py).
CLASSIFIER_SERVING_FORM = env_choice("CLASSIFIER_SERVING_FORM", ("auto", "int8", "float32"))
# How often a process that has loaded a model looks at its files again (a stat, not a
# hash): a file replaced since is verified against its recorded SHA-256 before any use.
CLASSIFIER_ARTIFACT_CHECK_SECONDS = env_float(
    "CLASSIFIER_ARTIFACT_CHECK_SECONDS", 2.0, low=0.0, high=3600.0
)
# Images larger than this are refused before decoding (decompression bombs).
CLASSIFIER_MAX_IMAGE_PIXELS = env_int("CLASSIFIER_MAX_IMAGE_PIXELS", 40_000_000)
# The decoding budget of each photo (ads/photos.py): bytes held at the peak (the picture at
# its bytes per pixel, the conversions' copies, a progressive JPEG's coefficients; a JPEG
# over it is decoded at 1/2, 1/4 or 1/8 of its size when that fits), CPU seconds, and scans
# of a progressive JPEG (each a pass over the whole picture; cameras write at most ~20).
CLASSIFIER_MAX_DECODE_BYTES = env_int("CLASSIFIER_MAX_DECODE_BYTES", 256 * 1024 * 1024, low=1)
CLASSIFIER_MAX_DECODE_SECONDS = env_float(
    "CLASSIFIER_MAX_DECODE_SECONDS", 1.0, low=0.001, high=600.0
)
CLASSIFIER_MAX_JPEG_SCANS = env_int("CLASSIFIER_MAX_JPEG_SCANS", 32, low=1)
# The sellers' quick check (POST /api/v1/classify/): requests per account, and per client
# address whoever is signed in ("number/second|minute|hour|day").
CLASSIFIER_QUICK_CHECK_USER_RATE = env_rate("CLASSIFIER_QUICK_CHECK_USER_RATE", "60/min")
CLASSIFIER_QUICK_CHECK_ADDRESS_RATE = env_rate("CLASSIFIER_QUICK_CHECK_ADDRESS_RATE", "120/min")
# Share (percent) of labelled photos held out as the evaluation set, on which versions are
# compared. Each photo's side is chosen once, when it is stored, and never changes.
CLASSIFIER_EVALUATION_PERCENT = env_float("CLASSIFIER_EVALUATION_PERCENT", 15.0, low=0.0, high=50.0)
# Promote a freshly trained candidate by itself when its accuracy on the evaluation set
# beats the active version's by at least this much (0.01 = one point). Unset: never.
CLASSIFIER_AUTO_PROMOTE_MARGIN = env_optional_float(
    "CLASSIFIER_AUTO_PROMOTE_MARGIN", low=0.0, high=1.0
)
# Train a new version every this many hours when new labels came in (0: never).
CLASSIFIER_RETRAIN_EVERY_HOURS = env_int("CLASSIFIER_RETRAIN_EVERY_HOURS", 0)
# A training (or label check) with no sign of life for this many seconds is marked failed:
# its worker was killed or never took it.
CLASSIFIER_TRAINING_STALE_AFTER = env_int("CLASSIFIER_TRAINING_STALE_AFTER", 1800)
# The shipped model's knowledge (classifier/services/shipped.py): the backbone features of
# the photos it was trained and evaluated on, which retrains and evaluations use as well.
# Unset: the default model's features.npz; "off": none; else the path of another such file.
CLASSIFIER_SHIPPED_FEATURES = env_str("CLASSIFIER_SHIPPED_FEATURES", "")
# Training refuses while an active category has fewer training photos than this: a head
# cannot learn a class from a handful of photos, nor its threshold be chosen on them.
CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = env_int("CLASSIFIER_MIN_PHOTOS_PER_CATEGORY", 20, low=1)
# A category publishes its ads alone only when the active version was measured on at least
# this many evaluation photos of it, and erred on at most CLASSIFIER_TARGET_RISK of those it
# decided alone as the category; until then its ads go to moderators (review-only). The
# default is the fewest photos whose 95 % Wilson interval can end below the target at all:
# with no error among n photos its upper end is z²/(n + z²), under 2 % from n = 189. Fewer
# photos cannot show the target is met, whatever the model does. 0 turns the rule off.
CLASSIFIER_MIN_EVALUATION_PHOTOS = env_int(
    "CLASSIFIER_MIN_EVALUATION_PHOTOS",
    math.floor(1.959964**2 * (1 - CLASSIFIER_TARGET_RISK) / CLASSIFIER_TARGET_RISK) + 1
    if CLASSIFIER_TARGET_RISK > 0
    else 100_000,
    low=0,
)
# An admin's "Add example photos" form: photos (files, or entries of the zips sent) per
# submission, and bytes per submission (the files sent, and the zips unpacked). Each photo
# also obeys ADS_MAX_PHOTO_BYTES and CLASSIFIER_MAX_IMAGE_PIXELS. Django's own
# DATA_UPLOAD_MAX_NUMBER_FILES (100) caps the files of one request: more go in a zip.
CLASSIFIER_PHOTO_UPLOAD_MAX_FILES = env_int("CLASSIFIER_PHOTO_UPLOAD_MAX_FILES", 500, low=1)
CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES = env_int(
    "CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES", 200 * 1024 * 1024, low=1
)

# --- Celery ---------------------------------------------------------------------
# Redis when REDIS_URL is set; otherwise the embedded broker: a Valkey server (Redis
# protocol) on a Unix socket in $AVITO_DATA_DIR/broker, which bin/run starts first and
# keeps alive (avito_mod/broker.py). Either way Celery runs on its Redis transport.
REDIS_URL = env_str("REDIS_URL", "")
BROKER_EMBEDDED = not REDIS_URL
BROKER_FOLDER = DATA_DIR / "broker"
# REDIS_URL may also name a Redis on a socket of this machine: unix:///run/redis/redis.sock
CELERY_BROKER_URL = (
    broker.celery_url_for(REDIS_URL) if REDIS_URL else broker.celery_url(BROKER_FOLDER)
)
# The same server for redis-py (the cache, the health checks, the workers' heartbeats).
BROKER_REDIS_URL = broker.redis_url(CELERY_BROKER_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than any task may take, or Redis re-delivers a task still running.
    "visibility_timeout": 3600,
    "socket_connect_timeout": 3,
}
# Rate-limit counters, shared by all web processes: in the broker's Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": BROKER_REDIS_URL,
        "KEY_PREFIX": "avito-mod",
    }
}
CELERY_TASK_IGNORE_RESULT = True
# At least once: a task is acknowledged after it ran, and re-delivered if its worker died.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task per pool process at a time: a task waits in the broker, where any worker can take
# it, rather than behind a busy one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# An upload must not hang on a broker that is down: fail fast, the sweep re-enqueues.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection before and after every task unless
# this is set; a new PostgreSQL connection per task cost a worker 15-30 % of its rate
# (bench/pipeline.py --drain, bench/README.md).
# With it the fixup closes them only every this many tasks, and avito_mod/celery.py closes
# them around each task as Django does around a request: past CONN_MAX_AGE or unusable.
CELERY_DB_REUSE_MAX = 1000
CLASSIFIER_INFERENCE_QUEUE = env_str("CLASSIFIER_INFERENCE_QUEUE", "inference")
# Each worker writes a heartbeat to the broker this often; a queue none of whose workers beat
# within WORKER_STALE_AFTER_SECONDS has no worker (/readyz/workers, the pulse page, the admin
# index's notice, /metrics; avito_mod/workers.py).
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5, low=1)
WORKER_STALE_AFTER_SECONDS = env_int("WORKER_STALE_AFTER_SECONDS", 15, low=2)
# Training runs on a queue of its own: one worker process (a GPU machine in production).
CLASSIFIER_TRAINING_QUEUE = env_str("CLASSIFIER_TRAINING_QUEUE", "training")
TRAINING_TASKS = (
    "classifier.tasks.train_version",
    "classifier.tasks.find_label_errors",
    "classifier.tasks.build_serving_forms",
)
# Everything else: classification and the sweeps (the ads' purge of old keys among them).
INFERENCE_TASKS = ("moderation.tasks.*", "classifier.tasks.*", "ads.tasks.*")


def task_routes(inference_queue: str, training_queue: str) -> dict:
    # Exact task names are matched before patterns.
    routes = {name: {"queue": training_queue} for name in TRAINING_TASKS}
    return routes | {pattern: {"queue": inference_queue} for pattern in INFERENCE_TASKS}


CELERY_TASK_ROUTES = task_routes(CLASSIFIER_INFERENCE_QUEUE, CLASSIFIER_TRAINING_QUEUE)
# Ads still pending this long after classification was requested are enqueued again
# (broker down at upload time, worker killed): delayed, never lost. The shorter delay
# applies while nothing waits in the inference queue, the longer one during a backlog.
ADS_REQUEUE_PENDING_AFTER = env_int("ADS_REQUEUE_PENDING_AFTER", 30)
ADS_REQUEUE_BACKLOGGED_AFTER = env_int("ADS_REQUEUE_BACKLOGGED_AFTER", 300)
# How long after a decision its moderator may still undo it (the queue's notice counts it down).
MODERATION_UNDO_SECONDS = env_int("MODERATION_UNDO_SECONDS", 60, low=1)
# How long the ads at the top of a moderator's queue are held for them (others skip them).
MODERATION_CLAIM_SECONDS = env_int("MODERATION_CLAIM_SECONDS", 300)
# How many ads at the top of a moderator's queue page are held for them.
MODERATION_CLAIM_TOP = env_int("MODERATION_CLAIM_TOP", 5, low=1)
# How often an open queue asks who holds its ads (one small query; others' ads are greyed).
MODERATION_CLAIMS_POLL_SECONDS = env_int("MODERATION_CLAIMS_POLL_SECONDS", 4, low=1)
# The live audit: this share of the ads the model publishes alone also goes to moderators
# (the ad stays published), whose answers measure how often automatic decisions are wrong,
# per category (moderation/audit.py). 0 turns it off.
MODERATION_AUDIT_RATE = env_float("MODERATION_AUDIT_RATE", 0.02, low=0.0, high=1.0)
# The days of audits the admin index's notice and /metrics measure (the pulse page and the
# registry offer 7, 30 and 90).
MODERATION_AUDIT_WINDOW_DAYS = env_int("MODERATION_AUDIT_WINDOW_DAYS", 30, low=1)
# Beat remembers when each task last ran in this file (a shelve: .db, or .bak/.dat/.dir),
# in the data folder whichever way beat is started, never in the working directory.
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-pending-ads": {
        "task": "moderation.tasks.requeue_stale_ads",
        "schedule": env_int("ADS_REQUEUE_SWEEP_EVERY", 10),
    },
    "fail-stalled-training": {
        "task": "classifier.tasks.fail_stalled_training",
        "schedule": 300,
    },
    "purge-idempotency-keys": {
        "task": "ads.tasks.purge_idempotency_keys",
        "schedule": 3600,
    },
}
if CLASSIFIER_RETRAIN_EVERY_HOURS > 0:
    CELERY_BEAT_SCHEDULE["retrain"] = {
        "task": "classifier.tasks.scheduled_training",
        "schedule": CLASSIFIER_RETRAIN_EVERY_HOURS * 3600,
    }

# --- Metrics (GET /metrics, Prometheus; avito_mod/metrics/) -------------------------------
# Closed until one of these is set. With a token, a scrape sends "Authorization: Bearer
# <token>"; with networks, the client address (DJANGO_NUM_PROXIES deep in X-Forwarded-For)
# must be in one of them; with both, both are required.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 24 characters long")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
# The platform's own series (ads, queues, predictions, training, decisions).
METRICS_DATABASE_COLLECTOR = "moderation.metrics.DatabaseCollector"
# The served backbone form each process chose (classifier, a layer above avito_mod: named,
# not imported).
METRICS_SERVING_COLLECTOR = "classifier.services.serving_forms.ServingFormsCollector"
# Prometheus scrapes a web process directly on the private network, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
# --- Health probes (avito_mod/health/) -----------------------------------------------
# /readyz answers within this many seconds whatever hangs: a check still running then is
# reported down. Keep it under the load balancer's probe timeout.
READYZ_DEADLINE_SECONDS = env_float("READYZ_DEADLINE_SECONDS", 1.5, low=0.1, high=30.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_probes": {"()": "avito_mod.health.QuietProbes"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Axes says at INFO what it does on every sign-in (clean-ups of nothing, mostly).
        "axes": {"level": "WARNING"},
        # A 503 of /readyz is an answer, not a server error: its checks log changes once.
        "django.request": {"filters": ["quiet_probes"]},
    },
}
