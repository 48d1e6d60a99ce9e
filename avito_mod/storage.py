"""Where the stored files live: the local folder, or an S3-compatible bucket.

Photos, training images, model artifacts and backbones all go through Django's default
storage. ``AVITO_STORAGE_URL=s3://bucket[/prefix]`` puts them in a bucket (django-storages'
S3 backend, boto3 underneath), so that web processes and workers on other machines share
them; unset, they stay in the local folder ``AVITO_MEDIA_ROOT``.

The bucket stays private (avito_mod/s3.py): no page links to an object; the
permission-checked views stream each file.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"
# Imported only where the bucket is used: boto3 adds 0.2 s to every process start.
S3_BACKEND = "avito_mod.s3.PrivateS3Storage"
# S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def default_storage_config(url: str, *, endpoint_url: str = "", region: str = "") -> dict:
    """The ``STORAGES["default"]`` entry for ``AVITO_STORAGE_URL`` (empty: the local folder),
    refusing a URL it cannot use with a message that says what is wrong."""
    url, endpoint_url = url.strip(), endpoint_url.strip()
    if not url:
        if endpoint_url:
            raise ImproperlyConfigured(
                "AVITO_S3_ENDPOINT_URL is set but AVITO_STORAGE_URL is not: files would stay on "
                "the local disk. Set AVITO_STORAGE_URL=s3://bucket[/prefix] too, or unset both."
            )
        return {"BACKEND": LOCAL_BACKEND}
    parts = urlsplit(url)
    if parts.username or parts.password:  # not echoed: it may hold a secret
        raise ImproperlyConfigured(
            "AVITO_STORAGE_URL must be s3://bucket[/prefix], with no user or password: "
            "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an instance role)"
        )
    if parts.scheme != "s3":
        raise ImproperlyConfigured(
            f"AVITO_STORAGE_URL must look like s3://bucket[/prefix], not {url!r} "
            "(unset it to keep files in the local folder AVITO_MEDIA_ROOT)"
        )
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"AVITO_STORAGE_URL {url!r}: only s3://bucket[/prefix]; credentials come from "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an instance role), the endpoint "
            "from AVITO_S3_ENDPOINT_URL"
        )
    if not _BUCKET.fullmatch(parts.netloc):
        raise ImproperlyConfigured(
            f"AVITO_STORAGE_URL {url!r} names no valid bucket: s3://bucket[/prefix], the "
            "bucket 3-63 lower-case letters, digits, dots or hyphens"
        )
    endpoint = urlsplit(endpoint_url)
    if endpoint_url and (endpoint.scheme not in ("http", "https") or not endpoint.hostname):
        raise ImproperlyConfigured(
            f"AVITO_S3_ENDPOINT_URL must be an http(s)://host[:port] URL, not {endpoint_url!r}"
        )
    options = {
        "bucket_name": parts.netloc,
        "location": parts.path.strip("/"),
        "endpoint_url": endpoint_url or None,
        "region_name": region.strip() or None,
    }
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}


def describe(storage) -> str:
    """Where ``storage`` keeps its files, for messages: a folder or s3://bucket/prefix."""
    if hasattr(storage, "describe"):
        return storage.describe()
    return str(getattr(storage, "location", storage))


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` is a bucket that could not be reached or failed on its side (a
    moment's outage, worth a retry), not a missing object or a refused request."""
    if "botocore" not in sys.modules:  # never imported: no bucket in use
        return False
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BucketConnectionError

    if isinstance(error, ClientError):
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
    return isinstance(error, BucketConnectionError | HTTPClientError)
