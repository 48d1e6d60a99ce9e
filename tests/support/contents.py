"""Everything an installation holds, as one JSON value: every row of every model and the
SHA-256 of every stored file. A restore must give back exactly what a backup saw.

Run in a process of its own against a restored database and storage with
``manage.py shell --no-imports -c "from tests.support.contents import main; main()"``.
"""

from __future__ import annotations

import hashlib
import json

from django.apps import apps
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder

from avito_mod.backup.media import walk


class _Encoder(DjangoJSONEncoder):
    def default(self, value):
        if isinstance(value, bytes | memoryview):  # BinaryField: features
            return "sha256:" + hashlib.sha256(value).hexdigest()
        return super().default(value)


def contents() -> dict:
    rows = {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in apps.get_models()
        if not model._meta.proxy
    }
    files = {}
    for name in walk(default_storage):
        with default_storage.open(name, "rb") as handle:
            files[name] = hashlib.sha256(handle.read()).hexdigest()
    return json.loads(json.dumps({"rows": rows, "files": files}, cls=_Encoder))


def main() -> None:
    print(json.dumps(contents()))


# ``manage.py`` arguments that print contents() as JSON, read where the process's settings
# point (another installation's database and storage).
READ_CONTENTS = ("shell", "--no-imports", "-c", "from tests.support.contents import main; main()")
