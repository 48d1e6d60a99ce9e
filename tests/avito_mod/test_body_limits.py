"""Caps on request bodies before they are read (issue 27, avito_mod/body_limits.py)."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.test.client import encode_multipart
from django.urls import reverse

from ads.models import Ad
from tests.support.factories import PASSWORD, upload
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
BOUNDARY = "BoUnDaRy"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


class Unread(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")


class Counted(io.BytesIO):
    """A request body that counts the bytes read from it."""

    def read(self, size=-1):
        data = super().read(size)
        self.taken = getattr(self, "taken", 0) + len(data)
        return data


def declared(client: Client, path: str, length: int, **extra):
    """A POST declaring ``length`` bytes of multipart body, none of which may be read."""
    body = {"CONTENT_TYPE": MULTIPART, "CONTENT_LENGTH": str(length), "wsgi.input": Unread()}
    return client.generic("POST", path, **body, **extra)


def multipart(client: Client, path: str, fields: dict):
    body = encode_multipart(BOUNDARY, fields)
    stream = Counted(body)
    environ = {"CONTENT_TYPE": MULTIPART, "CONTENT_LENGTH": str(len(body)), "wsgi.input": stream}
    response = client.generic("POST", path, **environ)
    return response, stream, len(body)


def test_an_anonymous_64_mib_sign_in_is_refused_unread():
    response = declared(Client(), "/accounts/login/", 64 * MIB)

    assert response.status_code == 413
    assert b"The request is too large (64.0 MiB; at most 4.0 MiB)" in response.content


def test_the_api_answers_413_in_json(seller):
    client = Client()
    client.force_login(seller)

    response = declared(client, "/api/v1/classify/", 30 * MIB)

    assert response.status_code == 413
    assert response.json() == {"detail": "The request is too large (30.0 MiB; at most 11.0 MiB)."}


def test_an_ad_takes_its_photos_and_no_more(seller, settings):
    settings.ADS_MAX_PHOTOS, settings.ADS_MAX_PHOTO_BYTES = 10, 2 * MIB
    client = Client()
    client.force_login(seller)

    assert declared(client, "/api/v1/ads/", 21 * MIB + 1).status_code == 413
    assert (
        declared(client, "/api/v1/ads/1/", 21 * MIB + 1, REQUEST_METHOD="PATCH").status_code == 413
    )


def test_a_photo_over_the_cap_is_refused_as_it_arrives(seller, media, settings):
    settings.ADS_MAX_PHOTO_BYTES = 256 * 1024
    client = Client()
    client.force_login(seller)
    fields = {
        "title": "iPhone",
        "description": "Works",
        "price": "10",
        "category": "phone",
        "photos": [
            upload("front.jpg", seed=1),
            upload("huge.jpg", b"\xff\xd8" + bytes(3 * MIB)),
            upload("back.jpg", seed=2),
        ],
    }

    response, body, length = multipart(client, "/api/v1/ads/", fields)

    assert response.status_code == 413
    assert "'huge.jpg' is too large (more than 1.2 MiB)" in response.json()["detail"]
    # Cut off 1 MiB past the photo cap (and a read ahead), the rest unread.
    assert body.taken < 256 * 1024 + MIB + 128 * 1024 < 2 * MIB < length
    assert not Ad.objects.exists()


def test_a_photo_just_over_the_cap_is_read_and_refused_with_its_size(seller, media, settings):
    settings.ADS_MAX_PHOTO_BYTES = 256 * 1024
    client = Client()
    client.force_login(seller)
    fields = {"title": "iPhone", "price": "10", "category": "phone"}
    fields["photos"] = [upload("big.jpg", bytes(300 * 1024))]

    response, _, _ = multipart(client, "/api/v1/ads/", fields)

    assert response.status_code == 400
    assert response.json()["photos"] == [
        "photo 1 ('big.jpg'): the file is too large (300.0 KiB; at most 256.0 KiB)"
    ]


def test_a_body_without_a_length_is_refused():
    response = Client().generic(
        "POST",
        "/accounts/login/",
        b"",
        content_type="application/x-www-form-urlencoded",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": Unread()},
    )

    assert response.status_code == 411
    assert b"Content-Length" in response.content


def test_admins_example_photos_have_the_larger_cap(admin_user, settings):
    settings.AVITO_MAX_REQUEST_BYTES = MIB
    settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES = 50 * MIB
    client = Client()
    client.force_login(admin_user)
    add_photos = reverse("admin:classifier_trainingimage_add_photos")

    refused = declared(client, add_photos, 52 * MIB)
    assert refused.status_code == 413 and refused["Content-Type"].startswith("text/html")
    assert b"The request is too large (52.0 MiB; at most 51.0 MiB)." in refused.content
    assert declared(client, "/admin/", 2 * MIB).status_code == 413
    # Under its cap the form is read (and this one finds no photos in it).
    body = encode_multipart(BOUNDARY, {"category": "", "photos": upload("a.jpg", jpeg_bytes())})
    response = client.generic(
        "POST", add_photos, body, content_type=MULTIPART, CONTENT_LENGTH=str(len(body))
    )
    assert response.status_code == 200


def test_ordinary_requests_pass(seller):
    client = Client()
    response = client.post("/accounts/login/", {"username": "seller", "password": PASSWORD})

    assert response.status_code == 302
