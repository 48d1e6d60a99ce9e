"""The sellers' web pages through Django's test client: sign-in, sign-up, My ads, an ad's
page, New ad and Edit ad. What their scripts do in a browser is tests/browser/test_browser.py."""

from __future__ import annotations

import json
import re
import uuid
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.test import Client

from ads.models import Ad, Category
from tests.support.factories import PASSWORD, ad_form, make_ad

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


class Controls(HTMLParser):
    """The form controls of a page, the ids that labels point at, and the scripts' data."""

    def __init__(self, html: str):
        super().__init__()
        self.controls: list[dict] = []
        self.labelled: set[str] = set()
        self.json: dict[str, object] = {}
        self._json_id: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            self.controls.append(attrs | {"tag": tag})
        elif tag == "label" and attrs.get("for"):
            self.labelled.add(attrs["for"])
        elif tag == "script" and attrs.get("type") == "application/json":
            self._json_id = attrs["id"]

    def handle_data(self, data):
        if self._json_id:
            self.json[self._json_id] = json.loads(data)
            self._json_id = None

    def unlabelled(self) -> list[dict]:
        return [
            c for c in self.controls if c.get("id") not in self.labelled and not c.get("aria-label")
        ]

    def control(self, control_id: str) -> dict | None:
        return next((c for c in self.controls if c.get("id") == control_id), None)


def page(client, url: str) -> Controls:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return Controls(response.text)


@pytest.fixture
def ads(seller, other_seller):
    laptops = Category.objects.get(slug="laptop")
    pending = make_ad(seller, title="Pending phone", seed=1)
    published = make_ad(seller, title="Published phone", seed=2)
    published.publish()
    in_review = make_ad(seller, title="Phone in review", kind="laptop", seed=3)
    in_review.send_to_review(Ad.ReviewReason.CATEGORY_MISMATCH, laptops)
    rejected = make_ad(seller, title="Rejected phone", seed=4)
    rejected.reject(Ad.RejectionReason.OTHER, "The photo shows a charger only")
    foreign = make_ad(other_seller, title="Someone else's phone", seed=5)
    return {
        "pending": pending,
        "published": published,
        "in_review": in_review,
        "rejected": rejected,
        "foreign": foreign,
    }


# --- Signing in, up and out -------------------------------------------------------------


@pytest.mark.parametrize("url", ["/ads/", "/ads/new/", "/ads/1/", "/ads/1/edit/"])
def test_pages_require_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={url}"


def test_home_sends_to_sign_in_or_to_my_ads(client, seller):
    assert client.get("/")["Location"] == LOGIN
    client.force_login(seller)
    assert client.get("/")["Location"] == "/ads/"


