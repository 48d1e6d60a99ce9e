"""Retraining's data: the evaluation set chosen by photo content (near copies follow their
original), exclusion, the training set's summary, and export."""

from __future__ import annotations

import importlib
import io
from io import StringIO

import numpy as np
import pytest
from django.apps import apps as django_apps
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from ads.models import Category
from ads.uploads import clean_photo
from classifier import services
from classifier.ml.split import assign_held_out, hamming_distances, held_out_by_content
from classifier.models import TrainingImage
from moderation import services as moderation
from tests.support.factories import make_ad
from tests.support.images import CLASSES, drawn_photo, encode
from tests.support.retraining import (
    IMAGES,
    REASON,
    drawn,
    import_drawn,
    make_moderator,
    messages_of,
)
from tests.support.tiny import TINY_SIZE

pytestmark = pytest.mark.django_db


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
