"""Who may do what, for every URL the project serves.

The matrix is generated from the URL configuration: every pattern ``get_resolver()`` knows
is requested by each of the five roles, with GET and with the unsafe methods it accepts,
and the answer is compared with ``EXPECTED`` (tests/support/url_matrix.py). A refused unsafe
request must also leave the database as it was. ``test_every_url_pattern_is_in_the_matrix``
fails when a pattern exists that the table does not cover, so a new endpoint cannot be missed.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from ads.models import Ad, Category
from classifier.models import LabelCheck, ModelVersion, ModelVersionEvent, Prediction, TrainingImage
from moderation import services as moderation
from tests.support.factories import PASSWORD, make_ad, make_user
from tests.support.url_matrix import (
    ADMIN_CATCH_ALL,
    ADMIN_LOGIN,
    ADMIN_MODELS,
    DONE,
    EXPECTED,
    LOGIN,
    MATRIX,
    NOTHING_CHANGES,
    PATTERNS,
    REFUSED,
    ROLES,
    Case,
    Pattern,
    admin_model_of,
    cases_for,
    roles,
)


def test_every_url_pattern_is_in_the_matrix():
    missing = [p.route for p in PATTERNS if cases_for(p) is None]
    assert not missing, f"URL patterns with no expected statuses in EXPECTED: {missing}"
    # Every model registered in the admin has its rule (its URLs would be missed otherwise).
    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
    assert registered == set(ADMIN_MODELS)
    # And the table names no pattern that is gone.
    assert set(EXPECTED) <= {p.key for p in PATTERNS}


def test_the_matrix_is_the_size_it_should_be():
    # Counts requests, so a walk that silently finds fewer patterns fails here.
    assert len(PATTERNS) >= 120
    assert len(MATRIX) * len(ROLES) >= 1050


# --- The objects the URLs point at ------------------------------------------------------


class Fixture:
    def __init__(self, media) -> None:
        users = get_user_model()
        self.users = {"seller": make_user("sam"), "other_seller": make_user("olga")}
        for role, name in (("moderator", "mona"), ("admin", "ada")):
            call_command("create_account", name, role=role, password=PASSWORD, stdout=StringIO())
            self.users[role] = users.objects.get(username=name)
        seller = self.users["seller"]
        self.laptop = Category.objects.get(slug="laptop")
        # The seller's ad that is not published (pending), and its photo.
        self.ad = make_ad(seller, seed=1)
        self.photo = self.ad.images.get()
        self.published = make_ad(seller, seed=11)
        self.published.publish()
        self.in_review = make_ad(seller, seed=21)
        self.in_review.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
        decided = make_ad(seller, seed=31)
        decided.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
        self.decision = moderation.decide(decided.pk, self.users["moderator"], "accept")
        held = make_ad(seller, seed=41)
        held.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
        # Every ad in review held for the moderator: their queue only renews the claims,
        # and the admin's skips them.
        moderation.claim(self.users["moderator"], [held.pk, self.in_review.pk])
        self.claim = held.claim
        self.training_image = TrainingImage.objects.get(decision=self.decision)
        active = ModelVersion.objects.active()
        self.version = ModelVersion.objects.create(
            number=ModelVersion.next_number(),
            status=ModelVersion.Status.CANDIDATE,
            classes=["laptop", "phone"],
        )
        self.event = ModelVersionEvent.objects.create(
            version=active, action=ModelVersionEvent.Action.PROMOTE
        )
        self.label_check = LabelCheck.objects.create(status=LabelCheck.Status.DONE)
        self.prediction = Prediction.objects.create(
            image=self.photo, model_version=active, category="phone", confidence=0.9
        )
        Token.objects.create(user=seller)
        self.failed_sign_in = AccessAttempt.objects.create(
            username="nobody",
            ip_address="192.0.2.1",
            user_agent="a browser",
            http_accept="*/*",
            path_info="/accounts/login/",
            get_data="",
            post_data="",
            failures_since_start=1,
        )

    def username(self, role: str) -> str:
        return self.users[role].username if role in self.users else "nobody"

    def admin_object(self, label: str):
        return {
            "auth.group": lambda: Group.objects.get(name="Moderators"),
            "auth.user": lambda: self.users["seller"],
            "authtoken.tokenproxy": lambda: self.users["seller"],  # listed by its user's id
            "ads.category": lambda: self.laptop,
            "ads.ad": lambda: self.ad,
            "ads.adimage": lambda: self.photo,
            "classifier.trainingimage": lambda: self.training_image,
            "classifier.modelversion": lambda: self.version,
            "classifier.modelversionevent": lambda: self.event,
            "classifier.labelcheck": lambda: self.label_check,
            "classifier.prediction": lambda: self.prediction,
            "moderation.reviewitem": lambda: self.in_review,
            "moderation.moderationdecision": lambda: self.decision,
            "moderation.reviewclaim": lambda: self.claim,
            "axes.accessattempt": lambda: self.failed_sign_in,
        }[label]()

    def url(self, pattern: Pattern, case: Case) -> str:
        if pattern.route == ADMIN_CATCH_ALL:
            return "/admin/no-such-page/"
        model = admin_model_of(pattern)
        if pattern.name is None:
            return "/" + pattern.route.replace(
                "<path:object_id>", str(self.admin_object(model[0]).pk)
            )
        kwargs = {name: self.value(pattern, name, model) for name in pattern.params}
        return reverse(pattern.name, kwargs=kwargs | case.kwargs)

    def value(self, pattern: Pattern, name: str, model):
        if name == "app_label":
            return None  # given by the case
        if name == "format":
            return "json"
        if name == "slug":
            return "phone"
        if name == "photo_id":
            return self.photo.pk
        if pattern.name == "admin:view_on_site":
            ad_type = ContentType.objects.get_for_model(Ad)
            return {"content_type_id": ad_type.pk, "object_id": self.ad.pk}[name]
        if model is not None and name == "object_id":
            return self.admin_object(model[0]).pk
        if pattern.name == "classifier:training-image":
            return self.training_image.pk
        if pattern.name.startswith("admin:classifier_trainingimage_"):
            return self.training_image.pk
        if pattern.name.startswith("admin:classifier_modelversion_"):
            return self.version.pk
        if name == "decision_id":
            return self.decision.pk
        if pattern.name.startswith("admin:moderation_reviewitem_"):
            return self.in_review.pk
        if pattern.name == "admin:auth_user_password_change":
            return self.users["seller"].pk
        if name == "pk":  # the API's and the pages' ad
            return self.ad.pk
        raise AssertionError(f"no value for {name} in {pattern.route}")


@pytest.fixture
def objects(db, media) -> Fixture:
    return Fixture(media)


# --- Asking -----------------------------------------------------------------------------


def outcome(response) -> int | str:
    if response.status_code in (301, 302):
        location = response["Location"]
        if location.startswith(reverse("admin:login")):
            return ADMIN_LOGIN
        if location.startswith(reverse("sellers:login")):
            return LOGIN
    return response.status_code


def database_state() -> dict:
    """Every row of the project's tables (and users, groups, tokens, failed sign-ins),
    sessions aside, and claims without their expiry: opening the review queue renews the
    moderator's claims, as a visit renews a session."""
    state = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or model._meta.app_label not in {
            "auth",
            "authtoken",
            "ads",
            "classifier",
            "moderation",
            "axes",
        }:
            continue
        names = [
            f.attname
            for f in model._meta.concrete_fields
            if f.attname not in ("last_login", "expires_at")
        ]
        state[model._meta.label] = list(model._base_manager.order_by("pk").values_list(*names))
    return state


