"""``bin/run``'s processes: the ``Procfile`` is their one list; supervisord starts them in
its order and restarts any that dies while the others keep serving.

``python -m avito_mod.processes`` writes supervisord's configuration from the Procfile to
``$AVITO_DATA_DIR/supervisord.conf`` and runs supervisord in the foreground (Ctrl-C stops
every process, the broker last). Each program runs its Procfile command through ``sh -c
'exec …'`` (so that ``${VAR:-default}`` works as under honcho, and the program is the
process supervisord watches). A program that exits is started again at once and logged
(``exited: worker (terminated by SIGKILL; not expected)``); one that dies within
``START_SECONDS`` of its start is retried after 1 s, 2 s, 3 s… and given up after
``START_RETRIES`` tries in a row (``gave up: … entered FATAL state``). Each program's output
goes to ``$AVITO_DATA_DIR/logs/<name>.log`` and, each line prefixed with its name, to the
terminal (``avito_mod.processes.output``). Each program, and the output listener, is
started through ``avito_mod.processes.tied``, so that it stops if supervisord is killed.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

# The Procfile line that starts the embedded broker: left out when REDIS_URL names one.
BROKER = "broker"
START_SECONDS = {BROKER: 1}  # up this long counts as started
DEFAULT_START_SECONDS = 5
START_RETRIES = 20  # failed starts in a row before giving up: 1 + 2 + … + 20 s of back-off
STOP_WAIT_SECONDS = 10  # after the stop signal, then SIGKILL (a task running is re-delivered)
LOG_BYTES, LOG_BACKUPS = "10MB", 2

_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path) -> list[tuple[str, str]]:
    """``(name, command)`` per line, in order; comments and blank lines skipped."""
    processes = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a 'name: command' line: {line!r}")
        processes.append((match[1], match[2].strip()))
    return processes


def supervisord_config(
    processes: list[tuple[str, str]],
    *,
    data_dir: Path,
    root: Path,
    embedded_broker: bool,
    password: str,
    supervisord_pid: int,
) -> str:
    """The configuration (it holds ``password``, supervisorctl's: keep the file private).
    ``supervisord_pid``: the process supervisord will run as, whose death stops the programs."""
    # By its path, without site-packages (-I -S): a program's start stays quick. ``-m``
    # would import the package avito_mod, and Celery with it (0.7 s).
    launcher = Path(__file__).with_name("tied.py")
    tied = f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(launcher))} {supervisord_pid} "
    logs = data_dir / "logs"
    control = {"username": "avito", "password": password}
    sections = [
        _section(
            "supervisord",
            nodaemon="true",
            logfile=logs / "supervisord.log",
            logfile_maxbytes=LOG_BYTES,
            logfile_backups=LOG_BACKUPS,
            pidfile=data_dir / "supervisord.pid",
            childlogdir=logs,
            loglevel="info",
            # Run by root (a container): said so, rather than warned about at each start.
            **({"user": "root"} if os.geteuid() == 0 else {}),
        ),
        # supervisorctl -c $AVITO_DATA_DIR/supervisord.conf status|restart worker|…
        _section("unix_http_server", file=data_dir / "supervisor.sock", chmod="0700", **control),
        _section(
            "rpcinterface:supervisor",
            **{"supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"},
        ),
        _section("supervisorctl", serverurl=f"unix://{data_dir / 'supervisor.sock'}", **control),
        _section(
            "eventlistener:output",
            command=f"{tied}{sys.executable} -m avito_mod.processes.output",
            directory=root,
            events="PROCESS_LOG",
            buffer_size=10000,
            priority=1,  # started first, stopped last: nothing said is lost
            autorestart="true",
            stderr_logfile="/dev/stdout",  # its prefixed lines: the terminal
            stderr_logfile_maxbytes=0,
        ),
    ]
    wanted = [(n, c) for n, c in processes if embedded_broker or n != BROKER]
    for order, (name, command) in enumerate(wanted, 1):
        sections.append(_program(name, command, order, root, logs, tied))
    return "\n".join(sections)


def _program(name: str, command: str, order: int, root: Path, logs: Path, tied: str) -> str:
    return _section(
        f"program:{name}",
        command=tied + "/bin/sh -c " + shlex.quote(f"exec {command}"),
        directory=root,
        priority=10 * order,  # started in the Procfile's order, stopped in reverse
        autorestart="true",
        startsecs=START_SECONDS.get(name, DEFAULT_START_SECONDS),
        startretries=START_RETRIES,
        stopsignal="TERM",
        stopwaitsecs=STOP_WAIT_SECONDS,
        # Its children too (gunicorn's and Celery's pool processes).
        stopasgroup="true",
        killasgroup="true",
        redirect_stderr="true",
        stdout_logfile=logs / f"{name}.log",
        stdout_logfile_maxbytes=LOG_BYTES,
        stdout_logfile_backups=LOG_BACKUPS,
        stdout_events_enabled="true",
    )


def _section(title: str, **values) -> str:
    # supervisord expands %(name)s in values: a literal % is %%.
    lines = [f"[{title}]"] + [f"{k}={str(v).replace('%', '%%')}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
