"""Training on the training queue: the button and the commands, progress on the registry
page, the candidate measured beside the active version, one int8 backbone shared by
retrains, features computed once per photo, failures, cancelling, and the schedule."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from ads.models import Category
from classifier import services
from classifier.ml.backbone import FEATURES
from classifier.ml.features import backbone_id
from classifier.models import (
    LabelCheck,
    ModelVersion,
    ServedBackbone,
    TrainingImage,
)
from classifier.services import fairness, retraining
from tests.support.images import CLASSES
from tests.support.retraining import (
    REGISTRY,
    Status,
    classify,
    drawn,
    import_drawn,
    kept_features,
    messages_of,
    prediction_version,
    train_candidate,
    training_subset_ids,
)
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db


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
