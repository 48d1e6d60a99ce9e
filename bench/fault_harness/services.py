"""The processes the fault runs start: a throwaway PostgreSQL and Redis of their own, and
the project's web server and Celery processes (each in its own process group)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.pipeline import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Services of our own --------------------------------------------------------------


class Postgres:
    """A throwaway cluster in a temporary folder (as the ``postgres`` user when root)."""

    def __init__(self, scratch: Path):
        self.port = free_port()
        self.dir = scratch / "pg"
        self.dir.mkdir()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.url = self.url_on(self.port)

    @staticmethod
    def url_on(port: int) -> str:
        """The database's URL through ``port`` (ours, or a proxy's in front of it)."""
        return f"postgres://postgres@127.0.0.1:{port}/avito_faults"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        data = str(self.dir / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "avito_faults")  # fmt: skip

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l",
                  str(self.dir / "server.log"), "-o", options, "-w", action, *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")


class Redis:
    def __init__(self, scratch: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = open(scratch / "redis.log", "a")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=self.log, stderr=self.log,
        )  # fmt: skip
        for _ in range(50):
            probe = ["redis-cli", "-p", str(self.port), "ping"]
            if subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise SystemExit("our Redis did not start")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


# --- The project's processes --------------------------------------------------------


@dataclass
class Proc:
    name: str
    command: list[str]
    env: dict
    logfile: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = open(self.logfile, "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=handle, stderr=handle,
            start_new_session=True,  # its own group: a SIGKILL reaches the pool child too
        )  # fmt: skip

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def celery_worker(name: str, queue: str, env: dict, logs: Path, training=False) -> Proc:
    command = [PYTHON, "-m", "celery", "-A", "avito_mod", "worker", "-Q", queue,
               "--concurrency", "1", "-n", f"{name}@%h", "--without-gossip",
               "--without-mingle", "--loglevel", "INFO"]  # fmt: skip
    if training:
        command += ["--max-tasks-per-child", "1"]
    return Proc(name, command, env, logs / f"{name}.log")
