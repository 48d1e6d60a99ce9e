"""Posting an ad at most once per seller and Idempotency-Key: replays, reused keys, the
seller's retry after a lost answer, two requests in flight at once, and the purge."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import OperationalError, connection
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework.test import APIClient

from ads import services, tasks
from ads.api import idempotency
from ads.models import Ad, IdempotencyKey
from avito_mod.celery import app as celery_app
from tests.support.factories import ad_form, upload
from tests.support.storage import stored_files

ADS = "/api/v1/ads/"
KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


def client_for(user) -> APIClient:
    client = APIClient(raise_request_exception=False)  # a 503 is answered, not raised
    client.force_authenticate(user)
    return client


def post_ad(user, key: str | None = KEY, **overrides):
    headers = {} if key is None else {idempotency.HEADER: key}
    return client_for(user).post(ADS, ad_form(**overrides), format="multipart", headers=headers)


@pytest.fixture
def classification_requests(monkeypatch) -> list[int]:
    """Requests recorded instead of sent, stamped on the ad as ``enqueue`` stamps them."""
    requested: list[int] = []

    def request(ad_id: int) -> None:
        requested.append(ad_id)
        Ad.objects.filter(pk=ad_id).update(classification_requested_at=timezone.now())

    monkeypatch.setattr(services, "request_classification", request)
    return requested


# --- Replays and reused keys -----------------------------------------------------------


@pytest.mark.django_db
def test_a_repeat_with_the_same_key_and_content_gets_the_first_answer_and_creates_nothing(
    seller, media, classification_requests, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # run as the first commits
        first = post_ad(seller)
    with django_capture_on_commit_callbacks(execute=True):
        again = post_ad(seller)

    assert first.status_code == again.status_code == 201, first.data
    assert again.json() == first.json()
    assert again.content == first.content  # the same bytes: the first answer, kept
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    ad = Ad.objects.get()
    assert first.json()["id"] == ad.pk and first.json()["status"] == "pending"
    assert classification_requests == [ad.pk]  # the replay sent nothing to classify
    assert len(stored_files()) == 2
    kept = IdempotencyKey.objects.get()
    assert (kept.seller, kept.key, kept.ad, kept.status_code) == (seller, KEY, ad, 201)


OTHER_CONTENT = {
    "title": {"title": "iPhone 13"},
    "price": {"price": "249.99"},
    "photo bytes": {"photos": [upload("front.jpg", seed=1), upload("back.jpg", seed=3)]},
    "photo order": {"photos": [upload("back.jpg", seed=2), upload("front.jpg", seed=1)]},
    "one photo more": {
        "photos": [upload("front.jpg", seed=1), upload("back.jpg", seed=2), upload(seed=3)]
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("change", OTHER_CONTENT, ids=list(OTHER_CONTENT))
def test_the_same_key_with_other_content_is_a_422(seller, media, change):
    first = post_ad(seller)

    response = post_ad(seller, **OTHER_CONTENT[change])

    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"The {KEY!r} Idempotency-Key was already used by this account for a request with "
        "other content; send a new key to post a new ad."
    )
    assert list(Ad.objects.values_list("pk", flat=True)) == [first.json()["id"]]
    assert len(stored_files()) == 2


@pytest.mark.django_db
def test_the_same_photos_under_other_file_names_are_the_same_content(seller, media):
    first = post_ad(seller)

    again = post_ad(seller, photos=[upload("a.jpg", seed=1), upload("b.jpg", seed=2)])

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.django_db
def test_keys_are_per_seller(seller, other_seller, media):
    mine = post_ad(seller)

    theirs = post_ad(other_seller)

    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != mine.json()["id"]
    assert Ad.objects.filter(seller=other_seller).count() == 1


@pytest.mark.django_db
def test_without_a_key_every_post_creates_an_ad(seller, media):
    assert post_ad(seller, key=None).status_code == 201
    assert post_ad(seller, key=None).status_code == 201
    assert Ad.objects.count() == 2 and not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_refused_post_keeps_no_key_so_the_corrected_ad_can_use_it(seller, media):
    refused = post_ad(seller, photos=[upload("notes.jpg", b"not a photo")])
    assert refused.status_code == 400 and "photos" in refused.json()
    assert not IdempotencyKey.objects.exists()

    corrected = post_ad(seller)

    assert corrected.status_code == 201 and "Idempotent-Replayed" not in corrected
    assert Ad.objects.get().pk == corrected.json()["id"]


@pytest.mark.django_db
def test_a_deleted_ads_key_still_answers_its_retries_and_posts_nothing(seller, media):
    first = post_ad(seller)
    assert client_for(seller).delete(f"{ADS}{first.json()['id']}/").status_code == 204

    again = post_ad(seller)

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and not Ad.objects.exists()


@pytest.mark.django_db
def test_the_quoted_form_of_the_draft_standard_is_the_same_key(seller, media):
    first = post_ad(seller, key=f'"{KEY}"')

    again = post_ad(seller, key=KEY)

    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert IdempotencyKey.objects.get().key == KEY


MALFORMED = {
    "empty": "",
    "space": "two words",
    "too long": "k" * 256,
    "not ascii": "ключ",
    "quotes only": '""',
    "one quote": '"abc',
    "slash": "a/b",
}


@pytest.mark.django_db
@pytest.mark.parametrize("key", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_key_is_a_400_naming_the_header(seller, media, key):
    response = post_ad(seller, key=key)

    assert response.status_code == 400
    assert response.json() == {
        "Idempotency-Key": [
            "Idempotency-Key must be 1 to 255 letters, digits, '-', '_', '.' or ':' "
            "(a UUID, for example)."
        ]
    }
    assert not Ad.objects.exists() and not stored_files()


@pytest.mark.django_db
def test_the_longest_key_is_accepted(seller, media):
    assert post_ad(seller, key="k" * 255).status_code == 201


def test_the_fingerprint_covers_the_ads_fields_only_and_reads_each_file_from_the_start():
    photo = upload("front.jpg", seed=1)
    photo.read()  # left at the end by someone
    fields = ["title", "photos"]

    one = idempotency.fingerprint({"title": "x", "photos": photo, "junk": 1}, fields)
    two = idempotency.fingerprint({"title": "x", "photos": upload("other.jpg", seed=1)}, fields)

    assert one == two and len(one) == 64
    assert photo.tell() == 0  # left for the validation to read
    assert idempotency.fingerprint({"title": "y", "photos": photo}, fields) != one
    assert idempotency.fingerprint(["not", "an", "object"], fields) != one


# --- A retry after a lost answer ----------------------------------------------------------


class LostCommitAnswer:
    """The database's acknowledgement of a commit lost: the transaction is committed, but
    the connection fails as it answers (PostgreSQL stopped at that moment)."""

    def __init__(self, commit):
        self.commit = commit
        self.armed = True

    def __call__(self):
        self.commit()
        if self.armed:
            self.armed = False
            raise OperationalError("server closed the connection unexpectedly")


# A real commit: the request's own transaction is the outermost one.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_retry_after_the_answer_to_a_commit_was_lost_gets_the_one_ad(
    seller, media, classification_requests, monkeypatch
):
    monkeypatch.setattr(connection, "commit", LostCommitAnswer(connection.commit))

    lost = post_ad(seller)
    assert lost.status_code == 503  # what the seller sees, though the ad exists
    assert Ad.objects.count() == 1

    # A retry at once could be racing the first post's commit hook: it leaves the ad be.
    assert post_ad(seller)["Idempotent-Replayed"] == "true"
    assert classification_requests == []
    # The seller retries after the Retry-After the 503 asked for.
    Ad.objects.update(created_at=timezone.now() - services.RESUME_AFTER)
    retry = post_ad(seller)

    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    ad = Ad.objects.get()
    assert retry.json()["id"] == ad.pk and ad.images.count() == 2
    # The commit hook never ran: the replay sent the ad to classification, not the sweep.
    assert classification_requests == [ad.pk]
    # Whether the commit happened was unknown: the photos' files were kept, in case.
    stored = set(stored_files())
    assert stored == set(ad.images.values_list("file", flat=True))


# --- Two requests with one key at once ---------------------------------------------------


def waiting_on_a_lock() -> int:
    """Other sessions of this database waiting on a lock: a second insert of a key."""
    with connection.cursor() as cursor:
        # Within a transaction the statistics are a snapshot taken once: take a new one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's unique index waits")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("same_content", [True, False], ids=["double click", "other content"])
def test_two_requests_in_flight_with_one_key_make_one_ad(
    seller, media, classification_requests, same_content
):
    """The first holds its key uncommitted until the second's insert of the same key waits
    on the unique index; then it commits, and the second gets the first's answer (or the
    422 for other content). Neither ever sees the other's ad in a lookup."""
    first_kept = threading.Event()
    answers: dict[str, object] = {}

    def hold_until_the_second_waits(sender, instance, created, **kwargs):
        if threading.current_thread().name != "first":
            return
        first_kept.set()
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        answers["second waited"] = bool(waiting_on_a_lock())

    def post(name: str, **overrides) -> None:
        try:
            answers[name] = post_ad(seller, **overrides)
        finally:
            connection.close()  # this thread's own connection

    post_save.connect(hold_until_the_second_waits, sender=IdempotencyKey)
    try:
        first = threading.Thread(target=post, name="first", args=("first",))
        first.start()
        assert first_kept.wait(30)
        overrides = {} if same_content else {"title": "iPhone 13"}
        second = threading.Thread(target=post, name="second", args=("second",), kwargs=overrides)
        second.start()
        first.join(60)
        second.join(60)
    finally:
        post_save.disconnect(hold_until_the_second_waits, sender=IdempotencyKey)

    assert answers["second waited"]
    ad = Ad.objects.get()
    assert answers["first"].status_code == 201 and answers["first"].json()["id"] == ad.pk
    if same_content:
        assert answers["second"].status_code == 201
        assert answers["second"]["Idempotent-Replayed"] == "true"
        assert answers["second"].json() == answers["first"].json()
    else:
        assert answers["second"].status_code == 422
    assert classification_requests == [ad.pk]
    # The second's photos were stored, then deleted with its rolled-back transaction.
    assert len(stored_files()) == 2


