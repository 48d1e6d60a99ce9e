"""Rate limits of uploads (POST /api/v1/ads/, and edits that replace the photos) and of the
sellers' sign-up form: per account and per client address, answered with 429 and
``Retry-After``. (The quick check's own limits: tests/classifier/test_quick_check.py.)"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from ads.models import Ad
from tests.support.factories import upload

pytestmark = pytest.mark.django_db

ADS = "/api/v1/ads/"
SIGNUP = "/accounts/signup/"


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()  # the counters live in the cache, which outlives a test
    yield
    cache.clear()


def client_for(user, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.force_authenticate(user)
    return client


def post_ad(client, seed: int = 0):
    form = {"title": "iPhone 12", "price": "250", "category": "phone"}
    return client.post(ADS, form | {"photos": [upload(seed=seed)]}, format="multipart")


def refused_as_throttled(response, what: str) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert what in response.json()["detail"]
    assert "Try again in " in response.json()["detail"]


# --- Uploads ------------------------------------------------------------------------------


def test_each_account_may_post_only_so_many_ads(seller, other_seller, media, settings):
    settings.ADS_UPLOAD_USER_RATE = "2/min"
    client = client_for(seller)
    assert [post_ad(client, seed).status_code for seed in (1, 2)] == [201, 201]
    refused_as_throttled(post_ad(client, 3), "Too many ads posted")
    assert Ad.objects.filter(seller=seller).count() == 2
    # Another account at the same address has its own count.
    assert post_ad(client_for(other_seller), 4).status_code == 201


def test_each_address_may_post_only_so_many_ads_whoever_signs_in(
    seller, other_seller, media, settings
):
    settings.ADS_UPLOAD_ADDRESS_RATE = "2/min"
    first, second = client_for(seller, "10.0.0.1"), client_for(other_seller, "10.0.0.1")
    assert [post_ad(first, 1).status_code, post_ad(second, 2).status_code] == [201, 201]
    # A forged X-Forwarded-For does not make a new client: no proxy is trusted by default.
    second.credentials(HTTP_X_FORWARDED_FOR="203.0.113.9")
    refused_as_throttled(post_ad(second, 3), "Too many ads posted")
    assert post_ad(client_for(seller, "10.0.0.2"), 4).status_code == 201


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(seller, media, settings):
    settings.ADS_UPLOAD_ADDRESS_RATE = "1/min"
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {"NUM_PROXIES": 1}
    client = client_for(seller, "10.0.0.1")
    client.credentials(HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert post_ad(client, 1).status_code == 201
    assert post_ad(client, 2).status_code == 429
    client.credentials(HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert post_ad(client, 3).status_code == 201


def test_edits_that_replace_photos_count_as_uploads_and_other_edits_do_not(seller, media, settings):
    settings.ADS_UPLOAD_USER_RATE = "2/min"
    client = client_for(seller)
    url = f"{ADS}{post_ad(client, 1).json()['id']}/"
    new_photos = {"photos": [upload(seed=5)]}
    assert client.patch(url, new_photos, format="multipart").status_code == 200
    # The two uploads are spent; edits without photos, and reads, go on.
    assert client.patch(url, {"title": "Renamed"}, format="multipart").status_code == 200
    assert client.patch(url, {"price": "10"}, format="json").status_code == 200
    assert client.get(url).status_code == 200
    assert client.get(ADS).status_code == 200
    refused_as_throttled(
        client.patch(url, {"photos": [upload(seed=6)]}, format="multipart"), "photos changed"
    )
    assert Ad.objects.get().title == "Renamed"


# --- Sign-ups -----------------------------------------------------------------------------


def sign_up(address: str, username: str, password: str = "a-long-enough-Passw0rd"):
    form = {"username": username, "password1": password, "password2": password}
    return Client(REMOTE_ADDR=address).post(SIGNUP, form)


def test_each_address_may_sign_up_only_so_many_times(db, settings):
    settings.SELLERS_SIGNUP_ADDRESS_RATE = "2/min"
    # Failed attempts count too: each is a try at a name or a password.
    assert sign_up("10.0.0.1", "sam", password="123").status_code == 200
    assert sign_up("10.0.0.1", "sam").status_code == 302
    refused = sign_up("10.0.0.1", "olga")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "Too many accounts were created from your network" in refused.content.decode()
    assert 'name="username"' in refused.content.decode()  # the form, to try again later
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["sam"]
    # Looking at the form is not an attempt; another address has its own count.
    assert Client(REMOTE_ADDR="10.0.0.1").get(SIGNUP).status_code == 200
    assert sign_up("10.0.0.2", "olga").status_code == 302
