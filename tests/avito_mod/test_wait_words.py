"""A refusal for too many requests says how long to wait as a person would ("in 51
minutes"), the same way on the API and the pages, with ``Retry-After`` in seconds."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from avito_mod.throttling import wait_in_words
from tests.support.factories import upload
from tests.support.images import jpeg_bytes


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (1, "1 second"),
        (40, "40 seconds"),
        (59.5, "1 minute"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (3040, "51 minutes"),
        (3599, "1 hour"),
        (3600, "1 hour"),
        (3601, "1 hour 1 minute"),
        (2 * 3600 + 30 * 60, "2 hours 30 minutes"),
        (86400, "24 hours"),
    ],
)
def test_waits_are_worded_rounded_up(seconds, words):
    assert wait_in_words(seconds) == words


@pytest.fixture
def fresh_counters():
    cache.clear()  # the counters live in the cache, which outlives a test
    yield
    cache.clear()


@pytest.mark.django_db
def test_the_api_words_an_uploads_wait_and_keeps_retry_after_in_seconds(
    seller, settings, fresh_counters
):
    settings.ADS_UPLOAD_USER_RATE = "0/hour"  # the next upload in an hour
    client = APIClient()
    client.force_authenticate(seller)
    form = {"title": "iPhone 12", "price": "250", "category": "phone", "photos": [upload()]}

    refused = client.post("/api/v1/ads/", form, format="multipart")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "3600"
    assert refused.json()["detail"] == (
        "Too many ads posted or photos changed from this account or address. Try again in 1 hour."
    )


@pytest.mark.django_db
def test_the_quick_check_words_its_wait(seller, settings, fresh_counters):
    settings.CLASSIFIER_QUICK_CHECK_USER_RATE = "0/min"
    client = APIClient()
    client.force_authenticate(seller)

    refused = client.post(
        "/api/v1/classify/", {"image": upload(data=jpeg_bytes()), "category": "phone"}
    )

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.json()["detail"].endswith(" Try again in 1 minute.")


@pytest.mark.django_db
def test_the_sign_up_page_words_its_wait(settings, fresh_counters):
    settings.SELLERS_SIGNUP_ADDRESS_RATE = "0/day"
    password = "a-long-enough-Passw0rd"
    form = {"username": "sam", "password1": password, "password2": password}

    refused = Client().post("/accounts/signup/", form)

    assert refused.status_code == 429
    assert refused["Retry-After"] == "86400"
    assert "try again in 24 hours." in refused.content.decode()
