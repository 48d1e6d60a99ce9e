"""bench/soak.py's arithmetic (the soak itself is a bench, run by hand: bench/README.md)."""

from bench.soak import Post, downtime, percentile, summary

SUPERVISORD_LOG = """\
2026-12-07 04:06:22,287 INFO spawned: 'broker' with pid 10
2026-12-07 04:06:22,401 INFO spawned: 'web' with pid 11
2026-12-07 04:06:22,417 INFO spawned: 'worker' with pid 12
2026-12-07 04:07:07,174 WARN exited: web (terminated by SIGKILL; not expected)
2026-12-07 04:07:07,179 INFO spawned: 'web' with pid 13
2026-12-07 04:08:00,100 WARN exited: worker (exit status 1; not expected)
2026-12-07 04:08:01,100 INFO spawned: 'worker' with pid 14
"""


def test_a_failed_probe_counts_as_down_until_the_next_probe():
    samples = [(0.0, True), (1.0, False), (1.5, False), (4.0, True), (5.0, False), (5.2, True)]
    assert downtime(samples) == 3.0 + 0.2
    assert downtime([(0.0, False)]) == 0  # nothing after it to measure to
    assert downtime([]) == 0


def test_percentiles_take_the_nearest_rank_below():
    assert percentile([5, 1, 4, 2, 3], 0.5) == 3
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([], 0.95) is None


def test_the_summary_counts_lost_and_waiting_ads_restarts_and_exits_other_than_the_kills():
    posts = [
        Post("a", sent_at=100.0, status=201, ad_id=1, attempts=3),
        Post("b", sent_at=100.0, status=201, ad_id=2),  # never decided
        Post("c", sent_at=100.0, status=201, ad_id=3),  # gone
        Post("d", sent_at=100.0, status=400),
        Post("e", sent_at=100.0, status=500),
        Post("f", sent_at=100.0, status=None),  # no answer within the retries
    ]
    decisions = {1: (101.0, 101.5), 2: (101.0, 0), 3: None}
    result = summary(
        minutes=1,
        posts=posts,
        decisions=decisions,
        probes=[(0.0, True), (10.0, False), (12.5, True)],
        log_text="x CRITICAL Unrecoverable error: JSONDecodeError\n",
        supervisord_log=SUPERVISORD_LOG,
        kills={"web": 2.04, "worker": None},
    )
    assert result["ads"] == 6
    assert (result["accepted"], result["refused"], result["http_5xx"], result["gave_up"]) == (
        3,
        1,
        1,
        1,
    )
    assert (result["decided"], result["undecided"], result["lost"]) == (1, 1, 1)
    assert result["retried"] == 1
    assert result["unrecoverable_errors"] == 1
    assert result["restarts"] == {"broker": 0, "web": 1, "worker": 1}
    assert result["unexpected_exits"] == 1  # the worker's exit status 1, not the web's kill
    assert result["web_down_s"] == 2.5
    assert result["back_within_s"] == {"web": 2.0, "worker": None}
    assert result["p95_ms"] == 500.0  # from the commit
    assert result["p95_from_send_ms"] == 1500.0
