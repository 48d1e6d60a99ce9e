"""Shadow mode: a candidate answers on every new ad photo beside the active version, from the
backbone features the active version computed when they share the served backbone; its
answers never route; the registry's figures (agreement, ads each would publish, accuracy on
moderated ads with the paired test); one at a time; leaving, promoting, permissions.

Real tiny versions served as the int8 backbone then the heads (trained once per session on
drawn photos); the version in shadow is the same network with its outputs named the other
way round (always disagreeing), or named the same (always agreeing).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from ads.models import Ad, Category
from classifier import services
from classifier.ml.features import backbone_id
from classifier.ml.predict import Predictor
from classifier.models import (
    ModelVersion,
    ModelVersionEvent,
    Prediction,
    ServedBackbone,
    ShadowPrediction,
    ShadowRouting,
)
from classifier.services import retraining, shadow
from classifier.services.artifacts import store
from moderation import pipeline
from moderation import services as moderation
from tests.support.factories import make_ad, make_moderator
from tests.support.images import CLASSES
from tests.support.retraining import messages_of
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db

Action = ModelVersionEvent.Action
REVERSED = list(CLASSES[::-1])


@pytest.fixture(scope="session")
def backbone_and_heads(dataset_dir):
    """The int8 backbone at the tiny size, and heads trained on its features (without the
    none-of-these detector: these tests route by category and confidence)."""
    from classifier.ml.dataset import load_folder
    from classifier.ml.export import backbone_litert_bytes
    from classifier.ml.features import compute
    from classifier.ml.split import near_duplicate_groups
    from classifier.ml.train import package, train

    data = load_folder(dataset_dir, TINY_SIZE)
    result = train(
        compute(data.pixels),
        data.labels,
        list(CLASSES),
        near_duplicate_groups(data.hashes),
        tiny_config(),
    )
    backbone = backbone_litert_bytes(TINY_SIZE, data.pixels[:16])
    heads = package(replace(result, none_of_these=None), lambda i: data.pixels[i], backbone)
    return backbone, heads


def served_backbone(content: bytes, copy: bool = False) -> ServedBackbone:
    """The int8 backbone stored; ``copy``: under another name, as another backbone."""
    name = backbone_id(TINY_SIZE) + ("/copy" if copy else "")
    backbone = ServedBackbone(backbone=name, calibrated_on=16)
    store(backbone, "artifact", "tiny-int8.tflite", content)
    backbone.save()
    return backbone


def heads_version(heads, backbone: ServedBackbone, classes=CLASSES) -> ModelVersion:
    """A candidate served as ``backbone`` then ``heads`` (``classes`` reversed: always
    wrong where the original is right)."""
    version = ModelVersion(
        number=ModelVersion.next_number(),
        status=ModelVersion.Status.CANDIDATE,
        classes=list(classes),
        input_size=TINY_SIZE,
        threshold=heads.metrics["threshold"],
        metrics=heads.metrics,
        served_backbone=backbone,
        backbone=backbone_id(TINY_SIZE),
    )
    store(version, "serving_artifact", "heads.npz", heads.serving_bytes)
    version.save()
    return version


@pytest.fixture
def versions(media, backbone_and_heads):
    """The active version, a candidate that always disagrees with it and one that always
    agrees, all on one served backbone."""
    services.forget_loaded_models()  # primary keys repeat between tests: a fresh process
    content, heads = backbone_and_heads
    backbone = served_backbone(content)
    active = heads_version(heads, backbone)
    active.activate()
    return active, heads_version(heads, backbone, REVERSED), heads_version(heads, backbone)


@pytest.fixture
def backbone_runs(monkeypatch):
    """The batches the served backbone ran on (a spy on the real predictor)."""
    real, runs = Predictor.answers, []

    def counted(self, pixels):
        runs.append(len(pixels))
        return real(self, pixels)

    monkeypatch.setattr(Predictor, "answers", counted)
    return runs


def post(seller, category: str, kind: str, seed: int, photos: int = 1) -> Ad:
    """An ad routed by the pipeline as a worker would."""
    ad = make_ad(seller, category=category, kind=kind, seed=seed, photos=photos)
    pipeline.classify_ad(ad.pk)
    return Ad.objects.get(pk=ad.pk)


def page(client, version: ModelVersion):
    return client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))


def button(name: str, version: ModelVersion) -> str:
    return reverse(f"admin:classifier_modelversion_{name}", args=[version.pk])


# --- Scoring and routing ---------------------------------------------------------------


def test_each_photo_of_a_new_ad_is_answered_in_shadow_from_the_same_backbone_run(
    versions, admin_user, seller, backbone_runs
):
    active, wrong, _ = versions
    shadow.enter(wrong, admin_user)

    ad = post(seller, "phone", "phone", 100, photos=3)

    assert backbone_runs == [3]  # one batch, for the active version only: heads in shadow
    answers = {p.image_id: p for p in Prediction.objects.filter(image__ad=ad)}
    in_shadow = list(ShadowPrediction.objects.filter(image__ad=ad))
    assert len(answers) == len(in_shadow) == 3
    for answer in in_shadow:
        assert (answer.model_version, answer.served_with) == (wrong, active)
        mine = answers[answer.image_id]
        assert mine.model_version == active
        assert answer.category != mine.category  # its outputs named the other way round
        assert answer.confidence == pytest.approx(mine.confidence, abs=1e-5)
    # What sellers see comes from the active version alone.
    client = APIClient()
    client.force_authenticate(seller)
    shown = client.get(reverse("ads:ad-detail", args=[ad.pk])).json()
    assert {p["prediction"]["model_version"] for p in shown["photos"]} == {active.number}
    # A second delivery adds nothing.
    Ad.objects.filter(pk=ad.pk).update(status=Ad.Status.PENDING)
    pipeline.classify_ad(ad.pk)
    assert ShadowPrediction.objects.filter(image__ad=ad).count() == 3


def test_the_version_in_shadow_never_routes_an_ad(versions, admin_user, seller):
    active, wrong, _ = versions
    shadow.enter(wrong, admin_user)

    # The active version publishes a phone under Phones; the version in shadow calls it a
    # laptop and would send it to review.
    phone = post(seller, "phone", "phone", 200)
    # A phone under Laptops: the active version sends it to review; the version in shadow
    # would publish it.
    misfiled = post(seller, "laptop", "phone", 210)

    assert phone.status == Ad.Status.PUBLISHED
    assert (misfiled.status, misfiled.review_reason) == (
        Ad.Status.NEEDS_REVIEW,
        "category_mismatch",
    )
    routings = {r.ad_id: r for r in ShadowRouting.objects.all()}
    assert (routings[phone.pk].would_status, routings[phone.pk].would_reason) == (
        Ad.Status.NEEDS_REVIEW,
        "category_mismatch",
    )
    assert routings[misfiled.pk].would_status == Ad.Status.PUBLISHED
    assert routings[misfiled.pk].routed_status == Ad.Status.NEEDS_REVIEW


def test_a_version_on_another_backbone_runs_its_own(
    versions, backbone_and_heads, admin_user, seller, backbone_runs
):
    active, _, _ = versions
    content, heads = backbone_and_heads
    other = heads_version(heads, served_backbone(content, copy=True), REVERSED)
    shadow.enter(other, admin_user)

    ad = post(seller, "phone", "phone", 300, photos=2)

    assert backbone_runs == [2, 2]  # the active version's run, then its own
    assert ShadowPrediction.objects.filter(image__ad=ad, model_version=other).count() == 2
    assert "a second backbone run per photo" in ModelVersionEvent.objects.get(version=other).note


def test_a_failing_version_in_shadow_leaves_the_ad_routed(versions, admin_user, seller, caplog):
    _, wrong, _ = versions
    shadow.enter(wrong, admin_user)
    artifact = wrong.serving_artifact
    with artifact.storage.open(artifact.name, "wb") as handle:
        handle.write(b"damaged")

    ad = post(seller, "phone", "phone", 400)

    assert ad.status == Ad.Status.PUBLISHED
    assert not ShadowPrediction.objects.exists() and not ShadowRouting.objects.exists()
    assert f"v{wrong.number} in shadow could not score it" in caplog.text


# --- Figures ----------------------------------------------------------------------------


def test_agreement_and_the_ads_each_would_publish(versions, admin_user, admin_client, seller):
    active, wrong, same = versions
    shadow.enter(wrong, admin_user)
    post(seller, "phone", "phone", 500, photos=2)
    post(seller, "laptop", "phone", 510)
    post(seller, "laptop", "laptop", 520)

    found = shadow.figures(wrong)
    assert (found.photos, found.agreed, found.active) == (4, 0, active)
    assert (found.ads, found.routed_published, found.would_published) == (3, 2, 1)
    assert (found.only_routed_published, found.only_would_published) == (2, 1)
    text = page(admin_client, wrong).text
    assert "Agreement with v" in text and "0 of 4 photos, 0.0% (0.0%–49.0%)" in text

    shadow.leave(wrong, admin_user)
    shadow.enter(same, admin_user)
    post(seller, "phone", "phone", 530, photos=2)
    found = shadow.figures(same)
    assert (found.photos, found.agreed) == (2, 2)  # only since it entered shadow
    assert (found.ads, found.routed_published, found.would_published) == (1, 1, 1)


def test_accuracy_on_moderated_ads_side_by_side_with_the_paired_test(
    versions, admin_user, admin_client, seller
):
    active, wrong, _ = versions
    shadow.enter(wrong, admin_user)
    mona = make_moderator()
    phones = Category.objects.get(slug="phone")
    for seed in range(600, 660, 10):  # six phones filed under Laptops
        ad = post(seller, "laptop", "phone", seed)
        assert ad.status == Ad.Status.NEEDS_REVIEW
        moderation.decide(ad.pk, mona, "recategorize", category=phones)
    post(seller, "phone", "phone", 700)  # published alone: no moderator's label

    found = shadow.figures(wrong)
    overall = found.rows[0]
    assert (overall.paired.n, overall.paired.b, overall.paired.c) == (6, 6, 0)
    assert str(overall.verdict) == "worse"
    mine, theirs = found.counts["all"]
    assert (mine.correct, theirs.correct, mine.n) == (6, 0, 6)
    assert [row.slug for row in found.rows] == ["all", "phone"]
    text = page(admin_client, wrong).text
    assert "On the ads moderators decided since" in text
    assert (
        f"(6 photos of Laptops and Phones), v{wrong.number} against v{active.number}: worse: "
        f"6 more of the 6 photos right for v{active.number}"
    ) in text


def test_too_few_moderated_photos_say_so(versions, admin_user, seller):
    _, wrong, _ = versions
    shadow.enter(wrong, admin_user)
    ad = post(seller, "laptop", "phone", 800)
    moderation.decide(
        ad.pk, make_moderator(), "recategorize", category=Category.objects.get(slug="phone")
    )
    assert str(shadow.figures(wrong).rows[0].verdict).startswith("too few photos (about 119 more")


# --- Entering and leaving -----------------------------------------------------------------


def test_one_version_in_shadow_at_a_time(versions, admin_user):
    active, wrong, same = versions
    shadow.enter(wrong, admin_user)
    with pytest.raises(shadow.ShadowError, match=f"v{wrong.number} is in shadow: take it out"):
        shadow.enter(same, admin_user)
    with pytest.raises(shadow.ShadowError, match="only a candidate can be put in shadow"):
        shadow.enter(active, admin_user)
    # The database holds to it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=same.pk).update(in_shadow=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=active.pk).update(in_shadow=True)


def test_admins_put_a_candidate_in_shadow_and_take_it_out_with_a_click(
    versions, admin_client, seller
):
    _, wrong, _ = versions
    assert "Put in shadow" in page(admin_client, wrong).text

    response = admin_client.post(button("shadow", wrong), follow=True)

    assert "is in shadow: the workers score every new photo with it too" in messages_of(response)
    wrong.refresh_from_db()
    assert wrong.in_shadow and "Leave shadow" in response.text
    listed = admin_client.get(reverse("admin:classifier_modelversion_changelist")).text
    assert "in shadow since" in listed
    post(seller, "phone", "phone", 900)

    response = admin_client.post(button("leave_shadow", wrong), follow=True)

    assert "left shadow" in messages_of(response)
    wrong.refresh_from_db()
    assert not wrong.in_shadow
    post(seller, "phone", "phone", 910)  # no longer scored in shadow
    assert ShadowPrediction.objects.count() == 1
    assert "Was in shadow from" in response.text and "Agreement with" in response.text
    events = ModelVersionEvent.objects.filter(version=wrong).order_by("created_at", "id")
    assert [(e.action, e.user.username) for e in events] == [
        (Action.SHADOW_START, "admin"),
        (Action.SHADOW_END, "admin"),
    ]
    assert "Put in shadow" in response.text and "Left shadow" in response.text  # the history


def test_bad_requests_get_a_clear_message(versions, admin_client):
    active, wrong, _ = versions
    response = admin_client.post(button("leave_shadow", wrong), follow=True)
    assert f"v{wrong.number} is not in shadow." in messages_of(response)
    response = admin_client.post(button("shadow", active), follow=True)
    assert "is active: only a candidate can be put in shadow" in messages_of(response)
    artifact = wrong.serving_artifact
    with artifact.storage.open(artifact.name, "wb") as handle:
        handle.write(b"damaged")
    response = admin_client.post(button("shadow", wrong), follow=True)
    assert f"v{wrong.number} cannot be put in shadow: model v{wrong.number}" in (
        messages_of(response)
    )
    assert admin_client.get(button("shadow", wrong)).status_code == 405  # a POST only
    assert not ModelVersion.objects.filter(in_shadow=True).exists()


def test_moderators_can_neither_put_in_shadow_nor_see_it(versions, admin_user, client):
    _, wrong, same = versions
    client.force_login(make_moderator())
    assert client.post(button("shadow", same)).status_code == 403
    shadow.enter(wrong, admin_user)
    assert client.post(button("leave_shadow", wrong)).status_code == 403
    assert page(client, wrong).status_code == 403
    wrong.refresh_from_db()
    assert wrong.in_shadow and not same.in_shadow


def test_promoting_the_version_in_shadow_ends_its_shadow(versions, admin_user, admin_client):
    active, _, same = versions
    shadow.enter(same, admin_user)

    response = admin_client.post(button("promote", same), follow=True)

    assert f"Model v{same.number} is now active" in messages_of(response)
    same.refresh_from_db()
    assert (same.status, same.in_shadow) == (ModelVersion.Status.ACTIVE, False)
    events = ModelVersionEvent.objects.filter(version=same).order_by("created_at", "id")
    assert [(e.action, e.note) for e in events][1:] == [
        (Action.SHADOW_END, "promoted from shadow"),
        (Action.PROMOTE, ""),
    ]


def test_another_version_made_active_ends_the_shadow(versions, admin_user):
    active, wrong, same = versions
    shadow.enter(wrong, admin_user)
    retraining.promote(same, admin_user)
    wrong.refresh_from_db()
    assert not wrong.in_shadow
    ended = ModelVersionEvent.objects.get(version=wrong, action=Action.SHADOW_END)
    assert ended.note.startswith(f"v{same.number} became active")
