from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.roles import MODERATORS_GROUP
from classifier.models import Prediction

pytestmark = pytest.mark.django_db


def create(username, role, password="a-long-pass-phrase"):
    out = StringIO()
    call_command("create_account", username, role=role, password=password, stdout=out)
    return get_user_model().objects.get(username=username), out.getvalue()


def test_create_account_for_each_role():
    seller, out = create("sam", "seller")
    assert not seller.is_staff and "API token" in out
    moderator, _ = create("mona", "moderator")
    assert moderator.is_staff and not moderator.is_superuser
    assert moderator.groups.filter(name=MODERATORS_GROUP).exists()
    admin, _ = create("ada", "admin")
    assert admin.is_superuser


def test_create_account_refuses_a_weak_password_and_a_taken_name():
    with pytest.raises(CommandError, match="too short"):
        create("weak", "seller", password="123")
    create("sam", "seller")
    with pytest.raises(CommandError, match="already exists"):
        create("sam", "seller")


def test_moderators_see_ads_but_not_the_model_registry(client):
    moderator, _ = create("mona", "moderator")
    client.force_login(moderator)
    assert client.get(reverse("admin:ads_ad_changelist")).status_code == 200
    assert client.get(reverse("admin:classifier_prediction_changelist")).status_code == 200
    assert client.get(reverse("admin:classifier_modelversion_changelist")).status_code == 403
    assert client.get(reverse("admin:classifier_trainingimage_changelist")).status_code == 403


def test_sellers_never_reach_the_admin(client):
    seller, _ = create("sam", "seller")
    client.force_login(seller)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_prediction_admin_lists_predictions(admin_client, tiny_version, seller):
    from moderation import pipeline
    from tests.support.factories import make_ad

    ad = make_ad(seller)
    pipeline.classify_ad(ad.pk)
    page = admin_client.get(reverse("admin:classifier_prediction_changelist"))
    assert page.status_code == 200
    prediction = Prediction.objects.get(image__ad=ad)
    assert f"{prediction.confidence:.1%}" in page.text
