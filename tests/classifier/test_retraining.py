"""Retraining from moderators' labels: the evaluation set, exclusion and export, training on
the training queue with progress, the registry page, promotion and rollback (and the review
queue re-scored), auto-promotion, failures, suspected label errors, and the whole loop."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from ads.models import Ad, Category
from ads.uploads import clean_photo
from classifier import fairness, retraining, services
from classifier.ml.backbone import FEATURES
from classifier.ml.features import backbone_id
from classifier.ml.split import assign_held_out, hamming_distances, held_out_by_content
from classifier.models import (
    ImageFeatures,
    LabelCheck,
    ModelVersion,
    ModelVersionEvent,
    Prediction,
    ServedBackbone,
    TrainingImage,
)
from moderation import pipeline
from moderation import services as moderation
from tests.support.factories import make_ad
from tests.support.images import CLASSES, drawn_photo, encode, jpeg_bytes
from tests.support.tiny import TINY_SIZE, register_version, tiny_config

pytestmark = pytest.mark.django_db

Status = ModelVersion.Status
REASON = Ad.ReviewReason
REGISTRY = "admin:classifier_modelversion_changelist"
IMAGES = "admin:classifier_trainingimage_changelist"


# --- Helpers ------------------------------------------------------------------------


def write_folder(root, layout: dict[str, list[tuple[str, int]]], stored: bool = False):
    """``root/<label>/<kind>-<seed>.jpg``: drawn ``kind`` photos filed under ``label``.

    ``stored``: the photos as the marketplace stores an upload of them (re-encoded), as a
    dataset made of earlier ads' photos is; re-posting the original gives the same bytes.
    """
    for label, photos in layout.items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for kind, seed in photos:
            data = jpeg_bytes(kind, seed)
            if stored:
                data = clean_photo(io.BytesIO(data)).data
            (folder / f"{kind}-{seed}.jpg").write_bytes(data)
    return root


def import_drawn(tmp_path, layout, stored: bool = False, name: str = "data"):
    return services.import_images(write_folder(tmp_path / name, layout, stored))


def drawn(kind: str, seeds) -> list[tuple[str, int]]:
    return [(kind, seed) for seed in seeds]


def make_moderator(username: str = "mona"):
    call_command("create_account", username, role="moderator", password="a-long-pass-phrase")
    return get_user_model().objects.get(username=username)


@pytest.fixture
def moderator_client(client):
    client.force_login(make_moderator())
    return client


@pytest.fixture
def sent_trainings(monkeypatch):
    """The training tasks sent to the broker (the boundary to the training worker)."""
    from classifier import tasks

    sent = []
    monkeypatch.setattr(tasks.train_version, "delay", sent.append)
    monkeypatch.setattr(tasks.find_label_errors, "delay", sent.append)
    return sent


def train_candidate(user, config=None) -> ModelVersion:
    """What the admin's button and the training worker do, with a tiny recipe."""
    version = retraining.request_training(user)
    assert retraining.run_training(version.pk, config or tiny_config()).startswith(
        f"v{version.number} trained"
    ), ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    # Primary keys and artifact names repeat between tests (rolled back): a model cached by
    # an earlier test must not be served for this one, as in a fresh worker process.
    services.forget_loaded_models()
    return version


def classify(seller, category: str, kind: str, seed: int) -> Ad:
    """An ad of one drawn photo, classified by the pipeline as a worker would."""
    ad = make_ad(seller, category=category, kind=kind, seed=seed)
    pipeline.classify_ad(ad.pk)
    return Ad.objects.select_related("suggested_category").get(pk=ad.pk)


def prediction_version(ad: Ad) -> int:
    return Prediction.objects.filter(image__ad=ad).latest("created_at").model_version.number


