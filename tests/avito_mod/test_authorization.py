"""Who may do what, for every URL the project serves.

The matrix is generated from the URL configuration: every pattern ``get_resolver()`` knows
is requested by each of the five roles, with GET and with the unsafe methods it accepts,
and the answer is compared with ``EXPECTED`` below. A refused unsafe request must also leave
the database as it was. ``test_every_url_pattern_is_in_the_matrix`` fails when a pattern
exists that the table does not cover, so a new endpoint cannot be missed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
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
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from ads.models import Ad, Category
from classifier.models import LabelCheck, ModelVersion, ModelVersionEvent, Prediction, TrainingImage
from moderation import services as moderation
from tests.factories import PASSWORD, make_ad, make_user, upload

ROLES = ("anonymous", "seller", "other_seller", "moderator", "admin")

# What a role gets, besides a plain status code. Every one of them changes nothing.
LOGIN = "to sign-in"  # a redirect to the sellers' sign-in page
ADMIN_LOGIN = "to admin sign-in"  # a redirect to the admin's sign-in page
# The admin's changelist with an action a role is not offered: the list again, or a redirect
# back with "No action selected" (200 or 302), and nothing changed.
REFUSED = "refused"
# The page or a redirect (200 or 302) after a change that was made.
DONE = "done"

NOTHING_CHANGES = {LOGIN, ADMIN_LOGIN, 401, 403, 404, 405}


def roles(anonymous, seller, other_seller, moderator, admin_) -> dict:
    return dict(zip(ROLES, (anonymous, seller, other_seller, moderator, admin_), strict=True))


def everyone(expected) -> dict:
    return roles(*[expected] * 5)


def staff_only(moderator, admin_) -> dict:
    """An admin URL: sellers and anonymous visitors are sent to the admin's sign-in page."""
    return roles(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, moderator, admin_)


@dataclass(frozen=True)
class Case:
    method: str
    expected: dict
    # The request's body from the fixture objects (form fields, or JSON for PATCH).
    data: Callable[[Fixture, str], dict] | None = None
    # Path parameters that are not filled from the objects (admin:app_list's app label).
    kwargs: dict = field(default_factory=dict)


def get(expected: dict, **kwargs) -> Case:
    return Case("get", expected, kwargs=kwargs)


def post(expected: dict, data=None) -> Case:
    return Case("post", expected, data)


# --- The table: named URL patterns ------------------------------------------------------

AD_FIELDS = {"title": "iPhone 12 mini", "price": "200", "category": "phone"}

