import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from ads.models import Category
from classifier.ml.features import backbone_id
from classifier.models import ModelVersion, TrainingImage
from classifier.services import fairness
from tests.support.images import jpeg_bytes, write_dataset
from tests.support.storage import stored_files as all_stored_files
from tests.support.tiny import TINY_SIZE

pytestmark = pytest.mark.django_db
PROJECT_DIR = Path(__file__).resolve().parents[2]


def run(name, *args, **options):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def stored_files(prefix="training/"):
    # Through the storage API: a bucket has no folders to look for.
    return [name for name in all_stored_files() if name.startswith(prefix)]


# --- import_images --------------------------------------------------------------


def test_import_images_stores_labelled_photos_and_skips_duplicates(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=5)
    (data / "phone" / "copy.jpg").write_bytes((data / "phone" / "0000.jpg").read_bytes())
    out, err = run("import_images", str(data))
    assert "Imported 10 images; 1 duplicates and 0 unreadable" in out
    assert TrainingImage.objects.filter(category__slug="phone").count() == 5
    image = TrainingImage.objects.filter(category__slug="laptop").first()
    assert image.source == TrainingImage.Source.IMPORT
    assert len(image.sha256) == 64 and len(image.phash) == 16
    assert (image.width, image.height) == (48, 40)
    assert len(stored_files()) == 10
    # A second import of the same folder adds nothing.
    out, _ = run("import_images", str(data))
    assert "Imported 0 images; 11 duplicates" in out


def test_import_images_lists_and_skips_unreadable_files(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=3)
    (data / "laptop" / "notes.jpg").write_text("not a photo")
    (data / "phone" / "half.jpg").write_bytes(jpeg_bytes("phone", 99)[:200])
    out, err = run("import_images", str(data))
    assert "notes.jpg: the file is not an image" in err
    assert "half.jpg" in err
    assert "Imported 6 images; 0 duplicates and 2 unreadable" in out


def test_import_images_refuses_a_missing_directory(tmp_path, media):
    with pytest.raises(CommandError, match="is not a directory"):
        run("import_images", str(tmp_path / "nope"))


def test_import_images_refuses_an_empty_class_folder(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=2)
    (data / "tablet").mkdir()
    with pytest.raises(CommandError, match="class folder\\(s\\) with no files: tablet"):
        run("import_images", str(data))
    assert TrainingImage.objects.count() == 0


def test_import_images_refuses_an_unknown_category_unless_asked_to_create_it(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=2)
    shutil.move(data / "laptop", data / "tablet")
    with pytest.raises(CommandError, match="no category with slug tablet"):
        run("import_images", str(data))
    assert TrainingImage.objects.count() == 0
    run("import_images", str(data), create_categories=True)
    assert Category.objects.get(slug="tablet").name == "Tablet"
    assert TrainingImage.objects.filter(category__slug="tablet").count() == 2