def messages_of(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def backbone_runs(monkeypatch):
    """How many photos each call of the (real) backbone computed features for."""
    from classifier.ml import features

    real, runs = features.compute, []

    def counted(pixels, *args, **kwargs):
        runs.append(len(pixels))
        return real(pixels, *args, **kwargs)

    monkeypatch.setattr(features, "compute", counted)
    return runs


def kept_features(backbone: str) -> dict[int, object]:
    """The training photos whose features are kept for ``backbone``: id to when computed."""
    return dict(
        ImageFeatures.objects.filter(backbone=backbone).values_list("image_id", "created_at")
    )


def training_subset_ids() -> set[int]:
    return set(services.usable_images().filter(subset="train").values_list("pk", flat=True))


# --- The evaluation set -------------------------------------------------------------


def test_held_out_photos_are_chosen_by_content_and_near_copies_follow_their_original():
    rng = np.random.default_rng(0)
    hashes = [int(h) for h in rng.integers(0, 2**63, size=400, dtype=np.uint64)]
    shas = [rng.bytes(32).hex() for _ in range(400)]
    held = assign_held_out(list(zip(shas, hashes, strict=True)), [], [], 15)
    assert 0.08 < np.mean(held) < 0.22
    # The same photos again, as if stored in another order or another database: same sides.
    again = assign_held_out(list(zip(shas, hashes, strict=True))[::-1], [], [], 15)[::-1]
    assert again == held == [held_out_by_content(sha, 15) for sha in shas]
    # A near-copy (3 bits apart) of a held-out photo is held out whatever its own coin says.
    original = held.index(True)
    copy_sha = next(sha for sha in shas if not held_out_by_content(sha, 15))
    copy = [(copy_sha, hashes[original] ^ 0b1011)]
    assert assign_held_out(copy, hashes, held, 15) == [True]


def test_imported_photos_get_a_subset_once_and_training_leaves_the_evaluation_set_out(
    tmp_path, media, settings
):
    settings.CLASSIFIER_EVALUATION_PERCENT = 30
    import_drawn(tmp_path, {k: drawn(k, range(20)) for k in CLASSES})
    rows = list(TrainingImage.objects.values_list("sha256", "phash", "subset"))
    subsets = {sha: subset for sha, _, subset in rows}
    assert set(subsets.values()) == {"train", "evaluation"}
    hashes = np.array([int(phash, 16) for _, phash, _ in rows], dtype=np.uint64)
    for sha, phash, subset in rows:
        # Its own coin, unless it is a near-copy of another photo (drawn ones often are).
        near = hamming_distances(hashes, int(phash, 16))
        if (near <= 6).sum() == 1:
            assert (subset == "evaluation") == held_out_by_content(sha, 30)
        else:
            sides = {s for (_, _, s), d in zip(rows, near, strict=True) if d <= 6}
            assert subset in sides

    training = services.labelled_set(TINY_SIZE)
    pixels, labels, evaluation_ids, unreadable = services.evaluation_set(TINY_SIZE, list(CLASSES))
    assert len(training.ids) + len(evaluation_ids) == 40
    assert not set(training.ids) & set(evaluation_ids)
    assert pixels.shape == (len(evaluation_ids), TINY_SIZE, TINY_SIZE, 3) and not unreadable
    assert len(labels) == len(evaluation_ids)
    # The setting changes later: stored photos keep their side.
    settings.CLASSIFIER_EVALUATION_PERCENT = 0
    import_drawn(tmp_path, {"phone": drawn("phone", range(20, 25))}, name="more")
    stored = TrainingImage.objects.filter(sha256__in=subsets).values_list("sha256", "subset")
    assert dict(stored) == subsets
    # New photos follow the new setting (none held out) unless they are near-copies.
    held = np.array(
        [
            int(p, 16)
            for p, s in TrainingImage.objects.filter(sha256__in=subsets).values_list(
                "phash", "subset"
            )
            if s == "evaluation"
        ],
        dtype=np.uint64,
    )
    for phash in (
        TrainingImage.objects.exclude(sha256__in=subsets)
        .filter(subset="evaluation")
        .values_list("phash", flat=True)
    ):
        assert hamming_distances(held, int(phash, 16)).min() <= 6


def test_a_moderators_label_of_a_near_copy_lands_on_the_side_of_the_stored_photo(
    tmp_path, media, settings, seller
):
    settings.CLASSIFIER_EVALUATION_PERCENT = 50
    import_drawn(tmp_path, {"phone": drawn("phone", range(6)), "laptop": [("laptop", 0)]})
    original = TrainingImage.objects.filter(category__slug="phone").first()
    # The same drawing at other JPEG qualities: other bytes, (nearly) the same pHash; one
    # whose own coin falls on the other side.
    picture = drawn_photo("phone", int(original.original_name.split("-")[1].split(".")[0]))
    for quality in range(60, 100):
        data = encode(picture, "JPEG", quality=quality)
        photo = clean_photo(io.BytesIO(data))
        own = held_out_by_content(photo.sha256, 50)
        if own != (original.subset == "evaluation"):
            break
    else:
        pytest.fail("no near-copy with the other coin")
    distance = hamming_distances(
        np.array([int(original.phash, 16)], np.uint64), int(photo.phash, 16)
    )
    assert distance[0] <= 6

    ad = make_ad(seller, photos=1, seed=0)
    image = ad.images.get()
    image.file.save("x.jpg", ContentFile(photo.data))
    image.sha256, image.phash = photo.sha256, photo.phash
    image.save()
    ad.send_to_review(REASON.LOW_CONFIDENCE)
    moderation.decide(ad.pk, make_moderator(), "accept")

    labelled = TrainingImage.objects.get(sha256=photo.sha256)
    assert (labelled.source, labelled.subset) == ("moderator", original.subset)


def evaluation_ids() -> list[int]:
    return services.evaluation_set(TINY_SIZE, list(CLASSES))[2]


def test_the_evaluation_set_grows_from_moderators_labels(tmp_path, media, settings, seller):
    settings.CLASSIFIER_EVALUATION_PERCENT = 50
    import_drawn(tmp_path, {k: drawn(k, range(10)) for k in CLASSES})
    before = len(evaluation_ids())
    moderator = make_moderator()
    for seed in range(100, 130, 3):
        ad = make_ad(seller, kind="phone", seed=seed, photos=3)
        ad.send_to_review(REASON.LOW_CONFIDENCE)
        moderation.decide(ad.pk, moderator, "accept")
    assert len(evaluation_ids()) > before
    assert TrainingImage.objects.filter(subset="evaluation", source="moderator").exists()


def test_the_data_migration_assigns_existing_photos_like_new_ones(tmp_path, media, settings):
    import_drawn(tmp_path, {k: drawn(k, range(15)) for k in CLASSES})
    expected = dict(TrainingImage.objects.values_list("pk", "subset"))
    TrainingImage.objects.update(subset="train")
    migration = importlib.import_module("classifier.migrations.0007_assign_evaluation_subset")

    migration.assign(django_apps, None)

    assert dict(TrainingImage.objects.values_list("pk", "subset")) == expected


# --- Exclusion, the summary, export ------------------------------------------------


def test_admins_exclude_and_include_images_and_see_the_summary(admin_client, tmp_path, media):
    import_drawn(tmp_path, {k: drawn(k, range(8)) for k in CLASSES})
    phones = TrainingImage.objects.filter(category__slug="phone", subset="train")
    chosen = list(phones.values_list("pk", flat=True)[:2])
    trained_on = len(services.labelled_set(TINY_SIZE).ids)

    response = admin_client.post(
        reverse(IMAGES), {"action": "exclude_selected", "_selected_action": chosen}, follow=True
    )

    assert "2 images excluded from training." in messages_of(response)
    excluded = TrainingImage.objects.filter(pk__in=chosen)
    assert all(i.excluded and i.excluded_by.username == "admin" for i in excluded)
    assert len(services.labelled_set(TINY_SIZE).ids) == trained_on - 2
    page = admin_client.get(reverse(IMAGES))
    phone_row = next(r for r in page.context["summary"] if r["category"] == "Phones")
    assert (phone_row["total"], phone_row["left_out"]) == (8, 2)
    assert "The training set by category" in page.text

    admin_client.post(
        reverse(IMAGES), {"action": "include_selected", "_selected_action": chosen}, follow=True
    )
    assert len(services.labelled_set(TINY_SIZE).ids) == trained_on


def test_the_summary_counts_moderators_labels_the_active_version_has_not_learnt(
    tiny_version, tmp_path, media, seller
):
    tiny_version.data_as_of = timezone.now()
    tiny_version.save()
    ad = make_ad(seller, kind="phone", seed=40, photos=2)
    ad.send_to_review(REASON.LOW_CONFIDENCE)
    moderation.decide(ad.pk, make_moderator(), "accept")

    rows = {row["category"]: row for row in services.training_set_summary()}

    assert rows["Phones"]["new_labels"] == 2


def test_export_dataset_writes_what_import_images_reads(tmp_path, media, seller):
    import_drawn(tmp_path, {k: drawn(k, range(6)) for k in CLASSES})
    left_out = TrainingImage.objects.filter(category__slug="laptop").first()
    left_out.exclude(None, "blurry")
    ad = make_ad(seller, kind="phone", seed=60)
    ad.send_to_review(REASON.LOW_CONFIDENCE)
    moderation.decide(ad.pk, make_moderator(), "reject", reason="not_product")  # a negative
    out = StringIO()

    call_command("export_dataset", str(tmp_path / "export"), stdout=out)

    assert "Exported 11 images" in out.getvalue()
    assert len(list((tmp_path / "export" / "laptop").iterdir())) == 5
    assert len(list((tmp_path / "export" / "phone").iterdir())) == 6
    # The export is a dataset import_images takes: the same photos, nothing new.
    report = services.import_images(tmp_path / "export")
    assert (sum(report.imported.values()), report.duplicates) == (0, 11)


def test_export_dataset_refuses_a_non_empty_folder_unless_forced(tmp_path, media):
    import_drawn(tmp_path, {k: drawn(k, range(2)) for k in CLASSES})
    target = tmp_path / "export"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(CommandError, match="is not empty; choose an empty folder or pass --force"):
        call_command("export_dataset", str(target), stdout=StringIO())
    call_command("export_dataset", str(target), force=True, subset="train", stdout=StringIO())
    assert (target / "notes.txt").read_text() == "mine"
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("export_dataset", str(target / "notes.txt"), stdout=StringIO())


def test_changing_a_label_by_hand_is_recorded_as_a_relabel(
    admin_client, admin_user, tmp_path, media
):
    import_drawn(tmp_path, {k: drawn(k, range(2)) for k in CLASSES})
    image = TrainingImage.objects.filter(category__slug="phone").first()
    laptop = Category.objects.get(slug="laptop")
    url = reverse("admin:classifier_trainingimage_change", args=[image.pk])
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(
        url, {"category": laptop.pk, "source": image.source, "original_name": "x"}
    )

    assert response.status_code == 302
    image.refresh_from_db()
    assert (image.category, image.relabelled_by) == (laptop, admin_user)
    assert image.relabelled_from.slug == "phone" and image.source == "import"


# --- Training on the training queue ------------------------------------------------


def test_the_train_button_queues_a_version_after_commit(
    admin_client, tiny_version, sent_trainings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:classifier_modelversion_train"), follow=True)

    version = ModelVersion.objects.get(status=Status.TRAINING)
    assert sent_trainings == [version.pk]
    assert version.requested_by.username == "admin"
    assert f"v{version.number} is queued on the training worker" in messages_of(response)
    # Its page shows it waiting, and reloads itself.
    assert f"v{version.number} is waiting for the training worker" in response.text
    assert '<meta http-equiv="refresh" content="5">' in response.text
    # A second click while it trains starts nothing.
    again = admin_client.post(reverse("admin:classifier_modelversion_train"), follow=True)
    assert "Nothing started: v" in messages_of(again)
    assert ModelVersion.objects.filter(status=Status.TRAINING).count() == 1


def test_manage_py_train_queue_sends_it_to_the_training_worker(media, sent_trainings):
    out = StringIO()
    call_command("train", queue=True, stdout=out)
    version = ModelVersion.objects.get(status=Status.TRAINING)
    assert f"v{version.number} sent to the" in out.getvalue()
    with pytest.raises(CommandError, match="--queue trains the default recipe; drop --epochs"):
        call_command("train", queue=True, epochs=3, stdout=StringIO())


def test_the_registry_page_shows_progress_while_a_version_trains(admin_client, db):
    version = retraining.request_training(None)
    version.claim_training()
    progress = {"stage": "training", "epoch": 3, "epochs": 12, "loss": 0.4123, "fraction": 0.21}
    assert version.record_progress(progress)

    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))
    listing = admin_client.get(reverse(REGISTRY))

    for response in (page, listing):
        assert f"v{version.number} is training (training, epoch 3 of 12)" in response.text
        assert "loss 0.4123" in response.text
        assert "width:21.0%" in response.text  # the progress bar
        assert '<meta http-equiv="refresh"' in response.text
    assert "Cancel training" in page.text and "Train new version" not in listing.text


