"""The ads' settings (uploads' caps and budgets, their rates, idempotency), read into
``avito_mod.settings``."""

from .env import env_float, env_int, env_rate

# --- Ads --------------------------------------------------------------------------
# Request bodies are refused (413) above their view's cap before they are read: an ad's
# views take ADS_MAX_AD_PHOTO_BYTES (the quick check one photo of ADS_MAX_PHOTO_BYTES), the
# admins' example photos CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES, plus 1 MiB of form; every other
# view this many bytes (avito_mod/body_limits.py; deploy/nginx has the same caps).
AVITO_MAX_REQUEST_BYTES = env_int("AVITO_MAX_REQUEST_BYTES", 4 * 1024 * 1024, low=1024)
# Each uploaded photo is refused above this many bytes (before it is decoded).
ADS_MAX_PHOTO_BYTES = env_int("ADS_MAX_PHOTO_BYTES", 10 * 1024 * 1024)
# Photos are kept (and shown to moderators) at most this many pixels on their longer side,
# more than a 1920-px screen shows: a 12-megapixel JPEG is decoded at 1/2 its size for half
# the CPU (ten such photos 0.5 s instead of 1.1 s, well within ADS_MAX_AD_PHOTO_SECONDS).
ADS_PHOTO_MAX_SIDE = env_int("ADS_PHOTO_MAX_SIDE", 2048, low=256)
ADS_MAX_PHOTOS = env_int("ADS_MAX_PHOTOS", 10)
# An ad's photos together are refused above this many bytes: parsing, decoding, re-encoding
# and hashing them cost CPU in proportion, and the largest ad must stay within 2 s of it
# (bench/hostile_cost.py). 50 MiB: ten phone photos of 5 MB each.
ADS_MAX_AD_PHOTO_BYTES = env_int("ADS_MAX_AD_PHOTO_BYTES", 50 * 1024 * 1024, low=1)
# CPU seconds an ad's photos may take to check together (decode, re-encode, hash); the
# photos past it are refused by name. Ten 12-megapixel phone photos take about 0.5 s; ten
# progressive JPEGs at the scan limit would take 5 s, each within its own budget.
ADS_MAX_AD_PHOTO_SECONDS = env_float("ADS_MAX_AD_PHOTO_SECONDS", 1.5, low=0.001, high=600.0)
# Photos longer than this many times their width (or wider than long) show no product.
ADS_MAX_ASPECT_RATIO = env_int("ADS_MAX_ASPECT_RATIO", 8)
# Uploads (POST /api/v1/ads/, and edits that replace the photos): per account, and per
# client address whoever is signed in. Each upload is up to ADS_MAX_PHOTOS photos to decode,
# store and classify; a seller posting by hand stays far below these.
ADS_UPLOAD_USER_RATE = env_rate("ADS_UPLOAD_USER_RATE", "60/hour")
ADS_UPLOAD_ADDRESS_RATE = env_rate("ADS_UPLOAD_ADDRESS_RATE", "300/hour")
# How long a seller's Idempotency-Key (POST /api/v1/ads/) is remembered, at least: a retry
# with the key within this time gets the first answer. Purged hourly (Celery beat).
ADS_IDEMPOTENCY_KEEP_HOURS = env_int("ADS_IDEMPOTENCY_KEEP_HOURS", 24)
# Seller sign-ups (the page's form, each POST) per client address.
SELLERS_SIGNUP_ADDRESS_RATE = env_rate("SELLERS_SIGNUP_ADDRESS_RATE", "20/hour")