def ask(objects: Fixture, role: str, pattern: Pattern, case: Case):
    client = Client()
    if role in objects.users:
        client.force_login(objects.users[role])
    url = objects.url(pattern, case)
    data = case.data(objects, role) if case.data else {}
    if case.method in ("get", "post"):
        return getattr(client, case.method)(url, data)

    return getattr(client, case.method)(url, json.dumps(data), content_type="application/json")


@pytest.mark.parametrize(("pattern", "case"), MATRIX)
def test_who_may_do_what(objects, pattern, case):
    wrong = []
    for role, expected in case.expected.items():
        # Each role on the same objects: whatever one request changes is undone.
        with transaction.atomic():
            before = database_state() if case.method != "get" else None
            response = ask(objects, role, pattern, case)
            got = outcome(response)
            after = database_state() if case.method != "get" else None
            transaction.set_rollback(True)
        changed = before != after
        if expected in (DONE, REFUSED):
            ok = got in (200, 302) and changed == (expected == DONE)
            got = f"{got}, {'a change' if changed else 'no change'}"
        else:
            ok = got == expected
            if expected in NOTHING_CHANGES and changed:
                ok, got = False, f"{got}, and the database changed"
        if not ok:
            wrong.append(f"{role}: expected {expected}, got {got}")
    assert not wrong, "; ".join(wrong)


# --- What has no URL: stored files ------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_stored_files_have_no_public_media_url(objects, settings, role):
    client = Client()
    if role in objects.users:
        client.force_login(objects.users[role])
    for stored in (objects.photo.file, objects.training_image.file):
        assert stored.storage.exists(stored.name)
        assert client.get(f"/{settings.MEDIA_URL}{stored.name}").status_code == 404
        assert client.get(stored.url).status_code == 404


@pytest.mark.parametrize(
    ("role", "expected"), roles(401, 200, 404, 200, 200).items(), ids=list(ROLES)
)
def test_a_published_ads_photos_are_no_more_public_than_the_ad(objects, role, expected):
    client = Client()
    if role in objects.users:
        client.force_login(objects.users[role])
    photo = objects.published.images.get()
    response = client.get(reverse("ads:ad-photo", args=[objects.published.pk, photo.pk]))
    assert response.status_code == expected
    if expected == 200:
        assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"  # a JPEG


def test_a_photo_is_not_served_under_another_ads_id(objects):
    client = Client()
    client.force_login(objects.users["seller"])
    photo = objects.published.images.get()
    # The seller's own ad, someone's photo id: the pair must match.
    response = client.get(reverse("ads:ad-photo", args=[objects.ad.pk, photo.pk]))
    assert response.status_code == 404
