"""Real processes for end-to-end tests: a Celery worker on this run's inference queue."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


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


def wait_for(condition: Callable[[], bool], seconds: float, describe=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s\n{describe()}")
