"""The S3 backend: django-storages' with this project's rules (see avito_mod/storage.py)."""

from __future__ import annotations

import io
import os
import posixpath
import threading

from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.files import File
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, is_seekable

# Files up to this size are written with one PutObject and read with one GetObject: the
# photos and models. django-storages' own way (a HEAD, then s3transfer's managed transfer)
# took 27-32 ms a read against 7 ms on a local S3 server, three times per ad, and asked
# whether a name was free (a HEAD) before every write.
SINGLE_REQUEST_BYTES = 64 * 1024 * 1024


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
    # backups rely on a stored name never changing content by accident. Writes claim their
    # name with If-None-Match: * (S3 since 2024, MinIO, R2, Ceph RGW; a provider that
    # ignores it would overwrite on a clash, which random and content-addressed names avoid).
    file_overwrite = False

    def __init__(self, **settings):
        settings.setdefault(
            "client_config",
            Config(
                # A request waits at most ~3 x 3 s for a bucket that does not answer.
                connect_timeout=3,
                read_timeout=20,
                retries={"max_attempts": 3, "mode": "standard"},
                signature_version="s3v4",
                s3={"addressing_style": "auto"},
            ),
        )
        super().__init__(**settings)
        self._shared_client = None
        self._client_pid = 0
        self._client_lock = threading.Lock()

    @property
    def client(self):
        """One boto3 client for every thread of the process (clients are thread-safe;
        django-storages makes a session and a resource per thread, ~30 ms each). A forked
        child (a prefork worker, a gunicorn process) makes its own: connections are not
        shared across a fork."""
        if self._shared_client is None or self._client_pid != os.getpid():
            with self._client_lock:
                if self._shared_client is None or self._client_pid != os.getpid():
                    self._shared_client = self._create_session().client(
                        "s3",
                        region_name=self.region_name,
                        use_ssl=self.use_ssl,
                        endpoint_url=self.endpoint_url,
                        config=self.client_config,
                        verify=self.verify,
                    )
                    self._client_pid = os.getpid()
        return self._shared_client

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_shared_client", None)
        state.pop("_client_lock", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._shared_client = None
        self._client_pid = 0
        self._client_lock = threading.Lock()

    def _open(self, name: str, mode: str = "rb") -> File:
        if mode != "rb":
            return super()._open(name, mode)
        key = self._normalize_name(clean_name(name))
        try:
            answer = self.client.get_object(Bucket=self.bucket_name, Key=key)
        except ClientError as error:
            self._raise_if_missing(error, name)
            raise
        if answer["ContentLength"] > SINGLE_REQUEST_BYTES:
            answer["Body"].close()
            return super()._open(name, mode)
        with answer["Body"] as body:
            return _ReadFile(io.BytesIO(body.read()), clean_name(name), self)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # No HEAD to see whether the name is free: ``_save`` claims it by a conditional
        # write, atomically (two processes saving one name can no longer both "win").
        return clean_name(name)

    def _save(self, name: str, content) -> str:
        size = getattr(content, "size", None)
        if size is None or size > SINGLE_REQUEST_BYTES:  # a managed (multipart) upload
            return super()._save(super().get_available_name(name), content)
        if is_seekable(content):
            content.seek(0)
        data = content.read()
        body = data.encode() if isinstance(data, str) else data
        cleaned = clean_name(name)
        for _ in range(100):
            key = self._normalize_name(cleaned)
            parameters = self._get_write_parameters(key, content)
            try:
                self.client.put_object(
                    Bucket=self.bucket_name, Key=key, Body=body, IfNoneMatch="*", **parameters
                )
                return cleaned
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] != 412:
                    raise
            # Taken: another name, as FileSystemStorage picks one (``name_<random>.ext``).
            folder, file = posixpath.split(cleaned)
            cleaned = posixpath.join(folder, self.get_alternative_name(*posixpath.splitext(file)))
        raise FileExistsError(f"{self.describe()}: no free name found for {name}")

    def stamp(self, name: str) -> tuple:
        """(size, last modified, ETag) from one HEAD request: the ETag changes with the
        content even within the second ``LastModified`` is rounded to, and S3 has no
        change time (``get_created_time`` is not implemented)."""
        key = self._normalize_name(clean_name(name))
        try:
            head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        except ClientError as error:
            self._raise_if_missing(error, name)
            raise
        return head["ContentLength"], head["LastModified"].timestamp(), head["ETag"]

    def _raise_if_missing(self, error: ClientError, name: str) -> None:
        if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            raise FileNotFoundError(f"{self.describe()}: no {name}") from None

    def describe(self) -> str:
        return f"s3://{self.bucket_name}/{self.location}".rstrip("/")


class _ReadFile(File):
    """An object's bytes, read whole; opened again (a model field's file is, on each use),
    it reads the object again, as a file on disk would be."""

    def __init__(self, content: io.BytesIO, name: str, storage: PrivateS3Storage):
        super().__init__(content, name=name)
        self._storage = storage

    def open(self, mode: str | None = None) -> _ReadFile:
        if mode not in (None, "rb"):
            raise ValueError(f"{self.name} was opened to be read; it cannot be reopened {mode!r}")
        if not self.closed:
            self.seek(0)
        else:
            self.file = self._storage._open(self.name, "rb").file
        return self