def test_a_trained_candidate_is_measured_next_to_the_active_version(
    admin_client, admin_user, tiny_version, tmp_path, media, sent_trainings
):
    import_drawn(tmp_path, {k: drawn(k, range(40)) for k in CLASSES})

    version = train_candidate(admin_user)

    assert version.status == Status.CANDIDATE and version.started_at and version.finished_at
    assert version.data_as_of is not None
    assert version.trained_on == TrainingImage.objects.filter(subset="train").count()
    # What it trained on, validation split included: the whole training subset.
    training = TrainingImage.objects.filter(subset="train").values_list("sha256", flat=True)
    assert version.training_photos == fairness.photo_keys(training)
    # Progress was written as it trained (all heads in one pass): the last epoch's end.
    assert version.progress["epoch"] == version.progress["epochs"] == tiny_config().epochs
    assert version.progress["stage"] == "training" and version.progress["fraction"] == 1.0
    assert "val_loss" in version.progress
    tiny_version.refresh_from_db()
    held_out = TrainingImage.objects.filter(subset="evaluation").count()
    assert version.evaluation["n"] == tiny_version.evaluation["n"] == held_out > 0
    assert version.evaluation["fingerprint"] == tiny_version.evaluation["fingerprint"]
    assert ModelVersion.objects.active() == tiny_version  # no auto-promotion by default

    # The tiny model was trained on the same drawings as some of these evaluation photos:
    # say instead that the active version is known to have seen none of them.
    ModelVersion.objects.filter(pk=tiny_version.pk).update(training_photos=["0" * 16])
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    for chart in ("Loss", "Accuracy", "Coverage and error (evaluation set)"):
        assert f'role="img" aria-label="{chart}"' in page.text  # an inline SVG chart
    assert f"v{version.number} (this version)" in page.text
    assert f"v{tiny_version.number} (active)" in page.text
    assert f"Both measured on the same {held_out} held-out photos." in page.text
    for shown in (f"v{version.number} (this version)", f"v{tiny_version.number} (active)"):
        assert f"{shown}: trained on 0 of the {held_out} evaluation photos." in page.text
    assert "Not a fair" not in page.text
    assert page.text.count('class="confusion"') >= 2
    assert "Promote to active" in page.text


