"""Faults of the inference workers: a whole worker lost, or only its pool process killed."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from ..harness import Harness, Result
from ..sellers import Tally
from ..services import Proc, children

# The bar: the ads a dead worker held are decided within a minute.
WORKER_LOSS_BAR_S = 60
RESENT = re.compile(r"re-sending (\d+) ad\(s\) pending")


def worker_loss(h: Harness) -> Result:
    """SIGKILL a worker (its whole process group) while it holds tasks, received and not
    finished, and leave it dead: the other worker takes the new ads, and those the dead one
    held come back only through the beat sweep (Redis hands a task nobody acknowledged out
    again only after its visibility timeout, an hour). Restarted once every ad is decided.

    Its figure, ``worker_loss_recovery_s``: from the kill until every ad of the scenario is
    decided."""
    result, tally = Result("worker-loss"), Tally()
    victim = h.workers[1]
    poster = threading.Thread(target=h.sellers.burst, args=(h.args.batch, tally, "worker-loss", 6))
    poster.start()
    held = wait_in_flight(victim, seconds=60)
    resent_before = _resent(h)
    victim.kill()
    killed_at = time.monotonic()
    poster.join()
    h.account(result, tally, killed_at, h.args.deadline)
    recovery = result.recover_s
    result.figures["worker_loss_recovery_s"] = recovery
    result.notes.append(
        f"{held} task(s) held by the killed worker; the sweep re-sent "
        f"{_resent(h) - resent_before} ad(s) since"
    )
    if not held:
        result.problems.append("the worker held no task when killed: nothing was lost with it")
    if recovery is None or recovery > WORKER_LOSS_BAR_S:
        result.problems.append(
            f"a dead worker's ads not all decided within {WORKER_LOSS_BAR_S} s ({recovery} s)"
        )
    h.restart_worker(victim)  # for the scenarios after this one
    return result


def _resent(h: Harness) -> int:
    """How many ads the requeue sweep re-sent so far, by the inference workers' logs."""
    return sum(
        int(match[1])
        for path in h.logs.glob("inference*.log")
        for match in RESENT.finditer(path.read_text(errors="replace"))
    )


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
