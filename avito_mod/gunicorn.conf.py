"""gunicorn settings for the web process (``Procfile``, ``bench/``).

Several processes, not one: each keeps its own copy of the LiteRT model and answers quick
checks on its own core, which threads of one process cannot do under the GIL. Threads in
each process overlap the waits (database, slow uploads).
"""

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("AVITO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
threads = int(os.environ.get("WEB_THREADS", 4))
# Ten photos from a phone on a slow line take a while to arrive.
timeout = 120
# gunicorn caps the request line and headers, not bodies: those are capped per view before
# they are read (avito_mod/body_limits.py) and by the reverse proxy (deploy/nginx). An
# unread body is drained at most a little before the connection closes. Its defaults, stated.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
# gunicorn's runtime control socket (one per user, in ~/.gunicorn) is not used, and a second
# server on the same machine (a benchmark, a test) would take it over.
control_socket_disable = True

# /metrics counts requests in every process: prometheus_client's multiprocess mode keeps
# each process's counts in files of one folder, which the answering process sums up. The
# folder is this server's own (WEB_METRICS_DIR, else a new temporary one), emptied at each
# start: counts of a previous run or of another server must not be summed in. Only this
# server's processes get it: commands and workers count in memory as usual.
_own_metrics_dir = not os.environ.get("WEB_METRICS_DIR")
_metrics_dir = os.environ.get("WEB_METRICS_DIR") or tempfile.mkdtemp(prefix="avito-web-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(_metrics_dir).glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