def test_the_active_version_is_measured_again_only_when_its_figures_are_stale(
    admin_user, tiny_version, tmp_path, media, sent_trainings
):
    """A retraining measures the active version once per evaluation set: a second one on
    the same photos and labels keeps its figures; a relabelled evaluation photo makes them
    stale (the same photos, another answer key)."""
    import_drawn(tmp_path, {k: drawn(k, range(30)) for k in CLASSES})
    train_candidate(admin_user)
    tiny_version.refresh_from_db()
    first = tiny_version.evaluation

    second = train_candidate(admin_user)
    tiny_version.refresh_from_db()
    assert tiny_version.evaluation == first  # not measured again
    assert second.evaluation["fingerprint"] == first["fingerprint"]

    photo = TrainingImage.objects.filter(subset="evaluation", category__slug="phone").first()
    photo.category = Category.objects.get(slug="laptop")
    photo.save()
    third = train_candidate(admin_user)
    tiny_version.refresh_from_db()
    assert third.evaluation["fingerprint"] != first["fingerprint"]
    assert tiny_version.evaluation["fingerprint"] == third.evaluation["fingerprint"]
    assert tiny_version.evaluation["evaluated_at"] > first["evaluated_at"]


def test_retrains_share_one_int8_backbone_and_keep_only_their_heads(
    admin_user, tmp_path, media, sent_trainings, monkeypatch
):
    """The backbone is converted to int8 once per backbone id (the slow part of packaging a
    model); each version stores its heads, served after that backbone as the Keras model."""
    from classifier.ml import export

    real, conversions = export.backbone_litert_bytes, []

    def counted(input_size, calibration):
        conversions.append((input_size, len(calibration)))
        return real(input_size, calibration)

    monkeypatch.setattr(export, "backbone_litert_bytes", counted)
    import_drawn(tmp_path, {k: drawn(k, range(30)) for k in CLASSES})
    first = train_candidate(admin_user)
    second = train_candidate(admin_user)

    config = tiny_config()
    assert conversions == [(TINY_SIZE, config.calibration_photos)]
    backbone = ServedBackbone.objects.get(backbone=backbone_id(TINY_SIZE))  # not the shipped
    assert (backbone.backbone, backbone.calibrated_on) == (
        backbone_id(TINY_SIZE),
        config.calibration_photos,
    )
    assert first.served_backbone == second.served_backbone == backbone
    assert first.serving_artifact.name != second.serving_artifact.name
    for version in (first, second):
        assert version.serving_artifact.name.endswith(".npz")
        assert version.metrics["serving_agreement"] >= 0.99
        assert version.metrics["serving_checked"] == config.check_photos
    # Loaded from storage as a worker loads it: the stored backbone, then the stored heads.
    predictor = services.load_predictor(second)
    assert predictor.heads is not None and predictor.classes == second.classes
    with pytest.raises(Exception, match="protected"):
        backbone.delete()  # versions still need it


def test_a_version_whose_heads_file_is_damaged_is_unavailable_not_misread(
    admin_user, tmp_path, media, sent_trainings
):
    import_drawn(tmp_path, {k: drawn(k, range(20)) for k in CLASSES})
    version = train_candidate(admin_user)
    artifact = version.serving_artifact
    with artifact.storage.open(artifact.name, "wb") as handle:  # in place, on disk or S3
        handle.write(b"damaged")

    mismatch = f"model v{version.number}: .* not the file the registry recorded"
    with pytest.raises(services.ClassifierError, match=mismatch):
        services.load_predictor(version)


def test_features_are_computed_once_per_photo_and_backbone(tmp_path, media, backbone_runs):
    """What training reads (``labelled_set``): features of new photos only, kept per
    backbone; photos left out of training keep theirs for when they come back."""
    import_drawn(tmp_path, {k: drawn(k, range(10)) for k in CLASSES})
    first = services.labelled_set(TINY_SIZE)
    kept = kept_features(backbone_id(TINY_SIZE))
    assert set(kept) == set(first.ids) == training_subset_ids()
    assert sum(backbone_runs) == len(first.ids)
    assert first.features.shape == (len(first.ids), 2, FEATURES)

    # A photo excluded, new photos imported: only those new to training go through the
    # backbone, and the excluded photo's features stay for when it is included again.
    left_out = TrainingImage.objects.get(pk=first.ids[0])
    left_out.exclude(None, "blurry")
    import_drawn(tmp_path, {"phone": drawn("phone", range(10, 16))}, name="more")
    new = training_subset_ids() - set(first.ids)
    assert new
    backbone_runs.clear()
    second = services.labelled_set(TINY_SIZE)

    assert sum(backbone_runs) == len(new)
    assert set(second.ids) == (set(first.ids) | new) - {left_out.pk}
    after = kept_features(backbone_id(TINY_SIZE))
    assert {pk: after[pk] for pk in kept} == kept  # neither recomputed nor dropped
    assert set(after) == set(kept) | new
    # The same photo gives the same features from the database as when computed.
    same = [second.ids.index(pk) for pk in first.ids[1:]]
    np.testing.assert_array_equal(second.features[same], first.features[1:])

    # Another input size is another backbone: its features are computed anew.
    backbone_runs.clear()
    other = services.labelled_set(48)
    assert sum(backbone_runs) == len(other.ids) == len(second.ids)
    assert set(kept_features(backbone_id(48))) == set(second.ids)


def test_manage_py_train_measures_the_new_version_on_the_evaluation_set(
    tiny_version, tmp_path, media
):
    import_drawn(tmp_path, {k: drawn(k, range(12)) for k in CLASSES})
    out = StringIO()
    call_command("train", size=32, hidden=0, epochs=2, stdout=out, stderr=StringIO())
    version = ModelVersion.objects.order_by("-number").first()
    assert version.status == Status.CANDIDATE and version.evaluation["fingerprint"]
    assert (version.progress["epoch"], version.progress["epochs"]) == (2, 2)  # reported too
    assert "Evaluation set (" in out.getvalue() or "no photos of these classes" in out.getvalue()


def test_a_failed_training_is_marked_failed_and_the_active_model_keeps_serving(
    tiny_version, tmp_path, media, seller, sent_trainings
):
    import_drawn(tmp_path, {"phone": drawn("phone", range(6))})  # one category only
    version = retraining.request_training(None)

    said = retraining.run_training(version.pk, tiny_config())

    version.refresh_from_db()
    assert said.startswith(f"v{version.number} failed")
    assert version.status == Status.FAILED and "at least two categories" in version.error
    assert ModelVersion.objects.active() == tiny_version
    ad = classify(seller, "phone", "phone", 900)
    assert prediction_version(ad) == tiny_version.number
    # The worker is free again.
    assert retraining.request_training(None).status == Status.TRAINING


