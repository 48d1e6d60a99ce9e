"""Faults of the inference workers: a whole worker killed, or only its pool process."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from ..harness import Harness, Result
from ..sellers import Tally
from ..services import Proc, children


def worker_kill(h: Harness) -> Result:
    """SIGKILL a worker (its whole process group) while it classifies an ad; restart."""
    result, tally = Result("worker-kill"), Tally()
    victim = h.workers[1]
    n = h.args.batch
    poster = threading.Thread(target=h.sellers.burst, args=(n, tally, "worker-kill", 6))
    poster.start()
    in_flight = wait_in_flight(victim, seconds=60)
    victim.kill()
    killed_at = time.monotonic()
    result.notes.append(f"tasks in flight in the killed worker: {in_flight}")
    poster.join()
    time.sleep(1)
    h.restart_worker(victim)
    h.account(result, tally, killed_at, h.args.deadline)
    return result


def worker_child_kill(h: Harness) -> Result:
    """SIGKILL only a worker's pool process (the out-of-memory killer's way) mid-task:
    the worker's main process sees it die and puts the task back on the queue at once."""
    result, tally = Result("worker-child-kill"), Tally()
    victim = h.workers[0]
    poster = threading.Thread(
        target=h.sellers.burst, args=(h.args.batch, tally, "worker-child-kill", 6)
    )
    poster.start()
    in_flight = wait_in_flight(victim, seconds=60)
    child = children(victim.process.pid)
    for pid in child:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    result.notes.append(f"pool process {child} killed with {in_flight} task(s) in flight")
    poster.join()
    h.account(result, tally, killed_at, h.args.deadline)
    return result


def wait_in_flight(worker: Proc, seconds: float) -> int:
    """Until the worker has received a task it has not finished; how many it has."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = worker.logfile.read_text(errors="replace")
        received = set(re.findall(r"classify_ad\[([0-9a-f-]+)\] received", text))
        done = set(re.findall(r"classify_ad\[([0-9a-f-]+)\] (?:succeeded|retry|raised)", text))
        if received - done and len(received) >= 2:
            return len(received - done)
        time.sleep(0.02)
    return 0
