"""The shipped model's knowledge travels with it (``classifier.services.shipped``): retrains
train on the shipped photos' features as well as the database's, evaluations measure the
shipped categories on the shipped evaluation photos as well, and an import of a shipped
photo keeps its side of the split and its features.

The tests ship their own features: drawn laptops and phones at the tests' tiny input size,
written as ``build_default_model`` writes them (the real file is of 240 px photos)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from django.urls import reverse

from ads.uploads import clean_photo
from classifier import services
from classifier.ml import features as ml_features
from classifier.models import ImageFeatures, ModelVersion, TrainingImage
from classifier.services import retraining, shipped
from tests.support.images import jpeg_bytes
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db

SHIPPED_SEEDS = range(3000, 3050)  # 50 drawn photos of each shipped category


def write_drawn(root, layout: dict[str, list[tuple[str, int]]]):
    """``root/<label>/<kind>-<seed>.jpg``, each photo in the form the marketplace stores."""
    for label, photos in layout.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for kind, seed in photos:
            data = clean_photo(io.BytesIO(jpeg_bytes(kind, seed))).data
            (root / label / f"{kind}-{seed}.jpg").write_bytes(data)
    return root


@pytest.fixture
def shipped_file(tmp_path, settings):
    """Shipped features of drawn laptops and phones, as ``build_default_model`` writes them,
    made the installation's (``CLASSIFIER_SHIPPED_FEATURES``)."""
    folder = write_drawn(
        tmp_path / "shipped",
        {kind: [(kind, seed) for seed in SHIPPED_SEEDS] for kind in ("laptop", "phone")},
    )
    every = services.folder_set(folder, TINY_SIZE)
    photos = shipped.ShippedPhotos.of_folder(every, TINY_SIZE)
    path = tmp_path / "features.npz"
    shipped.write(path, photos)
    settings.CLASSIFIER_SHIPPED_FEATURES = str(path)
    assert 0 < photos.evaluation.sum() < len(photos)  # both sides of the split
    return photos, folder


def count(photos: shipped.ShippedPhotos, evaluation: bool) -> int:
    return int((photos.evaluation == evaluation).sum())


# --- The file ------------------------------------------------------------------------


def test_quantized_features_are_off_by_at_most_half_a_step():
    rng = np.random.default_rng(0)
    features = rng.normal(scale=3.0, size=(20, 2, 1600)).astype(np.float32)
    features[3, 1] = 0.0  # a vector of zeros keeps its zeros

    values, scales = ml_features.quantize(features)
    back = ml_features.dequantize(values, scales).astype(np.float32)

    assert values.dtype == np.int8 and scales.shape == (20, 2)
    step = np.abs(features).max(axis=-1, keepdims=True) / 127
    # Half a step, and float16's own rounding of the result.
    assert np.all(np.abs(back - features) <= step / 2 + np.abs(features) * 2**-10 + 1e-6)
    assert not back[3, 1].any()


def test_the_shipped_file_reads_back_what_was_written(shipped_file, tmp_path):
    photos, _ = shipped_file
    read = shipped.read(tmp_path / "features.npz")

    assert (read.backbone, read.input_size, read.classes) == (
        photos.backbone,
        TINY_SIZE,
        ["laptop", "phone"],
    )
    assert read.sha256 == photos.sha256 and read.phashes == photos.phashes
    assert np.array_equal(read.labels, photos.labels)
    assert np.array_equal(read.evaluation, photos.evaluation)
    np.testing.assert_allclose(read.features, photos.features, atol=0.05, rtol=0.01)
    # Compact: int8 and compressed, under half the float16 features' size.
    assert (tmp_path / "features.npz").stat().st_size < photos.features.nbytes / 2


# --- A fresh install ----------------------------------------------------------------


def test_a_fresh_install_trains_a_new_category_beside_the_shipped_ones(
    shipped_file, tmp_path, media, settings, admin_user, admin_client
):
    """Nothing labelled but 40 cameras: the train button works, and the version learns
    Laptops and Phones from the shipped features and is measured on the shipped photos."""
    photos, _ = shipped_file
    settings.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = 20
    services.import_images(
        write_drawn(tmp_path / "new", {"camera": [("camera", s) for s in range(40)]}),
        create_categories=True,
    )
    database = {
        subset: TrainingImage.objects.filter(subset=subset).count()
        for subset in ("train", "evaluation")
    }
    rows = {row.category.slug: row for row in services.photos_per_category()}
    assert rows["laptop"].train == 0 and rows["laptop"].all_train == rows["laptop"].shipped_train
    assert rows["laptop"].shipped_train + rows["phone"].shipped_train == count(photos, False)
    assert not rows["laptop"].too_few and not rows["camera"].too_few
    with pytest.raises(services.ClassifierError, match=r"Laptops \(0\), Phones \(0\)"):
        services.require_enough_photos(with_shipped=False)

    version = retraining.request_training(admin_user)
    said = retraining.run_training(version.pk, tiny_config())
    assert said.startswith(f"v{version.number} trained"), said
    version.refresh_from_db()

    assert version.classes == ["camera", "laptop", "phone"] and version.with_shipped_features
    assert version.metrics["trained_on_sources"] == {
        "shipped": count(photos, False),
        "database": database["train"],
    }
    assert version.evaluation["sources"] == {
        "shipped": count(photos, True),
        "database": database["evaluation"],
    }
    assert version.evaluation["n"] == count(photos, True) + database["evaluation"]
    # Measured photo by photo on the shipped evaluation photos too (the paired tests' input).
    keys = {sha[:16] for sha, out in zip(photos.sha256, photos.evaluation, strict=True) if out}
    assert keys <= set(version.evaluation["answers"])
    assert version.evaluation["accuracy"] >= 0.8  # drawn kinds are easy for the backbone

    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))
    assert f"{count(photos, False):,} shipped, {database['train']:,} from this database" in (
        page.text
    )
    # Known to be held out from its training: all of them, the shipped ones included.
    assert f"trained on 0 of the {version.evaluation['n']} evaluation photos" in page.text