def test_a_training_whose_worker_died_is_failed_not_retried(db, settings):
    version = retraining.request_training(None)
    assert version.claim_training()
    # A second delivery while the first run is alive does nothing.
    assert (
        retraining.run_training(version.pk) == f"skipped: v{version.number} is training elsewhere"
    )
    # The worker died: no sign of life for longer than allowed.
    long_ago = timezone.now() - timedelta(seconds=settings.CLASSIFIER_TRAINING_STALE_AFTER + 1)
    ModelVersion.objects.filter(pk=version.pk).update(heartbeat_at=long_ago)

    assert retraining.run_training(version.pk) == f"v{version.number} failed: its first run died"
    version.refresh_from_db()
    assert version.status == Status.FAILED and "killed or restarted" in version.error


def test_the_sweep_fails_trainings_and_label_checks_with_no_sign_of_life(db, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.CLASSIFIER_TRAINING_STALE_AFTER + 1)
    never_taken = retraining.request_training(None)
    ModelVersion.objects.filter(pk=never_taken.pk).update(created_at=long_ago)
    check = LabelCheck.objects.create(created_at=long_ago)
    fresh = LabelCheck.objects.create()

    assert retraining.fail_stalled_training() == 2

    never_taken.refresh_from_db()
    assert never_taken.status == Status.FAILED and "No training worker took it" in never_taken.error
    assert LabelCheck.objects.get(pk=check.pk).status == LabelCheck.Status.FAILED
    assert LabelCheck.objects.get(pk=fresh.pk).status == LabelCheck.Status.RUNNING


def test_cancelling_stops_the_run_at_its_next_report(admin_client, db):
    version = retraining.request_training(None)
    version.claim_training()
    report = retraining._reporter(version)
    report({"stage": "training", "epoch": 1, "epochs": 5})

    response = admin_client.post(
        reverse("admin:classifier_modelversion_cancel", args=[version.pk]), follow=True
    )

    assert f"v{version.number}: training cancelled." in messages_of(response)
    version.refresh_from_db()
    assert version.status == Status.FAILED and version.error.startswith("Cancelled by admin")
    with pytest.raises(services.TrainingCancelled):
        report({"stage": "training", "epoch": 2, "epochs": 5})


def test_scheduled_training_runs_only_when_new_labels_came_in(
    tiny_version, tmp_path, media, sent_trainings
):
    import_drawn(tmp_path, {k: drawn(k, range(3)) for k in CLASSES})
    assert retraining.scheduled_training().endswith("queued")
    queued = ModelVersion.objects.get(status=Status.TRAINING)
    ModelVersion.objects.filter(pk=queued.pk).update(
        status=Status.CANDIDATE, data_as_of=timezone.now()
    )
    assert retraining.scheduled_training().startswith("skipped: no new labels since")


# --- Promotion, rollback, re-scoring -------------------------------------------------


def test_promote_and_roll_back_are_recorded_and_workers_follow_without_a_restart(
    admin_client, tiny_version, tiny_package, seller, media
):
    before = classify(seller, "phone", "phone", 910)
    assert prediction_version(before) == tiny_version.number
    candidate = register_version(tiny_package)

    response = admin_client.post(
        reverse("admin:classifier_modelversion_promote", args=[candidate.pk]), follow=True
    )

    assert f"Model v{candidate.number} is now active (was v{tiny_version.number})" in (
        messages_of(response)
    )
    # The same process, its model cache untouched: the next task loads the new version.
    after = classify(seller, "phone", "phone", 911)
    assert prediction_version(after) == candidate.number

    tiny_version.refresh_from_db()
    assert tiny_version.status == Status.RETIRED
    response = admin_client.post(
        reverse("admin:classifier_modelversion_rollback", args=[tiny_version.pk]), follow=True
    )
    assert f"Model v{tiny_version.number} is now active" in messages_of(response)
    assert prediction_version(classify(seller, "phone", "phone", 912)) == tiny_version.number

    events = list(ModelVersionEvent.objects.order_by("created_at", "id"))
    assert [(e.action, e.version, e.previous, e.user.username) for e in events] == [
        ("promote", candidate, tiny_version, "admin"),
        ("rollback", tiny_version, candidate, "admin"),
    ]
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[candidate.pk]))
    assert "Promoted" in page.text and "Rolled back" in page.text


def test_the_history_pages_list_promotions_and_label_checks(admin_client, tiny_version):
    candidate = ModelVersion.objects.create(number=ModelVersion.next_number(), status="candidate")
    retraining.promote(candidate, None, note="by hand")
    LabelCheck.objects.create(status="failed", error="out of memory")
    events = admin_client.get(reverse("admin:classifier_modelversionevent_changelist"))
    checks = admin_client.get(reverse("admin:classifier_labelcheck_changelist"))
    assert events.status_code == checks.status_code == 200
    assert "by hand" in events.text and "out of memory" in checks.text


def test_only_candidates_are_promoted_and_retired_versions_rolled_back(tiny_version, admin_user):
    failed = ModelVersion.objects.create(number=ModelVersion.next_number(), status=Status.FAILED)
    with pytest.raises(services.ClassifierError, match="only a candidate version can be promoted"):
        retraining.promote(failed, admin_user)
    with pytest.raises(services.ClassifierError, match="only a retired version can be rolled"):
        retraining.roll_back(tiny_version, admin_user)
    assert not ModelVersionEvent.objects.exists()