def test_sign_in_through_the_page_leads_to_my_ads(client, seller):
    response = client.post(LOGIN, {"username": "seller", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/ads/"
    assert client.get("/ads/").status_code == 200


def test_sign_in_follows_next_but_not_off_site(client, seller):
    form = {"username": "seller", "password": PASSWORD}
    assert client.post(LOGIN, form | {"next": "/ads/new/"})["Location"] == "/ads/new/"
    client.logout()
    assert client.post(LOGIN, form | {"next": "https://evil.example/"})["Location"] == "/ads/"


def test_a_wrong_password_is_refused_on_the_page(client, seller):
    response = client.post(LOGIN, {"username": "seller", "password": "wrong"})
    assert response.status_code == 200
    assert "correct username and password" in response.text
    assert client.get("/ads/").status_code == 302


def test_sign_up_creates_a_plain_seller_and_signs_in(client):
    password = "plenty-of-words-here"
    response = client.post(
        "/accounts/signup/", {"username": "sam", "password1": password, "password2": password}
    )
    assert response.status_code == 302 and response["Location"] == "/ads/"
    user = get_user_model().objects.get(username="sam")
    assert not user.is_staff and not user.is_superuser
    assert user.check_password(password)
    assert "sam" in client.get("/ads/").text  # signed in: the header names the account


def test_sign_up_refuses_a_weak_password_and_keeps_the_name(client):
    response = client.post(
        "/accounts/signup/", {"username": "sam", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 200
    assert "too short" in response.text
    assert 'value="sam"' in response.text
    assert not get_user_model().objects.filter(username="sam").exists()


def test_logout_is_post_only(client, seller):
    client.force_login(seller)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/ads/").status_code == 200  # still signed in
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert client.get("/ads/").status_code == 302


# --- My ads -----------------------------------------------------------------------------


def test_my_ads_shows_only_own_ads_with_their_status(client, seller, ads):
    client.force_login(seller)
    html = client.get("/ads/").text
    assert "Someone else&#x27;s phone" not in html
    rows = {name: _row(html, ad.title) for name, ad in ads.items() if name != "foreign"}
    assert "badge-pending" in rows["pending"] and ">Pending<" in rows["pending"]
    assert ">Published<" in rows["published"]
    assert ">In review<" in rows["in_review"]
    assert "Photos do not match the category; they look like Laptops" in rows["in_review"]
    assert ">Rejected<" in rows["rejected"]
    assert "Other (see the note): The photo shows a charger only" in rows["rejected"]


def _row(html: str, title: str) -> str:
    start = html.index(f">{title}<")
    return html[start : html.index("</li>", start)]


def test_staff_see_their_own_ads_there_not_everyone_s(client, staff, ads):
    mine = make_ad(staff, title="Staff's own laptop", category="laptop", kind="laptop", seed=9)
    client.force_login(staff)
    html = client.get("/ads/").text
    assert mine.title.replace("'", "&#x27;") in html
    assert "Pending phone" not in html


def test_my_ads_makes_the_same_queries_for_any_number_of_ads(
    client, seller, ads, django_assert_max_num_queries
):
    client.force_login(seller)
    with django_assert_max_num_queries(6):
        client.get("/ads/")
    for seed in range(10, 16):
        make_ad(seller, seed=seed)
    with django_assert_max_num_queries(6):
        client.get("/ads/")


def test_a_seller_with_no_ads_is_offered_to_post_one(client, seller):
    client.force_login(seller)
    assert "You have no ads yet" in client.get("/ads/").text


# --- An ad's page ----------------------------------------------------------------------


def test_the_ad_page_shows_its_status_photos_and_what_the_script_polls(client, seller, ads):
    client.force_login(seller)
    ad = ads["pending"]
    response = client.get(f"/ads/{ad.pk}/")
    assert response.status_code == 200
    assert 'data-status="pending"' in response.text
    assert f'data-api-url="/api/v1/ads/{ad.pk}/"' in response.text
    photo = ad.images.get()
    assert f"/api/v1/ads/{ad.pk}/photos/{photo.pk}/" in response.text
    texts = Controls(response.text).json["status-texts"]
    assert texts["badges"]["needs_review"] == "In review"
    assert texts["review_reasons"]["category_mismatch"] == Ad.ReviewReason.CATEGORY_MISMATCH.label
    assert texts["category_names"]["laptop"] == "Laptops"


def test_the_ad_page_shows_the_review_reason_and_predictions(client, seller, ads, tiny_version):
    from moderation import pipeline

    ad = make_ad(seller, title="Laptop as phone", kind="laptop", seed=20)
    pipeline.classify_ad(ad.pk)
    client.force_login(seller)
    html = client.get(f"/ads/{ad.pk}/").text
    ad.refresh_from_db()
    assert ad.status == Ad.Status.NEEDS_REVIEW
    assert ">In review<" in html and "they look like Laptops" in html
    assert "Looks like Laptops (" in html


@pytest.mark.parametrize("which", ["", "edit/"])
def test_another_sellers_ad_is_a_404(client, seller, ads, which):
    client.force_login(seller)
    assert client.get(f"/ads/{ads['foreign'].pk}/{which}").status_code == 404
    assert client.get(f"/ads/{ads['pending'].pk}/{which}").status_code == 200


def test_staff_cannot_open_others_ads_on_the_seller_pages(client, staff, ads):
    client.force_login(staff)
    assert client.get(f"/ads/{ads['pending'].pk}/edit/").status_code == 404


# --- New ad and Edit ad -------------------------------------------------------------------


def test_new_ad_page_offers_the_active_categories_and_the_api_to_use(client, seller):
    Category.objects.create(name="Old stuff", slug="old", active=False)
    client.force_login(seller)
    response = client.get("/ads/new/")
    assert "Old stuff" not in response.text
    assert '<option value="">Choose a category</option>' in response.text
    controls = Controls(response.text)
    assert controls.control("id_photos")["type"] == "file"
    assert "multiple" in controls.control("id_photos")
    config = controls.json["ad-form-config"]
    assert config["classify_url"] == "/api/v1/classify/"
    assert config["save_url"] == "/api/v1/ads/" and config["save_method"] == "POST"
    assert config["done_url"] == "/ads/{id}/"
    assert config["max_photos"] == 10
    assert uuid.UUID(config["idempotency_key"]).version == 4


def test_edit_page_fills_in_the_ad_and_patches_it(client, seller, ads):
    ad = ads["in_review"]
    client.force_login(seller)
    response = client.get(f"/ads/{ad.pk}/edit/")
    controls = Controls(response.text)
    assert controls.control("id_title")["value"] == ad.title
    assert controls.control("id_price")["value"] == "250.00"
    assert "disabled" not in controls.control("id_category")
    assert controls.control("id_photos") is not None
    assert '<option value="phone" selected>' in response.text
    config = controls.json["ad-form-config"]
    assert config["save_url"] == f"/api/v1/ads/{ad.pk}/" and config["save_method"] == "PATCH"
    assert config["idempotency_key"] is None  # a PATCH sent twice saves the same thing


def new_ad_page(client) -> tuple[dict, str]:
    """The New ad page's configuration for its script, and the CSRF token its form holds."""
    response = client.get("/ads/new/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)[1]
    return Controls(response.text).json["ad-form-config"], token


def post_the_form(client, config: dict, token: str):
    """What the page's script sends when the seller clicks *Post the ad*."""
    headers = {"X-CSRFToken": token, "Idempotency-Key": config["idempotency_key"]}
    return client.post(config["save_url"], ad_form(description=""), headers=headers)


def test_the_new_ad_form_posted_twice_makes_one_ad_and_leads_to_it(seller, media):
    client = Client(enforce_csrf_checks=True)  # as the browser: the session and its token
    client.force_login(seller)
    config, token = new_ad_page(client)

    first = post_the_form(client, config, token)
    again = post_the_form(client, config, token)  # a second click, or a retry after a 503

    assert first.status_code == again.status_code == 201, first.json()
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    ad = Ad.objects.get(seller=seller)
    assert config["done_url"].replace("{id}", str(again.json()["id"])) == f"/ads/{ad.pk}/"
    # Another New ad page is another key: another ad.
    other, token = new_ad_page(client)
    assert other["idempotency_key"] != config["idempotency_key"]
    assert post_the_form(client, other, token).status_code == 201
    assert Ad.objects.filter(seller=seller).count() == 2


def test_a_decided_ad_keeps_its_category_and_photos(client, seller, ads):
    client.force_login(seller)
    response = client.get(f"/ads/{ads['published'].pk}/edit/")
    controls = Controls(response.text)
    assert "disabled" in controls.control("id_category")
    assert controls.control("id_photos") is None
    assert "can no longer change" in response.text


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/accounts/signup/", "/ads/new/", "edit", "/ads/"]
)
def test_every_control_has_a_label(client, seller, ads, url):
    if url != "/accounts/login/" and url != "/accounts/signup/":
        client.force_login(seller)
    if url == "edit":
        url = f"/ads/{ads['pending'].pk}/edit/"
    controls = page(client, url)
    assert controls.unlabelled() == []


def test_the_pages_static_files_exist():
    for name in ("ads/sellers.css", "ads/ad_form.js", "ads/ad_status.js"):
        assert finders.find(name), name


def test_the_ad_page_words_each_photo_by_how_sure_the_model_is(client, seller, media):
    from classifier.models import ModelVersion, Prediction

    ad = make_ad(seller, photos=4)
    ad.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE, Category.objects.get(slug="laptop"))
    version = ModelVersion.objects.create(number=90, status="candidate", threshold=0.9)
    answers = [("laptop", 0.97, False), ("laptop", 0.66, False), ("phone", 0.5, True)]
    answers.append(("phone", 0.998, True))
    for image, (category, confidence, none_of_these) in zip(
        ad.images.order_by("position"), answers, strict=True
    ):
        Prediction.objects.create(
            image=image,
            model_version=version,
            category=category,
            confidence=confidence,
            none_of_these=none_of_these,
        )
    client.force_login(seller)
    html = client.get(f"/ads/{ad.pk}/").text
    assert "Looks like Laptops (97%)" in html
    assert "Not sure: perhaps Laptops (66%); a moderator will look" in html
    assert "Does not look like any of our categories" in html
    assert "Not sure what this shows (perhaps Phones); a moderator will look" in html
    # An unsure suggestion is not "they look like".
    assert "perhaps Laptops. A moderator will decide." in html
    assert "they look like" not in html