# --- Keeping keys ----------------------------------------------------------------------


@pytest.mark.django_db
def test_keys_older_than_the_retention_are_purged_and_can_post_again(seller, media, settings):
    settings.ADS_IDEMPOTENCY_KEEP_HOURS = 24
    old, recent = post_ad(seller, key="old"), post_ad(seller, key="recent")
    now = timezone.now()
    IdempotencyKey.objects.filter(key="old").update(created_at=now - timedelta(hours=25))
    IdempotencyKey.objects.filter(key="recent").update(created_at=now - timedelta(hours=23))

    assert tasks.purge_idempotency_keys() == 1

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]
    assert post_ad(seller, key="recent")["Idempotent-Replayed"] == "true"
    # Forgotten: the same request is a new ad now.
    again = post_ad(seller, key="old")
    assert again.status_code == 201 and again.json()["id"] != old.json()["id"]
    assert recent.status_code == 201 and Ad.objects.count() == 3


def test_the_purge_runs_hourly_on_the_inference_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-idempotency-keys"]
    assert entry == {"task": tasks.purge_idempotency_keys.name, "schedule": 3600}
    route = celery_app.amqp.router.route({}, tasks.purge_idempotency_keys.name)
    assert route["queue"].name == settings.CLASSIFIER_INFERENCE_QUEUE


@pytest.mark.parametrize("hours", [0, -1])
def test_check_refuses_a_retention_that_keeps_no_key(settings, hours):
    settings.ADS_IDEMPOTENCY_KEEP_HOURS = hours
    assert [message.id for message in run_checks(tags=["ads"])] == ["ads.E003"]