def test_promotion_rescores_the_ads_in_review_that_depend_on_the_model(
    tiny_version, tiny_package, seller, other_seller, media, django_capture_on_commit_callbacks
):
    wrong = register_version(tiny_package, classes=CLASSES[::-1], status="candidate")
    retraining.promote(wrong, None)
    misrouted = classify(seller, "phone", "phone", 920)  # the wrong model: a "laptop"
    still_doubtful = make_ad(seller, kind="laptop", seed=921)  # a laptop under phones
    still_doubtful.send_to_review(REASON.LOW_CONFIDENCE)
    copied = make_ad(seller, kind="phone", seed=922)
    copied.send_to_review(REASON.DUPLICATE_PHOTO)
    published = make_ad(other_seller, kind="laptop", seed=923)
    published.publish()
    rejected = make_ad(other_seller, kind="laptop", seed=924)
    rejected.reject("prohibited")
    assert misrouted.status == Ad.Status.NEEDS_REVIEW  # as a "laptop", or unsure
    waiting_since = Ad.objects.get(pk=still_doubtful.pk).decided_at
    tiny_version.refresh_from_db()

    with django_capture_on_commit_callbacks() as sent:
        event = retraining.roll_back(tiny_version, None)

    assert event.rescored_ads == 2 and len(sent) == 1  # enqueued after commit
    statuses = dict(Ad.objects.values_list("pk", "status"))
    assert statuses[misrouted.pk] == statuses[still_doubtful.pk] == Ad.Status.PENDING
    assert statuses[copied.pk] == Ad.Status.NEEDS_REVIEW
    assert (statuses[published.pk], statuses[rejected.pk]) == ("published", "rejected")
    # Pending while re-scored: no moderator can decide it meanwhile.
    with pytest.raises(moderation.NotInReview, match="is being classified again"):
        moderation.decide(misrouted.pk, make_moderator(), "accept")

    for ad in (misrouted, still_doubtful):
        pipeline.classify_ad(ad.pk)  # what the workers do with the enqueued ads
    # Seen right now: published by itself if the model is sure (else back, low confidence).
    assert routed_right(misrouted, "phone")
    assert latest_prediction(misrouted).model_version == tiny_version
    doubtful = Ad.objects.get(pk=still_doubtful.pk)
    assert doubtful.status == Ad.Status.NEEDS_REVIEW  # a laptop under Phones, still
    assert latest_prediction(doubtful).category == "laptop"
    assert doubtful.decided_at == waiting_since  # its place in the queue


# --- Auto-promotion -------------------------------------------------------------------


@pytest.fixture
def evaluation_photos(tmp_path, media, settings):
    settings.CLASSIFIER_EVALUATION_PERCENT = 100
    import_drawn(tmp_path, {k: drawn(k, range(300, 315)) for k in CLASSES})


def evaluation_keys() -> list[str]:
    """``training_photos`` for a version trained on every photo of the evaluation set."""
    return fairness.photo_keys(
        TrainingImage.objects.filter(subset="evaluation").values_list("sha256", flat=True)
    )


def test_auto_promotion_is_off_by_default(tiny_package, evaluation_photos):
    active = register_version(tiny_package, classes=CLASSES[::-1])
    active.activate()
    candidate = register_version(tiny_package)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    active.refresh_from_db()
    assert candidate.evaluation["accuracy"] > 0.9 > 0.1 > active.evaluation["accuracy"]
    assert "auto_promotion" not in candidate.evaluation


def test_auto_promotion_promotes_a_clearly_better_candidate(
    tiny_package, tiny_training_photos, evaluation_photos, settings
):
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.05
    active = register_version(
        tiny_package, classes=CLASSES[::-1], training_photos=tiny_training_photos
    )
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == candidate
    event = ModelVersionEvent.objects.get()
    assert (event.action, event.user, event.previous) == ("auto_promote", None, active)
    assert event.note.startswith("promoted automatically: accuracy ")


def test_auto_promotion_keeps_the_active_version_when_the_candidate_is_not_better_enough(
    tiny_package, tiny_training_photos, evaluation_photos, settings
):
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.01
    active = register_version(tiny_package, training_photos=tiny_training_photos)
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    candidate.refresh_from_db()
    assert candidate.evaluation["auto_promotion"].startswith("not promoted: accuracy")
    assert not ModelVersionEvent.objects.exists()


@pytest.mark.parametrize("active_trained_on", ["evaluation photos", "unknown photos"])
def test_auto_promotion_refuses_an_unfair_comparison(
    active_trained_on, tiny_package, tiny_training_photos, evaluation_photos, settings
):
    """The active version's figures on photos it trained on (or may have) flatter it: even
    a candidate far better on them is not promoted, and the verdict says why."""
    settings.CLASSIFIER_AUTO_PROMOTE_MARGIN = 0.05
    seen = evaluation_keys() if active_trained_on == "evaluation photos" else []
    active = register_version(tiny_package, classes=CLASSES[::-1], training_photos=seen)
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)

    retraining.after_training(candidate)

    assert ModelVersion.objects.active() == active
    assert not ModelVersionEvent.objects.exists()
    why = {
        "evaluation photos": f"v{active.number} trained on 30 of these 30 photos",
        "unknown photos": f"which photos v{active.number} trained on is unknown",
    }[active_trained_on]
    verdict = ModelVersion.objects.get(pk=candidate.pk).evaluation["auto_promotion"]
    assert verdict.startswith(f"not promoted, not a fair comparison: {why} — accuracy ")


# --- Fair comparisons: what each version trained on -----------------------------------


def version_page(admin_client, version: ModelVersion) -> str:
    return admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).text


def test_the_registry_says_when_a_version_trained_on_the_evaluation_photos(
    admin_client, tiny_package, tiny_training_photos, evaluation_photos
):
    """The shipped v1's case: trained on the photos of a dataset later imported, it is
    measured on photos it has seen; the page says so instead of offering a verdict."""
    active = register_version(tiny_package, training_photos=[*evaluation_keys()[:20], "0" * 16])
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)
    retraining.after_training(candidate)

    page = version_page(admin_client, candidate)
    listing = admin_client.get(reverse(REGISTRY)).text

    assert f"v{active.number} (active): trained on 20 of the 30 evaluation photos." in page
    assert f"v{candidate.number} (this version): trained on 0 of the 30 evaluation photos." in page
    assert (
        f"<strong>Not a fair comparison: v{active.number} trained on 20 of these 30 photos."
        "</strong> The figures below are no verdict on which version is better."
    ) in page
    assert "Both measured on the same 30 held-out photos." in page  # figures still shown
    # Its own page, and the list, say it too.
    own = version_page(admin_client, active)
    assert f"Not a fair measure: v{active.number} trained on 20 of these 30 photos." in own
    assert listing.count("trained on 20 of the 30 evaluation photos") == 1


def test_a_version_that_did_not_record_its_training_photos_is_unknown_not_zero(
    admin_client, tiny_package, tiny_training_photos, evaluation_photos
):
    active = register_version(tiny_package)  # training_photos empty: unknown
    active.activate()
    candidate = register_version(tiny_package, training_photos=tiny_training_photos)
    retraining.after_training(candidate)

    page = version_page(admin_client, candidate)

    assert fairness.seen_in_training(active).count is None
    assert (
        f"v{active.number} (active): trained on an unknown number of the 30 evaluation photos."
        in page
    )
    assert f"Not a fair comparison: which photos v{active.number} trained on is unknown." in page
    assert f"v{active.number} (active): trained on 0" not in page
    assert f"v{candidate.number} (this version): trained on 0 of the 30 evaluation" in page


