"""The scenarios, one fault each, in the order a run goes through them.

A scenario is a function taking the running ``Harness`` and returning its ``Result``: it
breaks something while sellers post ads, lets it recover, and calls ``h.account(...)`` to
count what the ads went through. To add one, write it in the module of what it breaks (or
a new module) and list it below: ``--only`` and the table follow. What went wrong goes in
``result.problems`` (the run then fails), what is worth knowing in ``result.notes``, a
figure of its own for the final JSON line in ``result.figures``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..harness import Harness, Result
from . import auth, infrastructure, load, models, training, workers

SCENARIOS: dict[str, Callable[[Harness], Result]] = {
    "worker-loss": workers.worker_loss,
    "worker-child-kill": workers.worker_child_kill,
    "redis-down": infrastructure.redis_down,
    "postgres-restart": infrastructure.postgres_restart,
    "commit-answer-lost": infrastructure.commit_answer_lost,
    "model-replaced": models.model_replaced,
    "model-broken": models.model_broken,
    "training-kill": training.training_kill,
    "load": load.load,
    # Last: it locks 127.0.0.1 out of signing in (lifted at its end) and posts no ads.
    "logins": auth.logins,
}
