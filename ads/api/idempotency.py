"""What an idempotent post reads from its request: the ``Idempotency-Key`` header and a
fingerprint of the content sent.

The rule itself (one ad per seller and key, the key saved in the ad's own transaction, a
replay of the first answer) is ``services.create_ad`` with ``services.Once``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
# Enough for UUIDs, ULIDs, hex and base64url; nothing that needs escaping in a log line.
PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MAX_LENGTH}}}$"
RULE = f"1 to {MAX_LENGTH} letters, digits, '-', '_', '.' or ':' (a UUID, for example)"
_KEY = re.compile(PATTERN)


class MalformedKey(ValueError):
    """The header is there, but not a key this API accepts."""


def parse_key(value: str | None) -> str | None:
    """The key a header's ``value`` carries; None without the header.

    The IETF draft sends the key as a structured-field string, in double quotes; that is the
    same key as without them.
    """
    if value is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value):
        raise MalformedKey(f"{HEADER} must be {RULE}.")
    return value


def fingerprint(data: object, fields: Iterable[str]) -> str:
    """SHA-256 of what a request sends in ``fields``: by field name, each field's values in
    the order sent (the photos' order is their position in the ad), a file by its bytes.
    Anything else the request carries does not change the ad, and is left out."""
    content = {name: [_canonical(value) for value in _values(data, name)] for name in fields}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _values(data: object, name: str) -> list:
    if hasattr(data, "getlist"):  # a form (multipart or urlencoded), files included
        return data.getlist(name)
    if isinstance(data, Mapping) and name in data:  # JSON
        return [data[name]]
    return []  # not an object at all: refused by the validation that follows


def _canonical(value: object) -> object:
    if not hasattr(value, "chunks"):
        return value
    digest = hashlib.sha256()
    for chunk in value.chunks():  # from the start of the file
        digest.update(chunk)
    value.seek(0)  # for the validation that reads it next
    return {"file_sha256": digest.hexdigest()}