def test_training_photos_are_the_photos_an_import_of_the_folder_stores(tmp_path, media):
    """The shipped manifest's list is computed this way from the shared dataset: a
    re-encoded photo and one already in the stored form both match what an import stores,
    and a file the import refuses is left out."""
    layout = {"laptop": drawn("laptop", range(3)), "phone": drawn("phone", range(3))}
    folder = write_folder(tmp_path / "data", layout)
    write_folder(folder, {"phone": drawn("phone", range(3, 5))}, stored=True)
    (folder / "phone" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")

    services.import_images(folder)

    stored = TrainingImage.objects.values_list("sha256", flat=True)
    assert fairness.folder_photo_keys(folder) == fairness.photo_keys(stored)
    assert len(fairness.photo_keys(stored)) == 8


# --- Suspected label errors ------------------------------------------------------------


@pytest.fixture
def flipped(tmp_path, media):
    """Drawn photos with a few deliberately wrong labels: phones filed as laptops and the
    other way round, like the chargers and cases the prototype found among "phones"."""
    import_drawn(
        tmp_path,
        {
            "laptop": drawn("laptop", range(48)) + drawn("phone", range(100, 105)),
            "phone": drawn("phone", range(48)) + drawn("laptop", range(100, 105)),
        },
    )
    return TrainingImage.objects.filter(original_name__regex=r"-10[0-4]\.jpg$", subset="train")


def test_find_label_errors_flags_the_flipped_labels(flipped, admin_client, admin_user):
    check = retraining.find_label_errors(admin_user, folds=3, config=tiny_config())

    assert check.status == LabelCheck.Status.DONE, check.error
    assert check.progress["stage"] == "3 folds" and check.progress["fraction"] == 1.0
    suspects = TrainingImage.objects.filter(suspected_category__isnull=False)
    assert check.flagged == suspects.count() and check.checked == len(
        services.labelled_set(TINY_SIZE).ids
    )
    hits = suspects.filter(pk__in=flipped).count()
    assert hits >= 0.6 * flipped.count(), "recall"
    assert hits >= 0.6 * suspects.count(), "precision"
    for image in suspects.select_related("category", "suspected_category"):
        assert image.suspected_category != image.category
        assert image.suspected_confidence > check.thresholds[image.suspected_category.slug] - 1e-6

    page = admin_client.get(reverse(IMAGES), {"suspected": "yes"})
    assert f"{check.flagged} suspected label errors among {check.checked}" in page.text
    first = suspects.select_related("suspected_category").order_by("-suspected_margin").first()
    suspected = first.suspected_category
    assert reverse("classifier:training-image", args=[first.pk]) in page.text  # thumbnail
    assert f"Relabel as {first.suspected_category}" in page.text

    # One click: relabel to the suspected category (its source stays, the change is signed).
    admin_client.post(
        reverse("admin:classifier_trainingimage_relabel", args=[first.pk]),
        {"_changelist_filters": "suspected=yes"},
    )
    first.refresh_from_db()
    assert first.category == suspected and first.suspected_category is None
    assert first.relabelled_by == admin_user and first.relabelled_from is not None
    assert first.source == "import"
    # One click: exclude another.
    other = suspects.exclude(pk=first.pk).first()
    if other is not None:
        response = admin_client.post(
            reverse("admin:classifier_trainingimage_exclude", args=[other.pk]), follow=True
        )
        assert "1 images excluded from training." in messages_of(response)
        other.refresh_from_db()
        assert other.excluded and other.exclusion_reason == "suspected label error"


def test_find_label_errors_command_refuses_bad_options(db):
    with pytest.raises(CommandError, match="--folds must be at least 2"):
        call_command("find_label_errors", folds=1, stdout=StringIO())
    with pytest.raises(CommandError, match="no labelled training images"):
        call_command("find_label_errors", epochs=1, stdout=StringIO())


def test_the_find_label_errors_button_queues_a_check(
    admin_client, db, sent_trainings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:classifier_trainingimage_check_labels"), follow=True
        )
    check = LabelCheck.objects.get()
    assert sent_trainings == [check.pk] and check.requested_by.username == "admin"
    assert "is queued on the training worker" in messages_of(response)
    assert '<meta http-equiv="refresh"' in response.text
    # The worker is busy: no training meanwhile.
    with pytest.raises(services.ClassifierError, match="is using the training worker"):
        retraining.request_training(None)


# --- Who may press which button ---------------------------------------------------------


@pytest.fixture
def objects(db, media, tmp_path):
    candidate = ModelVersion.objects.create(number=90, status=Status.CANDIDATE, classes=["a"])
    retired = ModelVersion.objects.create(number=91, status=Status.RETIRED, classes=["a"])
    training = ModelVersion.objects.create(number=92, status=Status.TRAINING)
    import_drawn(tmp_path, {k: drawn(k, range(2)) for k in CLASSES})
    image = TrainingImage.objects.first()
    image.suspected_category = Category.objects.exclude(pk=image.category_id).first()
    image.suspected_confidence = 0.99
    image.save()
    return {"candidate": candidate, "retired": retired, "training": training, "image": image}


BUTTONS = [
    ("admin:classifier_modelversion_train", None),
    ("admin:classifier_modelversion_promote", "candidate"),
    ("admin:classifier_modelversion_rollback", "retired"),
    ("admin:classifier_modelversion_cancel", "training"),
    ("admin:classifier_modelversion_evaluate", "candidate"),
    ("admin:classifier_trainingimage_relabel", "image"),
    ("admin:classifier_trainingimage_exclude", "image"),
    ("admin:classifier_trainingimage_check_labels", None),
]
ACTIONS = [
    (REGISTRY, "promote_selected", "candidate"),
    (REGISTRY, "roll_back_selected", "retired"),
    (REGISTRY, "evaluate_selected", "candidate"),
    (IMAGES, "exclude_selected", "image"),
    (IMAGES, "include_selected", "image"),
    (IMAGES, "relabel_selected", "image"),
]


def _button(name, target, objects):
    return reverse(name, args=[objects[target].pk] if target else [])


@pytest.mark.parametrize("name, target", BUTTONS)
def test_buttons_are_for_admins(name, target, objects, client, admin_client, sent_trainings):
    url = _button(name, target, objects)
    anonymous = client.post(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_moderator())
    assert client.post(url).status_code == 403
    assert admin_client.get(url).status_code == 405  # a GET does nothing
    response = admin_client.post(url)
    assert response.status_code == 302, response.content[:500]
    assert "/admin/login/" not in response["Location"]


@pytest.mark.parametrize("page, action, target", ACTIONS)
def test_admin_actions_are_for_admins(page, action, target, objects, client, admin_client):
    data = {"action": action, "_selected_action": [objects[target].pk]}
    anonymous = client.post(reverse(page), data)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_moderator())
    assert client.post(reverse(page), data).status_code == 403
    response = admin_client.post(reverse(page), data, follow=True)
    assert response.status_code == 200 and response.context["messages"], action


