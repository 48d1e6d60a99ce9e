"""Real processes for end-to-end tests: a Celery worker on this run's inference queue, and
fresh processes under a deployment's environment."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def celery_worker(
    log: Path, env: dict[str, str], queue: str | None = None
) -> Iterator[subprocess.Popen]:
    """A real prefork worker against the test database (``env``: the ``child_env`` fixture)
    on ``queue`` (this run's inference queue unless given); its output goes to ``log``,
    whose end is printed when it stops (pytest shows it when a test fails)."""
    command = [
        sys.executable, "-m", "celery", "-A", "avito_mod", "worker",
        "-Q", queue or settings.CLASSIFIER_INFERENCE_QUEUE, "--pool", "prefork",
        "--concurrency", "1", "-n", f"{log.stem}@%h",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_for(lambda: "ready." in log.read_text(), 60, log.read_text)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        print(log.read_text()[-3000:])


def answers(url: str, path: str = "/accounts/login/") -> bool:
    """Whether a server started by a test answers ``path`` yet (False while it boots, or
    on a loaded machine)."""
    import requests

    try:
        return requests.get(f"{url}{path}", timeout=2).ok
    except (requests.ConnectionError, requests.Timeout):
        return False


def wait_for(condition: Callable[[], bool], seconds: float, describe=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s\n{describe()}")


def deployment_env(data_dir: Path, **variables: str) -> dict:
    """A deployment's environment: only what it sets, none of this machine's settings."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "AVITO_", "ADS_", "CLASSIFIER_", "SELLERS_", "SIGNIN_"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    return inherited | {
        "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
        "AVITO_DATA_DIR": str(data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **variables,
    }


def production(**variables: str) -> dict:
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "ads.example.com",
    } | variables


def run(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python *args`` in the project's folder under ``env``."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    """``manage.py *arguments`` in a fresh process under ``env``."""
    return run(env, "manage.py", *arguments, timeout=600)
