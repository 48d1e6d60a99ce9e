"""Several machines: the units in ``deploy/`` and the start-up gate of a process with a role.

Each process is started fresh under a deployment's environment; nothing here needs the
services, since the gate reads settings and connects to nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks

from avito_mod.deployment.checks import TAG
from tests.support.live import ROOT, production, run

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ONE_MACHINE_PROBLEMS = [
    "DJANGO_DEBUG is on",
    "DJANGO_SECRET_KEY is not set",
    "the database is a SQLite file",
    "no REDIS_URL",
    "stored on this host's disk",
]
SHARED = {
    "DATABASE_URL": "postgres://avito@db.internal:5432/avito_mod",
    "REDIS_URL": "redis://redis.internal:6379/0",
}
A_BUCKET = {"AVITO_STORAGE_URL": "s3://avito-media/prod"}
A_SHARED_MOUNT = {"AVITO_SHARED_FILESYSTEM": "true"}


def celery(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run(env, "-m", "celery", "-A", "avito_mod", *args, timeout=60)


def test_a_web_process_on_one_machine_settings_stops_naming_every_problem(environment):
    done = run(environment(AVITO_ROLE="web", DJANGO_DEBUG="true"), "-c", "import avito_mod.wsgi")
    assert done.returncode != 0
    assert "AVITO_ROLE=web: this process cannot run on several machines" in done.stderr
    for problem in [*ONE_MACHINE_PROBLEMS, "DJANGO_ALLOWED_HOSTS names only this machine"]:
        assert problem in done.stderr, problem


@pytest.mark.parametrize("role", ["inference", "training"])
def test_a_worker_with_a_role_stops_at_start_up(environment, role):
    env = environment(AVITO_ROLE=role, DJANGO_DEBUG="true")
    done = celery(env, "worker", "--concurrency", "1")
    assert done.returncode == 1
    assert f"avito-mod: AVITO_ROLE={role}" in done.stderr
    for problem in ONE_MACHINE_PROBLEMS:
        assert problem in done.stderr, problem
    assert "ready." not in done.stdout + done.stderr


def test_beat_with_a_role_stops_at_start_up(environment, tmp_path):
    schedule = str(tmp_path / "schedule")
    done = celery(environment(AVITO_ROLE="beat"), "beat", "--schedule", schedule)
    assert done.returncode == 1
    assert "avito-mod: AVITO_ROLE=beat" in done.stderr
    assert "no REDIS_URL" in done.stderr


@pytest.mark.parametrize("storage", [A_BUCKET, A_SHARED_MOUNT], ids=["bucket", "shared mount"])
def test_a_deployed_web_process_starts(environment, storage):
    env = environment(AVITO_ROLE="web", **production(**SHARED, **storage))
    done = run(env, "-c", "import avito_mod.wsgi; print('started')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("started")


def test_without_a_role_one_machine_settings_are_fine(environment):
    done = run(environment(), "-c", "import avito_mod.wsgi; print('started')")
    assert done.returncode == 0, done.stderr


def test_an_unknown_role_stops_start_up(environment):
    done = run(environment(AVITO_ROLE="webserver"), "manage.py", "check")
    assert done.returncode != 0
    assert "AVITO_ROLE must be one of web, inference, training, beat" in done.stderr


def deployment_errors() -> set[str]:
    return {message.id for message in run_checks(tags=[TAG], include_deployment_checks=True)}


def test_the_rules_in_process(settings):
    settings.AVITO_ROLE = "inference"
    settings.DEBUG = False
    settings.REDIS_URL = "redis://redis.internal:6379/0"
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.AVITO_SHARED_FILESYSTEM = False
    settings.SECRET_KEY_GIVEN = False  # the key this machine made for itself
    local = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    expected = {"deployment.E004"} | ({"deployment.E002"} if local else set())
    assert deployment_errors() == expected | {"deployment.E006"}
    settings.SECRET_KEY_GIVEN = True
    assert deployment_errors() == expected
    settings.AVITO_SHARED_FILESYSTEM = True  # a network mount
    assert deployment_errors() == expected - {"deployment.E004"}
    settings.AVITO_SHARED_FILESYSTEM = False
    settings.AVITO_ROLE = "web"  # only the web process needs its host names
    assert "deployment.E005" in deployment_errors()
    settings.AVITO_ROLE = ""
    assert deployment_errors() == set()


def unit(path: Path) -> dict[str, list[str]]:
    """The unit's keys and their values (a key may repeat)."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def test_every_role_has_its_unit_and_exactly_one_each():
    roles = {}
    for path in UNITS:
        for environment_line in unit(path).get("Environment", []):
            role = re.search(r"AVITO_ROLE=(\w+)", environment_line)
            if role:
                roles.setdefault(role.group(1), []).append(path.name)
    assert roles == {
        "web": ["avito-web.service"],
        "inference": ["avito-inference.service"],
        "training": ["avito-training.service"],
        "beat": ["avito-beat.service"],
    }


def test_the_workers_take_the_queues_the_web_process_sends_to(environment):
    common = (DEPLOY / "env" / "common.env").read_text()
    shown = run(
        environment(),
        "-c",
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CLASSIFIER_INFERENCE_QUEUE, settings.CLASSIFIER_TRAINING_QUEUE)",
    )
    inference_queue, training_queue = shown.stdout.split()
    inference = " ".join(unit(DEPLOY / "systemd" / "avito-inference.service")["ExecStart"])
    training = " ".join(unit(DEPLOY / "systemd" / "avito-training.service")["ExecStart"])
    assert "-Q ${CLASSIFIER_INFERENCE_QUEUE}" in inference
    assert "-Q ${CLASSIFIER_TRAINING_QUEUE}" in training
    # The defaults, written out: the units read them from the file, which has no defaults.
    assert f"CLASSIFIER_INFERENCE_QUEUE={inference_queue}\n" in common
    assert f"CLASSIFIER_TRAINING_QUEUE={training_queue}\n" in common
    # One TensorFlow run at a time, each in a fresh process that gives its memory back.
    assert "--concurrency 1 --max-tasks-per-child 1" in training


DOCUMENTED_IN = ("configuration.md", "deployment.md")


def test_every_environment_file_a_unit_reads_is_provided_and_documented():
    # Documented where an operator looks for settings: the configuration and deployment pages.
    documented = "".join((ROOT / "docs" / page).read_text() for page in DOCUMENTED_IN)
    for path in UNITS:
        for name in unit(path).get("EnvironmentFile", []):
            assert name.startswith("/etc/avito-mod/"), name
            assert (DEPLOY / "env" / Path(name).name).is_file(), name
    for example in (DEPLOY / "env").glob("*.env"):
        for line in example.read_text().splitlines():
            if line and not line.startswith("#"):
                variable = line.split("=", 1)[0]
                assert f"`{variable}`" in documented, f"{example.name}: {variable} not in docs"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not IN_CI, reason="no systemd-analyze"
)
def test_systemd_accepts_the_units(tmp_path):
    # Installed where the units expect it: the project in /opt/avito-mod with its .venv.
    venv = Path(sys.prefix)
    for path in UNITS:
        text = path.read_text().replace("/opt/avito-mod/.venv", str(venv))
        (tmp_path / path.name).write_text(text.replace("/opt/avito-mod", str(ROOT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # Unknown keys and misspelt sections are only warned about: none is expected either.
    assert (done.stdout + done.stderr).strip() == ""