EXPECTED: dict[str, list[Case]] = {
    # The seller API. Another seller's ad is a 404, never a 403: ids are not confirmed.
    "api-token": [
        get(everyone(405)),
        post(
            roles(400, 200, 200, 200, 200),
            lambda f, role: {"username": f.username(role), "password": PASSWORD},
        ),
    ],
    "quick-check": [get(roles(401, 405, 405, 405, 405)), post(roles(401, 400, 400, 400, 400))],
    "ads:api-root": [get(roles(401, 200, 200, 200, 200))],
    "ads:ad-list": [
        get(roles(401, 200, 200, 200, 200)),
        # Staff may post ads of their own, as sellers.
        post(roles(401, 201, 201, 201, 201), lambda f, role: AD_FIELDS | {"photos": upload()}),
    ],
    "ads:ad-detail": [
        get(roles(401, 200, 404, 200, 200)),
        # Moderators change ads through the review queue only, where decisions are recorded.
        Case("patch", roles(401, 200, 404, 403, 403), lambda f, role: {"title": "Changed"}),
        Case("put", roles(401, 405, 405, 405, 405), lambda f, role: {"title": "Changed"}),
        Case("delete", roles(401, 204, 404, 403, 403)),
    ],
    # The photos of the seller's ad that is not published: its seller and staff only.
    "ads:ad-photo": [get(roles(401, 200, 404, 200, 200)), post(roles(401, 405, 405, 405, 405))],
    "ads:category-list": [get(everyone(200)), post(everyone(405))],
    "ads:category-detail": [get(everyone(200))],
    "api-schema": [get(everyone(200))],
    # Prometheus's, not a person's: closed to every session until a token or networks open it.
    "metrics": [get(everyone(403)), post(everyone(405))],
    "api-docs": [get(everyone(200))],
    # The sellers' pages show a seller's own ads only, to staff too (404 for the others).
    "sellers:home": [get(roles(LOGIN, 302, 302, 302, 302))],
    "sellers:login": [
        get(roles(200, 302, 302, 302, 302)),
        post(roles(200, 302, 302, 302, 302), lambda f, role: {"username": "x", "password": "y"}),
    ],
    "sellers:logout": [get(everyone(405)), post(everyone(LOGIN))],
    "sellers:signup": [get(roles(200, 302, 302, 302, 302)), post(roles(200, 302, 302, 302, 302))],
    "sellers:my-ads": [get(roles(LOGIN, 200, 200, 200, 200)), post(everyone(405))],
    "sellers:ad-new": [get(roles(LOGIN, 200, 200, 200, 200)), post(everyone(405))],
    "sellers:ad": [get(roles(LOGIN, 200, 404, 404, 404)), post(everyone(405))],
    "sellers:ad-edit": [get(roles(LOGIN, 200, 404, 404, 404)), post(everyone(405))],
    # Training photos: admins only (moderators are staff, but not allowed the training set).
    "classifier:training-image": [get(staff_only(403, 200))],
    # The admin site itself.
    "admin:index": [get(staff_only(200, 200))],
    "admin:login": [
        get(roles(200, 200, 200, 302, 302)),
        post(everyone(200), lambda f, role: {"username": "x", "password": "y"}),
    ],
    # Not signed in to the admin: back to its index (which asks to sign in).
    "admin:logout": [get(roles(302, 302, 302, 405, 405)), post(roles(302, 302, 302, 200, 200))],
    "admin:password_change": [get(staff_only(200, 200)), post(staff_only(200, 200))],
    "admin:password_change_done": [get(staff_only(200, 200))],
    "admin:autocomplete": [get(staff_only(403, 403))],  # no field named: refused to all
    "admin:jsi18n": [get(staff_only(200, 200))],
    "admin:view_on_site": [get(staff_only(404, 404))],  # ads have no public page
    "admin:app_list": [
        get(staff_only(200, 200), app_label="ads"),
        get(staff_only(200, 200), app_label="classifier"),  # predictions
        get(staff_only(200, 200), app_label="moderation"),
        get(staff_only(404, 200), app_label="auth"),
        get(staff_only(404, 200), app_label="authtoken"),
        get(staff_only(404, 200), app_label="axes"),  # failed sign-ins and lock-outs
    ],
    "admin:auth_user_password_change": [get(staff_only(403, 200)), post(staff_only(403, 200))],
    # Buttons of the training images and the model registry: admins only.
    "admin:classifier_trainingimage_relabel": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),  # no suspicion on the image: nothing to relabel
    ],
    "admin:classifier_trainingimage_exclude": [
        get(staff_only(405, 405)),
        post(staff_only(403, DONE)),
    ],
    "admin:classifier_trainingimage_check_labels": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),
    ],
    # Example photos for a category: admins only (the form, then the photos sent).
    "admin:classifier_trainingimage_add_photos": [
        get(staff_only(403, 200)),
        post(
            staff_only(403, DONE),
            lambda f, role: {"category": f.laptop.pk, "photos": upload("new.jpg", seed=91)},
        ),
    ],
    "admin:classifier_modelversion_train": [get(staff_only(405, 405)), post(staff_only(403, DONE))],
    "admin:classifier_modelversion_promote": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),  # the candidate has no artifact: refused with a message
    ],
    "admin:classifier_modelversion_rollback": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),
    ],
    "admin:classifier_modelversion_cancel": [get(staff_only(405, 405)), post(staff_only(403, 302))],
    # Shadow: admins only; the fixture's version cannot enter it (refused with a message).
    "admin:classifier_modelversion_shadow": [get(staff_only(405, 405)), post(staff_only(403, 302))],
    "admin:classifier_modelversion_leave_shadow": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),
    ],
    "admin:classifier_modelversion_evaluate": [
        get(staff_only(405, 405)),
        post(staff_only(403, 302)),
    ],
    # The review queue's decisions: moderators and admins. The ad is held for the
    # moderator (the fixture's claim): the admin takes it over (tests/test_claims.py).
    "admin:moderation_reviewitem_accept": [
        get(staff_only(405, 405)),
        post(staff_only(DONE, DONE), lambda f, role: {"takeover": "1"}),
    ],
    "admin:moderation_reviewitem_recategorize": [
        get(staff_only(405, 405)),
        post(staff_only(DONE, DONE), lambda f, role: {"category": f.laptop.pk, "takeover": "1"}),
    ],
    "admin:moderation_reviewitem_reject": [
        get(staff_only(405, 405)),
        post(staff_only(DONE, DONE), lambda f, role: {"reason": "prohibited", "takeover": "1"}),
    ],
    # The queue's pulse: admins only.
    "admin:moderation_reviewitem_pulse": [get(staff_only(403, 200)), post(staff_only(405, 405))],
    # Who holds which ads in review, for an open queue page: those who decide.
    "admin:moderation_reviewitem_claims": [get(staff_only(200, 200)), post(staff_only(200, 200))],
    # Undo: only one's own decision (the fixture's is the moderator's, a moment ago).
    "admin:moderation_reviewitem_undo": [
        get(staff_only(405, 405)),
        post(staff_only(DONE, REFUSED)),
    ],
}


