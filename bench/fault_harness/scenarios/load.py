"""No fault but numbers: many sellers posting at once against the web server and two
workers."""

from __future__ import annotations

import threading
import time

from ..harness import Harness, Result
from ..sellers import Tally


def load(h: Harness) -> Result:
    """``--sellers`` sellers posting one ad after another for ``--seconds``."""
    result, tally = Result("load"), Tally()
    stop = threading.Event()
    started = time.monotonic()
    threads = h.sellers.background(tally, "load", stop, sellers=h.args.sellers)
    time.sleep(h.args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    rate = len(tally.ids) / (ended - started)
    result.notes.append(f"{len(tally.ids)} ads in {ended - started:.0f}s ({rate:.1f} ads/s)")
    h.account(result, tally, ended, h.args.deadline + h.sweep_s)
    return result
