"""The table of who may do what, for every URL the project serves, walked from the URL
configuration (asked in tests/avito_mod/test_authorization.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.support.factories import PASSWORD, upload

if TYPE_CHECKING:
    from tests.avito_mod.test_authorization import Fixture


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
    # moderator (the fixture's claim): the admin takes it over (tests/moderation/test_claims.py).
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