# --- The table: the admin's model pages, by rule ---------------------------------------


@dataclass(frozen=True)
class AdminModel:
    """What moderators and admins may do with a registered model's admin pages."""

    moderator_views: bool
    admin_adds: bool
    admin_changes: bool
    admin_deletes: bool
    bulk_actions: bool = True


ADMIN_MODELS = {
    "auth.group": AdminModel(False, True, True, True),
    "auth.user": AdminModel(False, True, True, True),
    # DRF's token admin has no bulk actions (its ids are the users').
    "authtoken.tokenproxy": AdminModel(False, True, True, True, bulk_actions=False),
    "ads.category": AdminModel(True, True, True, True),
    # Ads and photos come from sellers only; their fields are read-only in the admin.
    "ads.ad": AdminModel(True, False, True, True),
    "ads.adimage": AdminModel(True, False, True, True),
    "classifier.trainingimage": AdminModel(False, False, True, True),
    "classifier.modelversion": AdminModel(False, False, True, True),
    # Audit trails and machine output: nobody edits them.
    "classifier.modelversionevent": AdminModel(False, False, False, False),
    "classifier.labelcheck": AdminModel(False, False, False, True),
    "classifier.prediction": AdminModel(True, False, False, True),
    "moderation.reviewitem": AdminModel(True, False, False, False),
    "moderation.moderationdecision": AdminModel(True, False, False, False),
    # Claims: taken by opening the queue; admins see and release (delete) them.
    "moderation.reviewclaim": AdminModel(False, False, False, True),
    # Failed sign-ins: recorded by the sign-ins; admins see and clear (unlock) them.
    "axes.accessattempt": AdminModel(False, False, False, True),
}
ADMIN_MODEL_VIEWS = ("changelist", "add", "change", "delete", "history")


def admin_model_cases(rule: AdminModel, view: str, pk: Callable) -> list[Case]:
    moderator_sees = 200 if rule.moderator_views else 403
    if view == "changelist":
        # The bulk delete action, confirmed; offered only to those who may delete.
        selected = lambda f, role: {  # noqa: E731
            "action": "delete_selected",
            "_selected_action": [pk(f)],
            "post": "yes",
        }
        after = DONE if rule.admin_deletes and rule.bulk_actions else REFUSED
        refused = REFUSED if rule.moderator_views else 403
        return [get(staff_only(moderator_sees, 200)), post(staff_only(refused, after), selected)]
    if view == "add":
        may = 200 if rule.admin_adds else 403  # an empty form comes back with its errors
        return [get(staff_only(403, may)), post(staff_only(403, may))]
    if view == "change":
        # An empty form: refused, or back with its errors, or saved when all is read-only.
        return [get(staff_only(moderator_sees, 200)), post(staff_only(403, ADMIN_CHANGE_POSTED))]
    if view == "delete":
        may = 200 if rule.admin_deletes else 403
        after = DONE if rule.admin_deletes else 403
        return [
            get(staff_only(403, may)),
            post(staff_only(403, after), lambda f, role: {"post": "yes"}),
        ]
    if view == "history":
        return [get(staff_only(moderator_sees, 200))]
    if view == "redirect":  # <object_id>/ goes on to <object_id>/change/
        return [get(staff_only(302, 302))]
    raise AssertionError(view)


