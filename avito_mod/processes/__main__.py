"""``bin/run``: supervisord's configuration from the Procfile, then supervisord itself."""

import fcntl
import os
import secrets
import sys
from pathlib import Path

from . import read_procfile, supervisord_config

ROOT = Path(__file__).resolve().parent.parent.parent


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
    from django.conf import settings

    procfile = Path(os.environ.get("AVITO_PROCFILE", ROOT / "Procfile"))
    data_dir = settings.DATA_DIR
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    config = data_dir / "supervisord.conf"
    text = supervisord_config(
        read_procfile(procfile),
        data_dir=data_dir,
        root=ROOT,
        embedded_broker=settings.BROKER_EMBEDDED,
        password=secrets.token_urlsafe(24),
        supervisord_pid=os.getpid(),  # execv below keeps it
    )
    config.unlink(missing_ok=True)
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)
    _append_to_stdout()
    command = [sys.executable, "-m", "supervisor.supervisord", "--nodaemon", "-c", str(config)]
    os.execv(command[0], command)


def _append_to_stdout() -> None:
    """supervisord and the output listener both write to this process's stdout, the
    listener through a file of its own opened on /dev/stdout in append mode. Redirected to
    a file (``bin/run > run.log``), supervisord's own writes must append too, or each would
    write over the other's lines."""
    flags = fcntl.fcntl(sys.stdout.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(sys.stdout.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)


main()
