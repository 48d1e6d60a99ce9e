"""An ad's photos together are capped (``ADS_MAX_AD_PHOTO_BYTES``, issue 27): the CPU an
upload costs grows with its bytes. Over the cap, the body is refused before it is read
(413) or, within the form's room, the photos before any is decoded (400); nothing is kept."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import Client
from rest_framework.test import APIClient

from ads.models import Ad
from tests.support.factories import upload
from tests.support.images import jpeg_bytes
from tests.support.storage import stored_files

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
NGINX = Path(__file__).resolve().parents[2] / "deploy/nginx/avito-mod.conf"


def photos(count: int) -> list[bytes]:
    return [jpeg_bytes("phone", seed) for seed in range(count)]


def post(seller, files: list[bytes]):
    client = APIClient()
    client.force_authenticate(seller)
    form = {"title": "iPhone 12", "price": "250", "category": "phone"}
    form["photos"] = [upload(f"photo{n}.jpg", data) for n, data in enumerate(files, start=1)]
    return client.post("/api/v1/ads/", form, format="multipart")


def test_photos_over_the_ads_total_are_refused_before_any_is_decoded(seller, media, settings):
    files = photos(3)
    settings.ADS_MAX_AD_PHOTO_BYTES = sum(map(len, files)) - 1

    response = post(seller, files)

    assert response.status_code == 400
    (message,) = response.json()["photos"]
    assert message.startswith("the photos are too large together (")
    assert "an ad's photos may take at most" in message
    assert message.endswith("send fewer or smaller photos")
    assert not Ad.objects.exists()
    assert stored_files() == []


def test_photos_that_fit_the_total_exactly_are_taken(seller, media, settings):
    files = photos(3)
    settings.ADS_MAX_AD_PHOTO_BYTES = sum(map(len, files))

    response = post(seller, files)

    assert response.status_code == 201, response.content[:300]
    assert len(response.json()["photos"]) == 3


def test_replacing_the_photos_obeys_the_total_too(seller, media, settings):
    ad_id = post(seller, photos(1)).json()["id"]
    files = photos(3)
    settings.ADS_MAX_AD_PHOTO_BYTES = sum(map(len, files)) - 1
    client = APIClient()
    client.force_authenticate(seller)

    form = {"photos": [upload(f"p{n}.jpg", data) for n, data in enumerate(files)]}
    response = client.patch(f"/api/v1/ads/{ad_id}/", form, format="multipart")

    assert response.status_code == 400
    assert "too large together" in response.json()["photos"][0]
    assert Ad.objects.get().images.count() == 1


class Unread(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")


def declared(client: Client, length: int):
    """A POST of an ad declaring ``length`` bytes of body, none of which may be read."""
    multipart = "multipart/form-data; boundary=b"
    body = {"CONTENT_TYPE": multipart, "CONTENT_LENGTH": str(length), "wsgi.input": Unread()}
    return client.generic("POST", "/api/v1/ads/", **body)


def test_a_body_over_the_ads_total_is_refused_unread_naming_the_rule(seller, settings):
    settings.ADS_MAX_AD_PHOTO_BYTES = 5 * MIB
    client = Client()
    client.force_login(seller)

    response = declared(client, 7 * MIB)

    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request is too large (7.0 MiB; at most 6.0 MiB: an ad's photos may "
        "take 5.0 MiB together)."
    }


def test_the_ads_cap_is_photos_times_count_when_that_is_less(seller, settings):
    settings.ADS_MAX_PHOTOS, settings.ADS_MAX_PHOTO_BYTES = 2, MIB
    client = Client()
    client.force_login(seller)

    response = declared(client, 3 * MIB + 1)

    assert response.status_code == 413
    assert "at most 3.0 MiB: an ad's photos may take 2.0 MiB together" in response.json()["detail"]


def test_the_reverse_proxy_has_the_same_cap_as_the_default():
    from django.conf import settings

    config = NGINX.read_text()
    ads = re.search(r"location ~ \^/api/v1/ads/.*?client_max_body_size (\d+)m;", config, re.S)
    assert int(ads.group(1)) * MIB == settings.ADS_MAX_AD_PHOTO_BYTES + MIB


def test_the_default_takes_ten_phone_photos_of_5_mb():
    from django.conf import settings

    assert settings.ADS_MAX_AD_PHOTO_BYTES >= 10 * 5_000_000


def test_the_check_warns_when_one_photo_of_the_allowed_size_cannot_fit(settings):
    settings.ADS_MAX_AD_PHOTO_BYTES = settings.ADS_MAX_PHOTO_BYTES - 1

    assert [message.id for message in run_checks(tags=["ads"])] == ["ads.W001"]