# What an admin's empty POST on a change page does (models without change: 403).
ADMIN_CHANGE_POSTED = "see ADMIN_CHANGE_POSTS"
ADMIN_CHANGE_POSTS = {
    "auth.group": 200,
    "auth.user": 200,
    "authtoken.tokenproxy": 200,
    "ads.category": 200,
    "ads.ad": 200,  # the inlines' management forms are missing
    "ads.adimage": 302,
    "classifier.trainingimage": 200,
    "classifier.modelversion": 302,
    "classifier.modelversionevent": 403,
    "classifier.labelcheck": 403,
    "classifier.prediction": 403,
    "moderation.reviewitem": 403,
    "moderation.moderationdecision": 403,
    "moderation.reviewclaim": 403,
    "axes.accessattempt": 403,
}


# --- Walking the URL configuration ------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    route: str
    name: str | None  # with its namespaces, as reverse() takes it
    params: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.name or self.route


def url_patterns(resolver=None, route: str = "", namespace: str = "", params=()):
    for entry in (resolver or get_resolver()).url_patterns:
        here = route + str(entry.pattern)
        found = (*params, *entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            prefix = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from url_patterns(entry, here, prefix, found)
        else:
            assert isinstance(entry, URLPattern)
            name = f"{namespace}{entry.name}" if entry.name else None
            yield Pattern(here, name, tuple(dict.fromkeys(found)))


ADMIN_MODEL_URL = re.compile(r"admin:(?P<app>[a-z]+)_(?P<model>[a-z]+)_(?P<view>[a-z]+)")
ADMIN_REDIRECT = re.compile(r"admin/(?P<app>[a-z]+)/(?P<model>[a-z]+)/<path:object_id>/")
ADMIN_CATCH_ALL = "admin/(?P<url>.*)$"


def admin_model_of(pattern: Pattern) -> tuple[str, str] | None:
    """("app.model", view) for the admin's own pages of a registered model."""
    if pattern.name is None:
        found = ADMIN_REDIRECT.fullmatch(pattern.route)
        return (f"{found['app']}.{found['model']}", "redirect") if found else None
    found = ADMIN_MODEL_URL.fullmatch(pattern.name)
    if found is None or found["view"] not in ADMIN_MODEL_VIEWS:
        return None
    return f"{found['app']}.{found['model']}", found["view"]


def cases_for(pattern: Pattern) -> list[Case] | None:
    if pattern.key in EXPECTED:
        return EXPECTED[pattern.key]
    if pattern.route == ADMIN_CATCH_ALL:
        return [get(staff_only(404, 404))]
    model = admin_model_of(pattern)
    if model is None or model[0] not in ADMIN_MODELS:
        return None
    label, view = model
    cases = admin_model_cases(ADMIN_MODELS[label], view, lambda f: f.admin_object(label).pk)
    return [_with_change_post(case, label) for case in cases]


def _with_change_post(case: Case, label: str) -> Case:
    if case.expected["admin"] != ADMIN_CHANGE_POSTED:
        return case
    return Case(case.method, case.expected | {"admin": ADMIN_CHANGE_POSTS[label]}, case.data)


PATTERNS = list(url_patterns())
MATRIX = [
    pytest.param(pattern, case, id=f"{case.method.upper()} {pattern.route} {case.kwargs or ''}")
    for pattern in PATTERNS
    for case in cases_for(pattern) or []
]


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
