"""Celery beat keeps its schedule in the data folder, however it is started (the Procfile,
the systemd unit or by hand from the project's folder), never beside the code."""

from __future__ import annotations

import subprocess

from tests.support.live import ROOT, run


def test_beat_writes_its_schedule_in_the_data_folder(environment, tmp_path):
    env = environment(DJANGO_DEBUG="true")
    done = run(
        env,
        "-c",
        "import django; django.setup(); from avito_mod.celery import app; "
        "print(app.conf.beat_schedule_filename)",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / "data" / "celerybeat-schedule")


def test_a_stray_schedule_in_the_project_folder_is_ignored_by_git():
    for name in ("celerybeat-schedule.dat", "celerybeat-schedule.db"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
        assert ignored.returncode == 0, name
