"""The sellers' quick check, POST /api/v1/classify/, with a real tiny model; and the API docs."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from ads.models import Ad, AdImage, Category
from classifier.models import ModelVersion, Prediction, TrainingImage
from classifier.services import classify_images
from tests.support.images import drawn_photo, encode, jpeg_bytes
from tests.support.storage import stored_files

URL = "/api/v1/classify/"


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()  # the throttles count in the cache, which outlives a test
    yield
    cache.clear()


def client_for(user=None, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if user is not None:
        client.force_authenticate(user)
    return client


def check(client, data: bytes, category: str, name: str = "photo.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(name, data, content_type="image/jpeg")
    return client.post(URL, {"image": upload, "category": category}, format="multipart")


def test_a_matching_photo_is_confirmed(seller, tiny_version):
    data = jpeg_bytes("phone", seed=3)
    response = check(client_for(seller), data, "phone")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["class"] == "phone"
    assert body["categories_matched"] is True
    assert body["suggested_category"] is None
    assert body["category"] == {"slug": "phone", "name": Category.objects.get(slug="phone").name}
    assert body["model_version"] == tiny_version.number
    assert body["confident"] == (body["confidence"] >= tiny_version.threshold)


def test_a_mismatching_photo_gets_the_category_to_switch_to(seller, tiny_version):
    data = jpeg_bytes("laptop", seed=4)
    body = check(client_for(seller), data, "phone").json()
    assert body["class"] == "laptop"
    assert body["categories_matched"] is False
    laptops = Category.objects.get(slug="laptop")
    assert body["suggested_category"] == {"slug": "laptop", "name": laptops.name}


def test_a_confident_mismatch_offers_the_switch_and_an_unsure_one_does_not(seller, tiny_version):
    from tests.browser.test_browser import confident_photo

    data = confident_photo("laptop", tiny_version)
    sure = check(client_for(seller), data, "phone").json()
    assert sure["confident"] is True and sure["sure"] is True
    assert sure["switch_to"] == sure["suggested_category"] == {"slug": "laptop", "name": "Laptops"}
    # The same photo, with a version whose threshold it does not reach (as a real iPhone
    # at 66 % laptop under a threshold of 94 %).
    ModelVersion.objects.filter(pk=tiny_version.pk).update(threshold=sure["confidence"] + 0.001)
    unsure = check(client_for(seller), data, "phone").json()
    assert unsure["class"] == "laptop" and unsure["categories_matched"] is False
    assert unsure["confident"] is False and unsure["sure"] is False
    assert unsure["switch_to"] is None
    assert unsure["suggested_category"]["slug"] == "laptop"  # for the moderator, not a switch


def test_it_answers_what_the_workers_would(seller, tiny_version):
    """Same preprocessing, same model version, same numbers as the pipeline's batch path."""
    for kind, seed in [("laptop", 7), ("phone", 8), ("laptop", 9)]:
        data = jpeg_bytes(kind, seed)
        body = check(client_for(seller), data, "laptop").json()
        worker = classify_images([data], tiny_version)[0]
        assert body["class"] == worker.category
        assert body["confidence"] == pytest.approx(worker.confidence, abs=1e-6)


def test_a_category_the_model_does_not_know_cannot_be_checked(seller, tiny_version):
    Category.objects.create(name="Tablets", slug="tablet")
    body = check(client_for(seller), jpeg_bytes("laptop", 5), "tablet").json()
    assert body["categories_matched"] is None
    assert body["suggested_category"]["slug"] == body["class"]


@pytest.mark.parametrize(
    "data, name, reason",
    [
        (b"not an image at all", "photo.jpg", "photo.jpg"),
        (b"", "empty.jpg", "empty"),
        (jpeg_bytes("phone", 1)[:200], "cut.jpg", "cut.jpg"),
    ],
)
def test_a_bad_image_is_a_400_naming_it(seller, tiny_version, data, name, reason):
    response = check(client_for(seller), data, "phone", name=name)
    assert response.status_code == 400
    assert "image" in response.json()
    assert reason in " ".join(response.json()["image"])


def test_missing_fields_and_unknown_or_inactive_categories_are_400(seller, tiny_version):
    client = client_for(seller)
    assert "image" in client.post(URL, {"category": "phone"}, format="multipart").json()
    assert check(client, jpeg_bytes(), "no-such-category").status_code == 400
    Category.objects.filter(slug="phone").update(active=False)
    response = check(client, jpeg_bytes(), "phone")
    assert response.status_code == 400
    assert "category" in response.json()


def test_an_oversized_upload_is_refused_before_decoding(seller, tiny_version, settings):
    settings.ADS_MAX_PHOTO_BYTES = 1000
    big = encode(drawn_photo("phone", 0, size=(400, 300)), "PNG")
    response = check(client_for(seller), big, "phone", name="big.png")
    assert response.status_code == 400
    assert "too large" in response.json()["image"][0]


def test_nothing_is_stored(seller, tiny_version, media):
    files_before = stored_files()
    for seed in range(3):
        assert check(client_for(seller), jpeg_bytes("phone", seed), "phone").status_code == 200
    assert stored_files() == files_before
    for model in (Ad, AdImage, Prediction, TrainingImage):
        assert not model.objects.exists(), model


def test_anonymous_callers_are_refused(db, tiny_version):
    response = check(client_for(None), jpeg_bytes(), "phone")
    assert response.status_code == 401


def test_without_an_active_model_the_check_is_unavailable(seller, tiny_version):
    ModelVersion.objects.update(status=ModelVersion.Status.RETIRED)
    response = check(client_for(seller), jpeg_bytes(), "phone")
    assert response.status_code == 503
    assert "no model is active" in response.json()["detail"]


def test_each_account_is_rate_limited(seller, tiny_version, settings):
    settings.CLASSIFIER_QUICK_CHECK_USER_RATE = "2/min"
    client = client_for(seller)
    assert [check(client, jpeg_bytes(), "phone").status_code for _ in range(2)] == [200, 200]
    refused = check(client, jpeg_bytes(), "phone")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0


def test_each_address_is_rate_limited_whoever_signs_in(
    seller, other_seller, tiny_version, settings
):
    settings.CLASSIFIER_QUICK_CHECK_ADDRESS_RATE = "3/min"
    first, second = client_for(seller, "10.0.0.1"), client_for(other_seller, "10.0.0.1")
    statuses = [check(c, jpeg_bytes(), "phone").status_code for c in (first, second, first)]
    assert statuses == [200, 200, 200]
    # A forged X-Forwarded-For does not make a new client: no proxy is trusted by default.
    second.credentials(HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert check(second, jpeg_bytes(), "phone").status_code == 429
    assert check(client_for(seller, "10.0.0.2"), jpeg_bytes(), "phone").status_code == 200


def test_the_openapi_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in ("/api/v1/ads/", "/api/v1/classify/", "/api/v1/categories/", "/auth/token/"):
        assert path in schema, path
    assert "tokenAuth" in schema and "cookieAuth" in schema


def test_the_api_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/classify/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page


@pytest.mark.parametrize("slug", ["pho\x00ne", "../phone", "phone ", ""])
def test_a_category_that_is_not_a_slug_is_a_400(seller, tiny_version, slug):
    """Found by the API fuzz run: a NUL byte reached PostgreSQL and came back as a 500."""
    response = check(client_for(seller), jpeg_bytes(), slug)
    assert response.status_code == 400
    assert "category" in response.json()
