"""An ad's photos are checked within one budget of CPU seconds (``ADS_MAX_AD_PHOTO_SECONDS``,
issue 27): ten photos each within its own budget could otherwise cost ten budgets. The
photos past it are refused, each by name, and nothing of the ad is kept."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ads.models import Ad
from tests.support.costly import many_scans_jpeg
from tests.support.factories import upload
from tests.support.images import drawn_photo, encode
from tests.support.storage import stored_files

pytestmark = pytest.mark.django_db

ADS = "/api/v1/ads/"


def post(seller, photos: list[tuple[str, bytes]]):
    client = APIClient()
    client.force_authenticate(seller)
    form = {"title": "iPhone 12", "price": "250", "category": "phone"}
    form["photos"] = [upload(name, data) for name, data in photos]
    return client.post(ADS, form, format="multipart")


def test_photos_past_the_ads_budget_are_refused_by_name(seller, media, settings):
    # 32 scans of 2.25 megapixels each: some 25 ms of CPU a photo (a pass a scan), five
    # times the ad's budget here; each photo alone is well within its own (1 s).
    settings.ADS_MAX_AD_PHOTO_SECONDS = 0.005
    costly = many_scans_jpeg((1500, 1500), 32)

    response = post(seller, [(f"p{n}.jpg", costly) for n in (1, 2, 3)])

    assert response.status_code == 400
    messages = response.json()["photos"]
    assert [message.split(":")[0] for message in messages] == [
        "photo 1 ('p1.jpg')",
        "photo 2 ('p2.jpg')",
        "photo 3 ('p3.jpg')",
    ]
    assert all(
        "not checked: the ad's photos take too long to check together (more than 0.005 s of "
        "CPU)" in message
        for message in messages
    )
    assert not Ad.objects.exists()
    assert stored_files() == []


def test_the_same_photos_fit_the_default_budget(seller, media):
    costly = many_scans_jpeg((1500, 1500), 32)

    response = post(seller, [(f"p{n}.jpg", costly) for n in (1, 2, 3)])

    assert response.status_code == 201, response.content[:300]
    assert len(response.json()["photos"]) == 3


def test_a_photo_over_its_own_budget_says_so_not_the_ads(seller, media, settings):
    settings.CLASSIFIER_MAX_DECODE_SECONDS = 0.005
    costly = many_scans_jpeg((1500, 1500), 32)

    response = post(seller, [("slow.jpg", costly)])

    assert response.status_code == 400
    (message,) = response.json()["photos"]
    assert message.startswith("photo 1 ('slow.jpg'): the image takes too long to decode")


def test_a_webp_is_not_started_without_its_share_of_the_budget_left(seller, media, settings):
    # Its decoder reads the file whole, and no clock check can stop it midway. At the pixel
    # cap, it may take a photo's whole second (though this one takes milliseconds): half a
    # second left is not enough.
    settings.CLASSIFIER_MAX_IMAGE_PIXELS = 1200 * 1000
    settings.ADS_MAX_AD_PHOTO_SECONDS = 0.5
    webp = encode(drawn_photo("phone", 2, size=(1200, 1000)), "WEBP")

    response = post(seller, [("big.webp", webp)])

    assert response.status_code == 400
    (message,) = response.json()["photos"]
    assert message.startswith("photo 1 ('big.webp'): not checked: the ad's photos take too long")
    # The same photo alone is within its own budget.
    settings.ADS_MAX_AD_PHOTO_SECONDS = 1.5
    assert post(seller, [("big.webp", webp)]).status_code == 201
