"""Run a command that dies with supervisord: ``python avito_mod/processes/tied.py PID CMD…``.

supervisord killed with SIGKILL (the machine's OOM killer, a ``kill -9``) cannot stop its
programs, which would keep running without a supervisor and hold the web server's port and
the broker's socket, so that the next ``bin/run`` fails. Each program is started through
this module: it asks Linux to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``,
kept across ``exec``), then becomes the command. SIGTERM is each program's ordinary stop
(gunicorn and Celery stop their own pool processes, the broker writes its file). ``PID``
is supervisord's: if it died before the request was made, the command is not started.
Elsewhere than Linux the command runs as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie_to_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # supervisord died before the request: nothing would tell us
        sys.exit(f"avito-mod: supervisord (pid {parent}) is gone: not starting {sys.argv[2:]}")


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    tie_to_parent(parent)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
