"""The admin pages for ads and their photos."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ads.models import Ad
from tests.support.factories import make_ad
from tests.support.storage import stored_files

# In the S3 pass too (-m s3, see .ci/run): this module stores or reads files.
pytestmark = [pytest.mark.django_db, pytest.mark.s3]


def test_ad_list_filters_and_searches(admin_client, seller, other_seller, media):
    wanted = make_ad(seller, title="Pixel 7")
    wanted.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
    make_ad(other_seller, title="Pixel 6")

    response = admin_client.get(
        reverse("admin:ads_ad_changelist"),
        {"q": "seller", "status__exact": "needs_review", "review_reason__exact": "low_confidence"},
    )

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]


def test_ad_page_shows_thumbnails_through_the_photo_view(admin_client, seller, media):
    ad = make_ad(seller, photos=2)

    page = admin_client.get(reverse("admin:ads_ad_change", args=[ad.pk])).content.decode()

    for image in ad.images.all():
        url = reverse("ads:ad-photo", args=[ad.pk, image.pk])
        assert f'src="{url}"' in page
        assert admin_client.get(url).status_code == 200


def test_deleting_ads_in_the_admin_removes_their_files(
    admin_client, seller, media, django_capture_on_commit_callbacks
):
    ads = [make_ad(seller), make_ad(seller)]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:ads_ad_changelist"),
            {"action": "delete_selected", "_selected_action": [a.pk for a in ads], "post": "yes"},
        )

    assert response.status_code == 302
    assert not Ad.objects.exists()
    assert not stored_files()


def test_photo_list_and_page_load(admin_client, seller, media):
    image = make_ad(seller).images.get()

    assert admin_client.get(reverse("admin:ads_adimage_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:ads_adimage_change", args=[image.pk]))
    assert page.status_code == 200


def test_deleting_a_photo_in_the_admin_removes_its_file(
    admin_client, seller, media, django_capture_on_commit_callbacks
):
    ad = make_ad(seller, photos=2)
    first, second = ad.images.order_by("position")

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:ads_adimage_delete", args=[first.pk]), {"post": "yes"})

    assert list(ad.images.all()) == [second]
    assert stored_files() == [second.file.name]
