"""gunicorn settings for the web process (``Procfile``, ``bench/``).

Several processes, not one: each keeps its own copy of the LiteRT model and answers quick
checks on its own core, which threads of one process cannot do under the GIL. Threads in
each process overlap the waits (database, slow uploads).
"""

import os

bind = os.environ.get("AVITO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
threads = int(os.environ.get("WEB_THREADS", 4))
# Ten photos from a phone on a slow line take a while to arrive.
timeout = 120
accesslog = "-"
# gunicorn's runtime control socket (one per user, in ~/.gunicorn) is not used, and a second
# server on the same machine (a benchmark, a test) would take it over.
control_socket_disable = True
