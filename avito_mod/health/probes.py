"""Running the readiness checks: all at once, each in a thread, within a deadline.

A check that has not answered by the deadline is reported down. Its thread is left to
finish (Python cannot stop a thread blocked in a socket call), and while it runs no other
thread is started for that check: probes arriving meanwhile wait on the same run, so a hung
dependency costs one thread per check per process, never one per probe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import connections

from .checks import Down

logger = logging.getLogger(__name__)

# A run that finished this recently answers the next probes too: a flood of probes costs
# at most four runs of each check a second per process, and a part that fails is still
# reported within this plus the deadline.
REUSE_SECONDS = 0.25


@dataclass(frozen=True)
class Outcome:
    up: bool
    reason: str = ""  # why it is down, safe to show
    seconds: float = 0.0  # how long the check took


class _Run:
    """One run of a check, in its own thread."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.finished = 0.0
        self.outcome: Outcome | None = None  # set before ``done``
        self.done = threading.Event()


class CheckRunner:
    """One check in this process: its latest run, and the state last logged."""

    def __init__(self, name: str, check: Callable[[], None], reuse_seconds: float) -> None:
        self.name, self.check, self.reuse_seconds = name, check, reuse_seconds
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._logged = "up"

    def current_run(self) -> _Run:
        """The run in flight, or one that finished less than ``reuse_seconds`` ago, or a
        new one started now."""
        with self._lock:
            run = self._run
            if run is None or (
                run.done.is_set() and time.monotonic() - run.finished >= self.reuse_seconds
            ):
                run = self._run = _Run()
                threading.Thread(
                    target=self._execute, args=(run,), name=f"readyz-{self.name}", daemon=True
                ).start()
            return run

    def _execute(self, run: _Run) -> None:
        try:
            self.check()
            outcome = Outcome(up=True)
            self._log("up", f"{self.name} is up again", logging.INFO)
        except Down as error:
            outcome = Outcome(up=False, reason=str(error))
            self._log(str(error), f"{self.name} is down: {error}", logging.WARNING)
        except Exception as error:  # reported down; its traceback logged once
            outcome = Outcome(
                up=False, reason=f"unexpected {type(error).__name__} (details in the server log)"
            )
            self._log(repr(error), f"{self.name} check failed", logging.ERROR, exc_info=error)
        finally:
            # The thread's own connections (the model check reads the registry): a probe
            # thread never hands them back to a request.
            connections.close_all()
        run.finished = time.monotonic()
        run.outcome = replace(outcome, seconds=run.finished - run.started)
        run.done.set()

    def no_answer(self, run: _Run, probe_started: float, deadline: float) -> Outcome:
        """The outcome of a run that missed this probe's deadline."""
        now = time.monotonic()
        if run.started >= probe_started:
            reason = f"no answer within {deadline:g} s"
        else:
            reason = f"no answer for {now - run.started:.0f} s (still waiting)"
        self._log("no answer", f"{self.name} is down: {reason}", logging.WARNING)
        return Outcome(up=False, reason=reason, seconds=now - run.started)

    def _log(self, state: str, message: str, level: int, exc_info=None) -> None:
        """Log a change of state, once: not every probe."""
        with self._lock:
            if state == self._logged:
                return
            self._logged = state
        logger.log(level, "readiness: %s", message, exc_info=exc_info)


class Readiness:
    """The checks of one process, run together by ``probe``."""

    def __init__(
        self, checks: dict[str, Callable[[], None]], reuse_seconds: float = REUSE_SECONDS
    ) -> None:
        self.runners = {
            name: CheckRunner(name, check, reuse_seconds) for name, check in checks.items()
        }

    def probe(self, deadline: float) -> dict[str, Outcome]:
        started = time.monotonic()
        runs = {name: runner.current_run() for name, runner in self.runners.items()}
        outcomes = {}
        for name, run in runs.items():
            if run.done.wait(max(0.0, started + deadline - time.monotonic())):
                outcomes[name] = run.outcome
            else:
                outcomes[name] = self.runners[name].no_answer(run, started, deadline)
        return outcomes
