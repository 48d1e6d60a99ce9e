"""The seller API: creating, reading, editing and deleting ads with photos."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import OperationalError
from PIL import ExifTags, Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ads import services
from ads.models import Ad, AdImage, Category
from classifier.models import ModelVersion, Prediction
from tests.support.factories import PASSWORD, ad_form, make_ad, upload
from tests.support.images import drawn_photo, encode, jpeg_bytes
from tests.support.storage import stored_files

# In the S3 pass too (-m s3, see .ci/run): this module stores or reads files.
pytestmark = [pytest.mark.django_db, pytest.mark.s3]

ADS = "/api/v1/ads/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def post_ad(user, **overrides):
    return client_for(user).post(ADS, ad_form(**overrides), format="multipart")


@pytest.fixture
def classification_requests(monkeypatch) -> list[int]:
    requested: list[int] = []
    monkeypatch.setattr(services, "request_classification", requested.append)
    return requested


# --- Creating ---------------------------------------------------------------------


def test_creates_a_pending_ad_with_its_photos(seller, media):
    response = post_ad(seller)

    assert response.status_code == 201, response.data
    assert response.data["status"] == "pending"
    ad = Ad.objects.get(pk=response.data["id"])
    assert (ad.seller, ad.category.slug, ad.price) == (seller, "phone", Decimal("250.00"))
    images = list(ad.images.order_by("position"))
    assert [image.original_name for image in images] == ["front.jpg", "back.jpg"]
    assert len(stored_files()) == 2
    for image in images:
        assert "front" not in image.file.name and "back" not in image.file.name
        assert len(image.phash) == 16
        with default_storage.open(image.file.name) as handle:
            assert Image.open(handle).format == "JPEG"


def test_stored_photo_is_reencoded_upright_without_exif(seller, media):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90° clockwise to view"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (55.0, 45.0, 21.0)
    original = encode(drawn_photo("phone", 0, size=(48, 40)), "JPEG", exif=exif)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    response = post_ad(seller, photos=[upload("gps.jpg", original)])

    image = AdImage.objects.get(ad_id=response.data["id"])
    with default_storage.open(image.file.name) as handle:
        stored = Image.open(io.BytesIO(handle.read()))
    assert "exif" not in stored.info and not stored.getexif()
    assert stored.size == (image.width, image.height) == (40, 48)


def test_classification_is_requested_after_commit(
    seller, media, classification_requests, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_ad(seller)

    assert classification_requests == [response.data["id"]]


# A real commit, so that the commit hooks run where they do in production.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failure_just_after_the_commit_keeps_the_photos_of_the_ad(seller, media, monkeypatch):
    def database_gone(ad_id: int) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "request_classification", database_gone)

    ad = make_ad(seller, photos=2)
    services.update_ad(ad, photos=[upload("new.jpg", seed=9)])

    # The ad exists, so its photo does; the requeue sweep sends it to classification later.
    stored = set(stored_files())
    assert stored == set(AdImage.objects.filter(ad=ad).values_list("file", flat=True))
    assert len(stored) == 1


def test_a_database_error_before_the_commit_leaves_no_file(seller, media, monkeypatch):
    def connection_lost(*args) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_create_images", connection_lost)

    with pytest.raises(OperationalError):
        make_ad(seller, photos=2)

    assert not stored_files() and not Ad.objects.exists()


BAD_PHOTOS = {
    "non_image": ("cat.jpg", b"<html><script>alert(1)</script></html>", "not an image"),
    "truncated": ("cut.jpg", jpeg_bytes()[:400], "damaged or truncated"),
    "bmp": ("cat.bmp", encode(drawn_photo("phone", 0), "BMP"), "unsupported image format BMP"),
    "empty": ("empty.jpg", b"", "the file is empty"),
}


@pytest.mark.parametrize("case", BAD_PHOTOS, ids=list(BAD_PHOTOS))
def test_rejects_a_bad_photo_naming_it(seller, media, case):
    name, data, problem = BAD_PHOTOS[case]

    response = post_ad(seller, photos=[upload("good.jpg"), upload(name, data)])

    assert response.status_code == 400
    [message] = response.data["photos"]
    assert message.startswith(f"photo 2 ('{name}'): ") and problem in message
    assert not Ad.objects.exists() and not stored_files()


def test_rejects_a_photo_over_the_byte_cap(seller, media, settings):
    settings.ADS_MAX_PHOTO_BYTES = 1000

    response = post_ad(seller, photos=[upload("big.jpg")])

    assert response.status_code == 400
    assert "photo 1 ('big.jpg'): the file is too large" in response.data["photos"][0]
    assert not Ad.objects.exists() and not stored_files()


def test_rejects_a_decompression_bomb(seller, media, settings):
    settings.CLASSIFIER_MAX_IMAGE_PIXELS = 1000  # the drawn photo has 48x40 pixels

    response = post_ad(seller, photos=[upload("bomb.jpg")])

    assert response.status_code == 400
    assert "photo 1 ('bomb.jpg'): image is too large" in response.data["photos"][0]
    assert not Ad.objects.exists()


@pytest.mark.parametrize("count", [0, 11])
def test_rejects_an_ad_with_too_few_or_too_many_photos(seller, media, count):
    photos = [upload(f"p{n}.jpg", seed=n) for n in range(count)]

    response = post_ad(seller, photos=photos)

    assert response.status_code == 400
    assert response.data["photos"] == [f"an ad needs 1 to 10 photos; {count} were sent"]
    assert not Ad.objects.exists() and not stored_files()


@pytest.fixture
def inactive_category(db):
    return Category.objects.create(name="Old stuff", slug="old", active=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("category", "spaceships"), ("category", "old"), ("price", "-1"), ("title", "")],
)
def test_rejects_bad_fields_naming_them(seller, media, inactive_category, field, value):
    response = post_ad(seller, **{field: value})

    assert response.status_code == 400
    assert list(response.data) == [field]
    assert not Ad.objects.exists() and not stored_files()


def test_service_refuses_an_inactive_category(seller, media, inactive_category):
    with pytest.raises(ValidationError, match="not active"):
        make_ad(seller, category="old")


def test_seller_cannot_set_status_on_create(seller, media):
    response = post_ad(seller, status="published")

    assert Ad.objects.get(pk=response.data["id"]).status == Ad.Status.PENDING


# --- Reading ----------------------------------------------------------------------


def test_list_shows_only_own_ads(seller, other_seller, media):
    own = make_ad(seller)
    make_ad(other_seller)

    response = client_for(seller).get(ADS)

    assert [ad["id"] for ad in response.data["results"]] == [own.pk]


def test_staff_sees_every_ad(seller, other_seller, staff, media):
    make_ad(seller)
    make_ad(other_seller)

    assert client_for(staff).get(ADS).data["count"] == 2


def test_detail_shows_each_photos_latest_prediction(seller, media):
    ad = make_ad(seller, photos=2)
    ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, Category.objects.get(slug="laptop"))
    first, second = ad.images.order_by("position")
    old, new = (
        ModelVersion.objects.create(number=n, status="candidate", threshold=0.85) for n in (71, 72)
    )
    for version, confidence in ((old, 0.6), (new, 0.9)):
        Prediction.objects.create(
            image=first, model_version=version, category="laptop", confidence=confidence
        )

    data = client_for(seller).get(f"{ADS}{ad.pk}/").data

    assert (data["status"], data["review_reason"]) == ("needs_review", "category_mismatch")
    assert data["suggested_category"] == {"slug": "laptop", "name": "Laptops"}
    assert data["photos"][0]["prediction"] == {
        "category": "laptop",
        "confidence": 0.9,
        "none_of_these": None,  # a version that cannot tell
        "confident": True,  # 0.9 reaches the version's threshold, 0.85
        "sure": True,
        "model_version": 72,
    }
    assert data["photos"][1]["prediction"] is None
    assert data["photos"][1]["url"].endswith(f"{ADS}{ad.pk}/photos/{second.pk}/")


def test_listing_takes_the_same_queries_for_many_ads(seller, media, django_assert_max_num_queries):
    for _ in range(5):
        make_ad(seller, photos=2)

    with django_assert_max_num_queries(8):
        assert client_for(seller).get(ADS).data["count"] == 5


def test_seller_gets_their_photo(seller, media):
    ad = make_ad(seller)
    image = ad.images.get()

    response = client_for(seller).get(f"{ADS}{ad.pk}/photos/{image.pk}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).format == "JPEG"


def test_staff_gets_any_photo(seller, staff, media):
    ad = make_ad(seller)

    response = client_for(staff).get(f"{ADS}{ad.pk}/photos/{ad.images.get().pk}/")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("patch", ""), ("delete", ""), ("get", "photos/{photo}/")],
)
def test_other_sellers_ads_are_not_found(seller, other_seller, media, method, suffix):
    ad = make_ad(seller)
    url = f"{ADS}{ad.pk}/" + suffix.format(photo=ad.images.get().pk)

    response = getattr(client_for(other_seller), method)(url, {"title": "Mine now"})

    assert response.status_code == 404
    assert Ad.objects.get(pk=ad.pk).title == "iPhone 12"


def test_staff_cannot_edit_a_sellers_ad(seller, staff, media):
    ad = make_ad(seller)

    response = client_for(staff).patch(f"{ADS}{ad.pk}/", {"title": "Edited"})

    assert response.status_code == 403


# --- Editing and deleting ---------------------------------------------------------


def test_seller_cannot_set_status(seller, media):
    ad = make_ad(seller)

    response = client_for(seller).patch(f"{ADS}{ad.pk}/", {"status": "published"})

    assert response.status_code == 200
    ad.refresh_from_db()
    assert ad.status == Ad.Status.PENDING


def test_new_category_sends_a_reviewed_ad_back_to_classification(
    seller, media, classification_requests, django_capture_on_commit_callbacks
):
    ad = make_ad(seller)
    laptop = Category.objects.get(slug="laptop")
    ad.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, laptop)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(seller).patch(f"{ADS}{ad.pk}/", {"category": "laptop"})

    assert response.status_code == 200, response.data
    ad.refresh_from_db()
    assert (ad.status, ad.category, ad.review_reason) == ("pending", laptop, "")
    assert ad.suggested_category is None and ad.decided_at is None
    assert classification_requests == [ad.pk]


def test_new_photos_replace_the_old_ones_and_their_files(
    seller, media, classification_requests, django_capture_on_commit_callbacks
):
    ad = make_ad(seller, photos=2)
    old_files = set(stored_files())

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(seller).patch(
            f"{ADS}{ad.pk}/", {"photos": [upload("new.jpg", seed=9)]}, format="multipart"
        )

    assert response.status_code == 200, response.data
    assert [photo["id"] for photo in response.data["photos"]] == [ad.images.get().pk]
    assert not old_files & set(stored_files()) and len(stored_files()) == 1
    assert classification_requests == [ad.pk]


def test_category_of_a_published_ad_cannot_change(seller, media, classification_requests):
    ad = make_ad(seller)
    ad.publish()

    response = client_for(seller).patch(f"{ADS}{ad.pk}/", {"category": "laptop"})

    assert response.status_code == 409
    assert "published" in response.data["detail"]
    ad.refresh_from_db()
    assert (ad.status, ad.category.slug) == ("published", "phone")


def test_title_of_a_published_ad_can_change_without_reclassification(
    seller, media, classification_requests, django_capture_on_commit_callbacks
):
    ad = make_ad(seller)
    ad.publish()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(seller).patch(f"{ADS}{ad.pk}/", {"title": "iPhone 12 mini"})

    assert response.status_code == 200
    assert response.data["status"] == "published" and not classification_requests


def test_bad_replacement_photo_keeps_the_old_ones(seller, media):
    ad = make_ad(seller)
    before = set(stored_files())

    response = client_for(seller).patch(
        f"{ADS}{ad.pk}/", {"photos": [upload("x.jpg", b"nope")]}, format="multipart"
    )

    assert response.status_code == 400
    assert set(stored_files()) == before and ad.images.count() == 1


def test_seller_deletes_an_ad_and_its_files(seller, media, django_capture_on_commit_callbacks):
    ad = make_ad(seller, photos=2)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(seller).delete(f"{ADS}{ad.pk}/")

    assert response.status_code == 204
    assert not Ad.objects.exists() and not stored_files()


# --- Authentication and categories ------------------------------------------------


def test_anonymous_is_refused(db):
    assert APIClient().get(ADS).status_code == 401


def test_token_authentication_works(seller, media):
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "seller", "password": PASSWORD})
    assert response.data["token"] == Token.objects.get(user=seller).key

    client.credentials(HTTP_AUTHORIZATION=f"Token {response.data['token']}")

    assert client.get(ADS).status_code == 200


@pytest.mark.parametrize(
    ("name", "check"), [("ADS_MAX_PHOTOS", "ads.E001"), ("ADS_MAX_PHOTO_BYTES", "ads.E002")]
)
def test_check_refuses_impossible_upload_limits(settings, name, check):
    setattr(settings, name, 0)

    assert [message.id for message in run_checks(tags=["ads"])] == [check]


def test_categories_lists_only_active_ones(seller, inactive_category):
    response = client_for(seller).get("/api/v1/categories/")

    assert {c["slug"] for c in response.data} == {"laptop", "phone"}


def test_description_is_optional(seller, media):
    form = ad_form()
    del form["description"]
    response = client_for(seller).post(ADS, form, format="multipart")
    assert response.status_code == 201, response.data
    assert Ad.objects.get(pk=response.data["id"]).description == ""


def test_rejects_a_real_decompression_bomb(seller, media):
    bomb = encode(Image.new("1", (10_000, 10_000)), "PNG")  # 100 Mpx in a few KB
    assert len(bomb) < 50_000

    response = post_ad(seller, photos=[upload("bomb.png", bomb)])

    assert response.status_code == 400
    assert response.data["photos"][0].startswith(
        "photo 1 ('bomb.png'): image dimensions are too large"
    )
    assert not Ad.objects.exists() and not stored_files()


def test_rejects_missing_fields_naming_each(seller, media):
    response = client_for(seller).post(ADS, {"photos": [upload()]}, format="multipart")

    assert response.status_code == 400
    assert {"title", "price", "category"} <= set(response.data)
    assert not Ad.objects.exists() and not stored_files()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/ads/99999999999999999999/",  # past a 64-bit integer (found by the API fuzz run)
        "/api/v1/ads/999999999999999999/",
        "/api/v1/ads/1/photos/99999999999999999999/",
    ],
)
def test_huge_ids_are_not_found_rather_than_a_server_error(seller, path):
    assert client_for(seller).get(path).status_code == 404


def test_a_category_that_is_not_a_slug_is_a_400(seller, media):
    response = post_ad(seller, category="pho\x00ne")
    assert response.status_code == 400
    assert "category" in response.json()
    assert not Ad.objects.exists()
