"""The S3 backend: django-storages' with this project's rules (see avito_mod/storage.py)."""

from __future__ import annotations

from botocore.config import Config
from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage
from storages.utils import clean_name


class PrivateS3Storage(S3Storage):
    """django-storages' S3 backend with this project's rules: nothing public, names never
    reused (as on the local disk), and bounded waits on a bucket that does not answer."""

    # No ACL on write: objects keep the bucket's (private) one; a public-read ACL is never
    # asked for. Buckets with ACLs disabled (S3's default) would refuse any ACL anyway.
    default_acl = None
    # A URL of an object, if one is ever made, is signed and short-lived.
    querystring_auth = True
    querystring_expire = 300
    # Like FileSystemStorage: a name taken gets a suffix; the registry's checksums and the
    # backups rely on a stored name never changing content by accident.
    file_overwrite = False

    def __init__(self, **settings):
        settings.setdefault(
            "client_config",
            Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                signature_version="s3v4",
                s3={"addressing_style": "auto"},
            ),
        )
        super().__init__(**settings)

    def stamp(self, name: str) -> tuple:
        """(size, last modified, ETag) from one HEAD request: the ETag changes with the
        content even within the second ``LastModified`` is rounded to, and S3 has no
        change time (``get_created_time`` is not implemented)."""
        key = self._normalize_name(clean_name(name))
        try:
            head = self.connection.meta.client.head_object(Bucket=self.bucket_name, Key=key)
        except ClientError as error:
            if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                raise FileNotFoundError(f"{self.describe()}: no {name}") from None
            raise
        return head["ContentLength"], head["LastModified"].timestamp(), head["ETag"]

    def describe(self) -> str:
        return f"s3://{self.bucket_name}/{self.location}".rstrip("/")