def test_staff_without_the_permissions_get_no_buttons(objects, client):
    staff = get_user_model().objects.create_user("stan", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_modelversion", "view_trainingimage"])
    )
    client.force_login(staff)
    page = client.get(reverse(REGISTRY)).text
    detail = client.get(
        reverse("admin:classifier_modelversion_change", args=[objects["candidate"].pk])
    ).text
    images = client.get(reverse(IMAGES), {"suspected": "yes"}).text
    assert "Train new version" not in page and "Promote to active" not in detail
    assert "Relabel as" not in images and "Find suspected label errors" not in images
    assert client.post(_button(*BUTTONS[0], objects)).status_code == 403


# --- The whole loop ----------------------------------------------------------------------


def latest_prediction(ad: Ad) -> Prediction:
    return (
        Prediction.objects.filter(image__ad=ad)
        .select_related("model_version")
        .latest("created_at", "id")
    )


def misrouted(ad: Ad, kind: str) -> bool:
    """In review, because the model sees the photo as something it is not."""
    ad.refresh_from_db()
    return ad.status == Ad.Status.NEEDS_REVIEW and latest_prediction(ad).category != kind


def routed_right(ad: Ad, kind: str) -> bool:
    """The model sees what the photo is; the ad is published, or waits for a human only
    because the model is not sure enough (a tiny model's threshold is strict)."""
    ad.refresh_from_db()
    sure = ad.status == Ad.Status.PUBLISHED
    unsure = ad.status == Ad.Status.NEEDS_REVIEW and ad.review_reason == REASON.LOW_CONFIDENCE
    return latest_prediction(ad).category == kind and (sure or unsure)


def test_the_loop_moderators_correct_a_mislabelled_model_and_retraining_fixes_it(
    tmp_path,
    media,
    seller,
    admin_user,
    sent_trainings,
    django_capture_on_commit_callbacks,
    backbone_runs,
):
    """A dataset made of earlier ads' photos, imported with its two folders swapped, gives a
    model that misroutes ads. Sellers post those photos again; moderators put them in the
    right category, which relabels them. Retraining gives a model that routes the same kind
    of ads right; promoting it changes the live predictions; rolling back restores them."""
    per_class = 36
    import_drawn(
        tmp_path,
        {"laptop": drawn("phone", range(per_class)), "phone": drawn("laptop", range(per_class))},
        stored=True,
    )
    bad = train_candidate(admin_user)
    retraining.promote(bad, admin_user)
    # Training went through the backbone once per training photo and kept the features,
    # under the version's backbone; the evaluation photos were never needed.
    assert bad.backbone == backbone_id(TINY_SIZE)
    kept = kept_features(bad.backbone)
    assert set(kept) == training_subset_ids() and len(kept) == bad.trained_on
    assert ImageFeatures.objects.count() == len(kept)
    assert sum(backbone_runs) == len(kept)

    # It misroutes: phones under Phones go to review as "laptops", and laptops as "phones".
    waiting = [classify(seller, kind, kind, 500) for kind in CLASSES]
    assert all(misrouted(ad, kind) for ad, kind in zip(waiting, CLASSES, strict=True))

    # The photos come back in ads, in the right category; moderators accept them.
    moderator = make_moderator()
    for kind in CLASSES:
        for first in range(0, per_class, 10):
            photos = min(10, per_class - first)
            ad = make_ad(seller, category=kind, kind=kind, seed=first, photos=photos)
            pipeline.classify_ad(ad.pk)
            assert misrouted(ad, kind)
            moderation.decide(ad.pk, moderator, "accept")
    # The same stored photos, relabelled: every label now says what the photo shows.
    assert TrainingImage.objects.count() == 2 * per_class
    for image in TrainingImage.objects.select_related("category"):
        assert image.category.slug == image.original_name.split("-")[0], image
        assert image.source == "moderator"

    backbone_runs.clear()
    good = train_candidate(admin_user)
    # Relabelled, they are the same photos: the second training reused their features.
    assert backbone_runs == []
    assert (good.backbone, good.trained_on) == (bad.backbone, bad.trained_on)
    assert kept_features(good.backbone) == kept  # same rows, computed when they were
    assert ImageFeatures.objects.count() == len(kept)
    bad.refresh_from_db()
    assert good.evaluation["fingerprint"] == bad.evaluation["fingerprint"]
    assert good.evaluation["accuracy"] > 0.9 > 0.1 > bad.evaluation["accuracy"]

    with django_capture_on_commit_callbacks():
        event = retraining.promote(good, admin_user)
    assert event.rescored_ads == len(waiting)  # the misrouted ads nobody decided yet
    for ad_id in Ad.objects.filter(status=Ad.Status.PENDING).values_list("pk", flat=True):
        pipeline.classify_ad(ad_id)  # the inference workers, with the new active version
    # The ads that waited are routed again by the new version: right, and those it is sure
    # of leave the queue by themselves.
    assert all(routed_right(ad, kind) for ad, kind in zip(waiting, CLASSES, strict=True))
    assert {latest_prediction(ad).model_version for ad in waiting} == {good}
    # New ads of the same kind: the live predictions changed.
    new = [classify(seller, kind, kind, seed) for kind in CLASSES for seed in (600, 601)]
    assert all(routed_right(ad, ad.category.slug) for ad in new)
    assert sum(ad.status == Ad.Status.PUBLISHED for ad in waiting + new) >= 3

    # Roll back: the old behaviour returns.
    bad.refresh_from_db()
    with django_capture_on_commit_callbacks():
        retraining.roll_back(bad, admin_user)
    again = classify(seller, "phone", "phone", 700)
    assert misrouted(again, "phone") and latest_prediction(again).model_version == bad