def test_an_admin_can_leave_the_shipped_photos_out_and_it_is_recorded(
    shipped_file, tmp_path, media, admin_client
):
    photos, _ = shipped_file
    services.import_images(
        write_drawn(
            tmp_path / "own",
            {
                "camera": [("camera", s) for s in range(30)],
                "phone": [("phone", s) for s in range(30)],
            },
        ),
        create_categories=True,
    )
    page = admin_client.get(reverse("admin:classifier_modelversion_changelist"))
    assert "without the shipped photos" in page.text

    response = admin_client.post(
        reverse("admin:classifier_modelversion_train"), {"without_shipped": "on"}
    )
    assert response.status_code == 302
    version = ModelVersion.objects.get(status=ModelVersion.Status.TRAINING)
    assert version.with_shipped_features is False
    said = retraining.run_training(version.pk, tiny_config())
    assert said.startswith(f"v{version.number} trained"), said
    version.refresh_from_db()

    # No laptop photo of its own: without the shipped ones it knows no Laptops.
    assert version.classes == ["camera", "phone"]
    assert version.metrics["trained_on_sources"]["shipped"] == 0
    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))
    assert "the shipped photos left out by the admin" in page.text
    # Still measured on the shipped evaluation phones: forgetting would show.
    phones = sum(
        1
        for slug, out in zip(photos.slugs, photos.evaluation, strict=True)
        if out and slug == "phone"
    )
    assert version.evaluation["sources"]["shipped"] == phones


# --- Imports of shipped photos --------------------------------------------------------


def test_an_import_of_shipped_photos_keeps_their_side_and_features_and_counts_them_once(
    shipped_file, tmp_path, media, monkeypatch
):
    photos, folder = shipped_file
    held_out = [i for i in range(len(photos)) if photos.evaluation[i]][:3]
    trained = [i for i in range(len(photos)) if not photos.evaluation[i]][:3]
    chosen = held_out + trained
    again = tmp_path / "again"
    for i in chosen:  # the very photos, as a new install's admin might import them
        slug = photos.classes[photos.labels[i]]
        (again / slug).mkdir(parents=True, exist_ok=True)
        match = next(
            f
            for f in (folder / slug).iterdir()
            if hashlib.sha256(f.read_bytes()).hexdigest() == photos.sha256[i]
        )
        (again / slug / match.name).write_bytes(match.read_bytes())
    runs = []
    real = ml_features.compute
    monkeypatch.setattr(ml_features, "compute", lambda *a, **k: runs.append(1) or real(*a, **k))

    services.import_images(again)

    as_shipped = shipped.shipped_photos()  # the features as the file holds them
    for i in chosen:
        image = TrainingImage.objects.get(sha256=photos.sha256[i])
        assert image.subset == ("evaluation" if photos.evaluation[i] else "train")
        kept = ImageFeatures.objects.get(image=image, backbone=photos.backbone)
        np.testing.assert_array_equal(ml_features.from_bytes(kept.data), as_shipped.features[i])
    data = services.labelled_set(TINY_SIZE, with_shipped=True)
    assert runs == []  # no feature pass: the shipped features were reused
    assert len(data.sha256) == len(set(data.sha256))  # never counted twice
    assert (len(data.labels), data.from_shipped) == (count(photos, False), count(photos, False) - 3)
    # The held-out ones, now in the database, are measured from there, not twice.
    usable = shipped.usable(TINY_SIZE, {"laptop", "phone"}, "evaluation")
    assert len(usable) == count(photos, True) - 3


def test_a_near_copy_of_a_shipped_photo_joins_its_side(shipped_file):
    photos, _ = shipped_file
    for i in (int(np.argmax(photos.evaluation)), int(np.argmin(photos.evaluation))):
        near = photos.phashes[i] ^ 0b101  # two bits off: a re-encoded copy
        side = services.subsets_for([("f" * 64, f"{near:016x}")])
        assert side == ["evaluation" if photos.evaluation[i] else "train"]


def test_features_of_another_backbone_or_size_are_not_used(shipped_file, settings, tmp_path):
    photos, _ = shipped_file
    other = tmp_path / "other.npz"
    fields = ("classes", "features", "labels", "sha256", "phashes", "evaluation")
    at_48 = [getattr(photos, field) for field in fields]
    shipped.write(other, shipped.ShippedPhotos(ml_features.backbone_id(48), 48, *at_48))
    settings.CLASSIFIER_SHIPPED_FEATURES = str(other)
    assert shipped.usable(TINY_SIZE, {"laptop", "phone"}, "train") is None
    settings.CLASSIFIER_SHIPPED_FEATURES = "off"
    assert shipped.shipped_photos() is None and services.photos_per_category()[0].shipped_train == 0


def test_counts_survive_a_side_with_nothing_left_to_add(shipped_file, settings):
    """Only the shipped categories' held-out photos count once their training photos are
    all in the database: the counts still come (a side with none must not end them)."""
    photos, _ = shipped_file
    assert shipped.counts({"laptop", "phone"})[("laptop", "train")] > 0
    assert shipped.counts({"camera"}) == {}
