"""Fault injection: real processes, real failures, and what the ads went through.

    python bench/faults.py [--short] [--only worker-loss] [--sellers 50] [--seconds 60]

Starts its own PostgreSQL (a throwaway cluster on a free port), its own Redis (a free port,
no persistence), the Procfile's web server, two inference workers and Celery beat, then
breaks them one way at a time while sellers post ads over HTTP (multipart, real photos),
each ad under an ``Idempotency-Key`` of its own, sent again under it after a ``503``, no
answer or a timeout (honouring ``Retry-After``, five attempts at most), as a careful
client does:

1. ``worker-loss``: an inference worker SIGKILLed (with its pool child) while it holds
   tasks, and left dead: its ads come back only through the beat sweep, and must all be
   decided within 60 s of the kill (``worker_loss_recovery_s``); ``worker-child-kill``:
   only a worker's pool process SIGKILLed mid-task (as the out-of-memory killer does),
   the worker itself left running.
2. ``redis-down``: Redis stopped while ads are uploaded, then started again (empty: its
   queue is gone); the beat sweep re-enqueues what stayed pending.
3. ``postgres-restart``: PostgreSQL restarted while workers are busy and uploads go on.
   ``commit-answer-lost``: the database's answer to an ad's COMMIT lost (the ad saved, the
   web server's connection closed before it heard so; a proxy in front of PostgreSQL does
   it, for a second web server) for every upload of a burst: each retry under its key must
   get the first ``201`` again (``Idempotent-Replayed: true``), no ad saved twice.
4. ``model-replaced``: the active version's LiteRT file replaced under running workers by
   another valid model, then by garbage: ads must go to review as ``model_unverified``
   (none published), ``manage.py check`` and the admin must name the version; once the
   recorded file is back, ads are classified again within seconds and the warning goes.
   ``model-broken``: the file missing when workers start (a deploy that lost it): ads go to
   review as ``model_unavailable``, check and admin say so; restored afterwards.
5. ``training-kill``: a tiny training's process SIGKILLed mid-training; the version must be
   marked failed and the active version keep serving.
6. ``load``: N sellers posting for S seconds against web + 2 workers.
7. ``logins``: 200 wrong passwords for one real account on each way in (the token API,
   the sellers' sign-in, the admin's), four at a time; ``logins_guessed`` counts, per way
   in, those answered otherwise than ``429`` (checked), at most 10 each. The right
   password must be refused while locked out and work after ``manage.py axes_reset``.
   Last, and it clears its lock-outs: everything here signs in from 127.0.0.1.

Recovery runs on the settings' defaults (the requeue sweep, the model files' checks), as
in a deployment. The scenarios are in ``bench/fault_harness/scenarios/``, by what they
break; a new one is a function there, listed in ``SCENARIOS``.

Invariants, over every ad a client got a ``201`` for:

- *lost*: missing from the database, or not in a final status (published, needs_review,
  rejected) by the scenario's recovery deadline.
- *duplicated*: routed more than once by the same model version. Predictions cannot show it
  (unique per photo and version), so the workers' log lines ``ad N routed by model vX`` are
  counted: one per successful conditional update of the ad's status.
- *published_blind*: published without, for every photo, a prediction of its category by a
  usable version at or above that version's threshold.
- *http_5xx*: responses with a status of 500 or more, or none at all (a ``503`` apart: the
  clear answer for "database unavailable" is counted as ``http_503`` and allowed only in
  the two database scenarios). Every attempt counts, a retry's too.

And over the whole database: *duplicated_posts*, logical posts saved as more than one ad
(each has a title of its own: one seller's ads with one title), which fails the run, as an
ad saved without its key does; *saved_without_201*, ads no client got a ``201`` for (a
post given up after its attempts), reported. ``retried`` and ``replayed`` count the
requests sent again under their key and those answered with the first ``201``.

Prints a table and ONE final JSON line (with the scenarios' own figures, such as
``worker_loss_recovery_s`` and ``logins_guessed``); the exit status is 1 when an invariant
is broken or a scenario found a problem (its ``broken`` list).
Never touches the machine's own PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fault_harness.harness import Harness  # noqa: E402
from bench.fault_harness.report import machine, print_table  # noqa: E402
from bench.fault_harness.scenarios import SCENARIOS  # noqa: E402
from bench.fault_harness.services import log  # noqa: E402


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI version (~4.5 minutes)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="repeatable")
    parser.add_argument("--sellers", type=int, help="concurrent sellers under load (50)")
    parser.add_argument("--seconds", type=float, help="length of the load (60 s)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    args = parser.parse_args()
    short = args.short
    args.sellers = args.sellers or (10 if short else 50)
    args.seconds = args.seconds or (10 if short else 60)
    args.batch = 12 if short else 40  # ads posted around a worker or database fault
    args.redis_ads = 10 if short else 50
    args.model_ads = 3 if short else 8
    args.photo_sets = 200 if short else 500  # ads of 3 distinct real photos, shared out
    # Per category: training refuses fewer than 20 outside the evaluation subset (~15 %).
    args.training_images = 32 if short else 40
    args.pg_down = 2 if short else 5  # seconds PostgreSQL stays down
    args.commit_ads = 4 if short else 10  # uploads whose commit's answer is lost
    args.deadline = 90 if short else 180  # recovery deadline per scenario, seconds
    return args


def main() -> int:
    args = arguments()
    harness = Harness(args)
    run = [name for name in SCENARIOS if not args.only or name in args.only]
    blind = published = duplicated_posts = keyless = 0
    outcomes: Counter = Counter()
    unanswered: Counter = Counter()
    began = time.monotonic()
    try:
        harness.up()
        for name in run:
            log(f"scenario {name}")
            result = SCENARIOS[name](harness)
            log(f"  {result.fault}: {result.sent} sent, {result.lost} lost, {result.problems}")
            harness.results.append(result)
        blind = harness.published_blind()
        duplicated_posts, keyless = harness.duplicated_posts()
        from ads.models import Ad

        published = harness.db(Ad.objects.filter(status="published").count)
        # Saved, though the client got no 201 (the database failed between the commit and
        # the answer): not lost if the sweep decides them, but a client may post them again.
        answered = {pk for r in harness.results for pk in r.ids}
        unanswered = harness.unanswered(answered)
        outcomes = Counter(
            f"{status} {reason}".strip()
            for status, reason in harness.db(
                lambda: list(Ad.objects.values_list("status", "review_reason"))
            )
        )
    finally:
        harness.down()
    results = harness.results
    print(f"\nmachine: {machine()}; {' '.join(sys.argv[1:]) or 'full run'}; "
          f"{time.monotonic() - began:.0f} s wall")  # fmt: skip
    print_table(results)
    print(f"outcomes: {dict(outcomes.most_common())}")
    if unanswered:
        print(f"saved without a 201 (the client saw an error): {dict(unanswered)}")
    broken = [f"{r.fault}: {p}" for r in results for p in r.problems]
    broken += _broken_posts(duplicated_posts, keyless)
    summary = {
        "lost": sum(r.lost for r in results),
        "duplicated": sum(r.duplicated for r in results),
        "published_blind": blind,
        "published": published,
        "saved_without_201": sum(unanswered.values()),
        "saved_without_201_pending": unanswered["pending"],
        "duplicated_posts": duplicated_posts,
        "retried": sum(r.retried for r in results),
        "replayed": sum(r.replayed for r in results),
        "http_5xx": sum(r.http_5xx for r in results),
        "http_503": sum(r.http_503 for r in results),
        "ads_sent": sum(r.sent for r in results),
        **{name: value for r in results for name, value in r.figures.items()},
        "broken": broken,
        "scenarios": [r.fault for r in results],
        "machine": machine(),
        "seconds": round(time.monotonic() - began),
    }
    print(json.dumps(summary))
    return 1 if summary["broken"] or blind or unanswered["pending"] else 0


def _broken_posts(duplicated_posts: int, keyless: int) -> list[str]:
    """What the run's ads say of the sellers' posts, each sent under a key of its own."""
    broken = []
    if duplicated_posts:
        broken.append(f"{duplicated_posts} post(s) saved as more than one ad")
    if keyless:
        broken.append(f"{keyless} ad(s) saved without their Idempotency-Key")
    return broken


if __name__ == "__main__":
    sys.exit(main())
