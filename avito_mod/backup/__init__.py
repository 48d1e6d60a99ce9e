"""Backup and restore: the database's own consistent dump and every stored file, in one
archive with a manifest of checksums (``manage.py backup``, ``manage.py restore``)."""


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why, for the operator."""