def test_a_failed_import_leaves_no_rows_and_no_files(tmp_path, media, monkeypatch):
    data = write_dataset(tmp_path / "data", per_class=3)
    saves = []
    real_save = TrainingImage.save

    def failing_save(self, *args, **kwargs):
        saves.append(self)
        if len(saves) == 4:
            raise RuntimeError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(TrainingImage, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        run("import_images", str(data))
    assert TrainingImage.objects.count() == 0
    assert stored_files() == []


# --- train ----------------------------------------------------------------------

TINY = {"size": 32, "hidden": 0, "epochs": 2}


def test_train_on_a_folder_registers_a_candidate(dataset_dir, tiny_training_photos, media):
    active_before = ModelVersion.objects.active()
    out, err = run("train", data=dataset_dir, **(TINY | {"hidden": 8}))
    version = ModelVersion.objects.order_by("-number").first()
    assert f"Registered model v{version.number}." in out
    assert "Validation (" in out and "laptop: precision" in out
    assert "epoch 2/2" in err  # the per-epoch progress bar
    assert version.status == ModelVersion.Status.CANDIDATE
    assert version.classes == ["laptop", "phone"]
    assert version.threshold is not None
    assert version.input_size == 32 and version.backbone == backbone_id(32)
    assert version.training_photos == tiny_training_photos  # every photo of the folder
    assert len(version.history["loss"]) == version.metrics["epochs_run"]
    assert default_storage.exists(version.artifact.name)
    assert default_storage.exists(version.serving_artifact.name)
    assert ModelVersion.objects.active() == active_before
    # --hidden 8: every fold's head has a hidden layer of 8 units before the softmax.
    from classifier.ml.export import load_keras

    with default_storage.open(version.artifact.name, "rb") as handle:
        heads = [
            layer for layer in load_keras(handle.read()).layers if layer.name.startswith("head")
        ]
    assert len(heads) == version.metrics["folds"] == 5
    assert all(head.get_layer("hidden").units == 8 for head in heads)


def test_train_on_imported_images_with_activate(tmp_path, media):
    run("import_images", str(write_dataset(tmp_path / "data", per_class=12)))
    out, _ = run("train", activate=True, json=True, **TINY)
    report = json.loads(out.strip().splitlines()[-1])
    version = ModelVersion.objects.get(number=report["version"])
    assert version.status == ModelVersion.Status.ACTIVE
    # The evaluation set is held out of training, and the new version measured on it.
    held_out = TrainingImage.objects.filter(subset="evaluation").count()
    assert version.trained_on == 24 - held_out
    assert version.evaluation["n"] == held_out
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1


def test_train_without_labelled_images_says_so(media):
    TrainingImage.objects.all().delete()
    with pytest.raises(CommandError, match="no labelled training images; run import_images"):
        run("train", **TINY)


def test_train_refuses_a_missing_data_directory(tmp_path, media):
    with pytest.raises(CommandError, match="is not a directory"):
        run("train", data=tmp_path / "missing", **TINY)


def test_train_refuses_a_folder_that_is_not_a_category(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=3)
    shutil.move(data / "phone", data / "toaster")
    with pytest.raises(CommandError, match="no category with slug toaster"):
        run("train", data=data, **TINY)


def test_train_refuses_a_single_category(tmp_path, media):
    data = write_dataset(tmp_path / "data", per_class=3)
    shutil.rmtree(data / "phone")
    with pytest.raises(CommandError, match="at least two categories"):
        run("train", data=data, **TINY)
    assert ModelVersion.objects.filter(status=ModelVersion.Status.FAILED).exists()


def test_train_refuses_bad_options(media):
    versions = ModelVersion.objects.count()
    with pytest.raises(CommandError, match="--epochs must be at least 1"):
        run("train", epochs=0)
    with pytest.raises(CommandError, match="--size must be at least 32 pixels"):
        run("train", size=16)
    with pytest.raises(CommandError, match="--hidden must be 0 \\(a linear head\\) or more"):
        run("train", hidden=-1)
    assert ModelVersion.objects.count() == versions  # refused before anything is registered


# --- evaluate -------------------------------------------------------------------


def test_evaluate_prints_json_with_the_agreed_keys(tiny_version, tmp_path):
    data = write_dataset(tmp_path / "eval", per_class=10, start=500)
    out, _ = run("evaluate", str(data), json=True)
    report = json.loads(out)
    for key in (
        "accuracy",
        "n",
        "per_class",
        "confusion_matrix",
        "coverage_at_threshold",
        "error_at_threshold",
    ):
        assert key in report
    assert report["n"] == 20
    assert report["version"] == tiny_version.number
    assert report["accuracy"] >= 0.85
    assert sum(map(sum, report["confusion_matrix"])) == 20


def test_evaluate_prints_a_readable_report(tiny_version, tmp_path):
    data = write_dataset(tmp_path / "eval", per_class=4, start=500)
    out, _ = run("evaluate", str(data), version=tiny_version.number)
    assert f"Model v{tiny_version.number} on 8 images: accuracy" in out
    assert "Confusion matrix" in out and "decides" in out


def test_evaluate_refuses_an_unknown_version(tiny_version, tmp_path):
    with pytest.raises(CommandError, match="there is no model version 999"):
        run("evaluate", str(write_dataset(tmp_path / "e", 2)), version=999)


def test_evaluate_refuses_a_folder_the_model_does_not_know(tiny_version, tmp_path):
    data = write_dataset(tmp_path / "eval", per_class=2)
    shutil.move(data / "phone", data / "tablet")
    with pytest.raises(CommandError, match="tablet are not classes of model"):
        run("evaluate", str(data))


def test_evaluate_refuses_a_missing_directory(tiny_version, tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        run("evaluate", str(tmp_path / "nope"))


def test_evaluate_without_an_active_model_says_so(db, tmp_path):
    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(status="retired")
    with pytest.raises(CommandError, match="no active model version"):
        run("evaluate", str(write_dataset(tmp_path / "e", 2)))


# --- classify -------------------------------------------------------------------


def test_classify_prints_the_prototype_response_shape(tiny_version, tmp_path):
    phone = tmp_path / "phone.jpg"
    phone.write_bytes(jpeg_bytes("phone", 777))
    laptop = tmp_path / "laptop.jpg"
    laptop.write_bytes(jpeg_bytes("laptop", 778))
    out, _ = run("classify", str(phone), str(laptop), category="phone", json=True)
    first, second = (json.loads(line) for line in out.strip().splitlines())
    assert first["file"] == str(phone)
    assert first["class"] == "phone" and first["categories_matched"] is True
    assert second["class"] == "laptop" and second["categories_matched"] is False
    assert 0.5 <= first["confidence"] <= 1.0
    assert first["model_version"] == tiny_version.number


def test_classify_text_output_says_whether_it_matches(tiny_version, tmp_path):
    laptop = tmp_path / "laptop.jpg"
    laptop.write_bytes(jpeg_bytes("laptop", 779))
    out, _ = run("classify", str(laptop), category="phone")
    assert "laptop" in out and "does not match phone" in out


def test_classify_refuses_an_unknown_category(tiny_version, tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes())
    with pytest.raises(CommandError, match="unknown category 'toaster'"):
        run("classify", str(photo), category="toaster")


def test_classify_reports_each_bad_file_and_exits_non_zero(tiny_version, tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes())
    bad = tmp_path / "bad.jpg"
    bad.write_text("<svg onload=alert(1)>")
    from io import StringIO

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 of 3 files could not be classified"):
        call_command(
            "classify", str(good), str(bad), str(tmp_path / "missing.jpg"), stdout=out, stderr=err
        )
    assert "good.jpg: phone" in out.getvalue()
    assert "bad.jpg: unsupported image format SVG" in err.getvalue()
    assert "missing.jpg: no such file" in err.getvalue()


def test_classify_refuses_an_unknown_version(tiny_version, tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes())
    with pytest.raises(CommandError, match="no model version 42"):
        run("classify", str(photo), version=42)


# --- build_default_model --------------------------------------------------------


def test_build_default_model_writes_a_loadable_model_and_manifest(
    dataset_dir, tmp_path, media, child_env
):
    out_dir = tmp_path / "default"
    # Run as it is run, in a process of its own (the backbone takes gigabytes while it
    # computes features, given back to the system when it ends); at the tests' input size.
    built = subprocess.run(
        [sys.executable, "manage.py", "build_default_model", str(dataset_dir)]
        + ["--out", str(out_dir), "--epochs", "1", "--size", str(TINY_SIZE)],
        cwd=PROJECT_DIR,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert f"Wrote {out_dir}: validation accuracy" in built.stdout
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["classes"] == ["laptop", "phone"]
    assert manifest["backbone"] == backbone_id(manifest["input_size"])
    assert 0.0 < manifest["threshold"] <= 1.0
    assert "accuracy" in manifest["metrics"] and "loss" in manifest["history"]

    # It trained on exactly the photos an import of the same folder into an empty database
    # puts in the training subset: none of those it holds out for evaluation.
    assert not TrainingImage.objects.exists()
    run("import_images", str(dataset_dir))
    images = TrainingImage.objects.all()
    trained = fairness.photo_keys(images.filter(subset="train").values_list("sha256", flat=True))
    held_out = fairness.photo_keys(
        images.filter(subset="evaluation").values_list("sha256", flat=True)
    )
    assert held_out and trained  # the coin toss held some of the 96 out, not all
    assert manifest["training_photos"] == trained
    assert manifest["trained_on"] == len(trained) == 96 - len(held_out)
    assert sorted(trained + held_out) == fairness.folder_photo_keys(dataset_dir)
    # So the registry measures it fairly on that evaluation set.
    shipped = ModelVersion(number=99, classes=manifest["classes"])
    shipped.training_photos = manifest["training_photos"]
    seen = fairness.seen_in_training(shipped)
    assert (seen.count, seen.total, seen.fair) == (0, len(held_out), True)

    from classifier.ml.heads import Heads
    from classifier.ml.predict import Predictor
    from classifier.ml.preprocess import preprocess

    # What it knows travels with it: every photo's features, with its side of the split.
    from classifier.services import shipped

    features = shipped.read(out_dir / "features.npz")
    assert (features.backbone, features.input_size) == (manifest["backbone"], TINY_SIZE)
    assert len(features) == 96 and int(features.evaluation.sum()) == len(held_out)
    trained_photos = [
        sha for sha, out in zip(features.sha256, features.evaluation, strict=True) if not out
    ]
    assert fairness.photo_keys(trained_photos) == manifest["training_photos"]

    # Served as the shipped v5 is: the int8 backbone, then the heads and the detector.
    heads = Heads((out_dir / "heads.npz").read_bytes())
    predictor = Predictor(
        (out_dir / "backbone.tflite").read_bytes(),
        manifest["classes"],
        manifest["input_size"],
        heads=heads,
    )
    pixels = preprocess(jpeg_bytes("phone", 5), manifest["input_size"])[None]
    answers = predictor.answers(pixels)
    assert answers.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert answers.none_of_these is not None and heads.none_of_these.threshold > 0
    assert manifest["metrics"]["none_of_these"]["target_rate"] == 0.01
    assert manifest["calibrated_on"] > 0


def test_build_default_model_refuses_a_missing_directory(tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        run("build_default_model", str(tmp_path / "nope"), out=tmp_path / "o")
