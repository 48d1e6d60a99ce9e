"""bin/run's processes (``avito_mod.processes``): the Procfile is their one list, and
supervisord, configured from it, restarts a process that dies, with a back-off while it
keeps failing at start, as the others keep serving; Ctrl-C (SIGINT) stops them all."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from avito_mod import broker
from avito_mod.processes import read_procfile, supervisord_config
from tests.support.live import ROOT, wait_for

SLEEPER = "python -c \"import time; print('sleeper up', flush=True); time.sleep(600)\""


def test_the_procfile_lists_the_broker_first_then_web_both_workers_and_beat():
    names = [name for name, _ in read_procfile(ROOT / "Procfile")]
    assert names == ["broker", "web", "worker", "training", "beat"]


def test_each_line_becomes_a_program_in_order_with_the_broker_only_when_embedded():
    processes = read_procfile(ROOT / "Procfile")
    config = supervisord_config(
        processes,
        data_dir=Path("/d"),
        root=ROOT,
        embedded_broker=True,
        password="p",
        supervisord_pid=1,
    )
    order = re.findall(r"\[program:(\w+)\]\ncommand=.*\ndirectory=.*\npriority=(\d+)", config)
    assert order == [
        ("broker", "10"),
        ("web", "20"),
        ("worker", "30"),
        ("training", "40"),
        ("beat", "50"),
    ]
    # The shell expands ${VAR:-default}; supervisord's own %(...)s needs % doubled.
    assert "-n training@%%h" in config
    assert "${CLASSIFIER_INFERENCE_QUEUE:-inference}" in config
    on_redis = supervisord_config(
        processes,
        data_dir=Path("/d"),
        root=ROOT,
        embedded_broker=False,
        password="p",
        supervisord_pid=1,
    )
    assert "[program:broker]" not in on_redis and "[program:web]" in on_redis


class Supervised:
    """``python -m avito_mod.processes`` (what bin/run runs) on a Procfile of the test's."""

    def __init__(self, folder: Path, procfile: str) -> None:
        self.folder = folder
        (folder / "Procfile").write_text(procfile)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_URL", "DATABASE_URL", "AVITO_", "DJANGO_"))
        } | {
            "AVITO_DATA_DIR": str(folder),
            "AVITO_PROCFILE": str(folder / "Procfile"),
            "DJANGO_SETTINGS_MODULE": "avito_mod.settings",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        self.output = folder / "run.log"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "avito_mod.processes"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(lambda: self.state_of("sleeper") == "RUNNING", 30, self.text)

    def ctl(self, *args: str) -> str:
        command = [sys.executable, "-m", "supervisor.supervisorctl"]
        config = ["-c", str(self.folder / "supervisord.conf"), *args]
        done = subprocess.run(command + config, capture_output=True, text=True, timeout=10)
        return done.stdout

    def state_of(self, name: str) -> str:
        words = self.ctl("status", name).split()
        return words[1] if len(words) > 1 else ""

    def pid(self, name: str) -> int:
        return int(self.ctl("pid", name).strip())

    def text(self) -> str:
        return self.output.read_text()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        return self.process.wait(30)


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="avito-run-"))  # short: the sockets' paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def running(folder):
    supervised = Supervised(folder, f"broker: python -m avito_mod.broker\nsleeper: {SLEEPER}\n")
    yield supervised
    if supervised.process.poll() is None:
        supervised.stop()
    print(supervised.text()[-3000:])


def test_a_killed_process_is_restarted_and_said_so_while_the_others_keep_serving(running):
    broker_pid, sleeper_pid = running.pid("broker"), running.pid("sleeper")
    os.kill(sleeper_pid, signal.SIGKILL)
    wait_for(lambda: running.text().count("sleeper  | sleeper up") == 2, 10, running.text)
    assert running.pid("sleeper") != sleeper_pid
    assert running.pid("broker") == broker_pid
    assert "exited: sleeper (terminated by SIGKILL; not expected)" in running.text()


def test_the_embedded_broker_killed_comes_back_with_its_queue(running):
    url = broker.celery_url(running.folder / "broker")
    client = redis.Redis.from_url(broker.redis_url(url), socket_timeout=2)
    client.lpush("inference", b"a task")
    os.kill(running.pid("broker"), signal.SIGKILL)
    started = time.monotonic()
    broker.wait_until_up(url, seconds=10)
    assert time.monotonic() - started < 10
    assert client.llen("inference") == 1
    assert "exited: broker (terminated by SIGKILL; not expected)" in running.text()


def test_ctrl_c_stops_every_process(running):
    pids = [running.pid("broker"), running.pid("sleeper")]
    assert running.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "received SIGINT" in running.text()


def test_a_process_that_keeps_failing_at_start_is_retried_later_each_time(folder):
    supervised = Supervised(
        folder, f"sleeper: {SLEEPER}\nfailing: python -c \"raise SystemExit('no config')\"\n"
    )
    try:
        wait_for(lambda: supervised.text().count("spawned: 'failing'") >= 4, 20, supervised.text)
        spawned = [
            datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for line in supervised.text().splitlines()
            if "spawned: 'failing'" in line
        ]
        gaps = [b - a for a, b in zip(spawned, spawned[1:], strict=False)]
        assert gaps[1] > gaps[0] + 0.5 and gaps[2] > gaps[1] + 0.5  # 1 s, 2 s, 3 s…
        assert "exited: failing (exit status 1; not expected)" in supervised.text()
        assert "failing  | no config" in supervised.text()
        assert supervised.state_of("sleeper") == "RUNNING"
    finally:
        supervised.stop()


def test_supervisord_killed_takes_its_processes_with_it_and_a_new_run_starts(running):
    pids = [running.pid("broker"), running.pid("sleeper")]
    running.process.kill()  # supervisord itself (bin/run's process), SIGKILL
    running.process.wait(10)

    def gone(pid: int) -> bool:
        try:  # ended, or ended and not yet reaped by init (a zombie holds no socket)
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
        except FileNotFoundError:
            return True

    wait_for(lambda: all(gone(pid) for pid in pids), 10, running.text)
    # The broker's socket and supervisord's are free for the next bin/run.
    again = Supervised(running.folder, f"broker: python -m avito_mod.broker\nsleeper: {SLEEPER}\n")
    try:
        broker.wait_until_up(broker.celery_url(running.folder / "broker"), seconds=10)
        assert again.state_of("broker") == "RUNNING"
    finally:
        again.stop()
