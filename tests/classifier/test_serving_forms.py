"""The served forms of a backbone: int8 (shipped, or converted by a retrain) and float32
(built from the weights package by the training queue); each process serves the faster on
its CPU, says so in its log and on /metrics, and the forms decide alike."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from classifier.ml.features import backbone_id
from classifier.models import ModelVersion, ServedBackbone
from classifier.services import ClassifierError, classify_images, predictor_for, serving_forms
from classifier.services.artifacts import ArtifactMismatch
from classifier.services.serving import forget_loaded_models
from tests.support.images import CLASSES, drawn_photo, encode, jpeg_bytes
from tests.support.retraining import drawn, import_drawn, train_candidate
from tests.support.scrapes import TOKEN, scrape, value
from tests.support.tiny import TINY_SIZE

pytestmark = pytest.mark.django_db

# The float32 form of v5's backbone, converted once per run by the first test that needs it
# (~17 s of TensorFlow): by the training queue's task itself when that test runs first.
_built: dict[str, bytes] = {}


@pytest.fixture
def v5(settings):
    """The shipped v5 (active after migrate), as a fresh process finds it; its float32 file,
    if a test stored one, removed afterwards (the run's storage is shared)."""
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0
    forget_loaded_models()
    version = ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE)
    assert version.served_backbone is not None and version.input_size == 240
    yield version
    backbone = ServedBackbone.objects.get(pk=version.served_backbone_id)
    if backbone.float32_artifact:
        backbone.float32_artifact.delete(save=False)
    forget_loaded_models()


def _with_float32(version: ModelVersion) -> ModelVersion:
    backbone = version.served_backbone
    if "v5" not in _built:
        from classifier.ml.export import backbone_float32_bytes

        _built["v5"] = backbone_float32_bytes(240, backbone.backbone)
    serving_forms.store_float32(backbone, _built["v5"])
    return ModelVersion.objects.get(pk=version.pk)


def _decision(classification, threshold: float) -> str:
    """What routing makes of an answer: the category alone, or a moderator's review."""
    alone = classification.confidence >= threshold and not classification.none_of_these
    return classification.category if alone else "review"


def test_int8_and_float32_decide_alike_on_99_percent_of_photos(
    admin_user, tmp_path, media, sent_trainings, settings
):
    """A version retrained here on drawn photos (its tiny int8 backbone calibrated on them),
    and its float32 form built as the training queue builds it; new drawn photos.
    (The shipped v5 on the 3,421 real photos: bench/serving.py --agreement, bench/README.md.)"""
    import_drawn(tmp_path, {kind: drawn(kind, range(30)) for kind in CLASSES})
    version = train_candidate(admin_user)
    assert version.served_backbone.backbone == backbone_id(TINY_SIZE)
    assert "built the float32 form" in serving_forms.build_float32(version.served_backbone_id)
    version = ModelVersion.objects.get(pk=version.pk)
    photos = [jpeg_bytes(kind, seed) for kind in CLASSES for seed in range(100, 200)]
    photos += [
        encode(drawn_photo(kind, seed, size))
        for kind in CLASSES
        for seed in range(200, 225)
        for size in ((96, 48), (40, 80))
    ]
    answers = {}
    for form in ("int8", "float32"):
        settings.CLASSIFIER_SERVING_FORM = form
        forget_loaded_models()
        answers[form] = classify_images(photos, version)
        assert serving_forms.last_choice.form == form
    pairs = list(zip(answers["int8"], answers["float32"], strict=True))
    same_class = sum(a.category == b.category for a, b in pairs) / len(pairs)
    same_decision = sum(
        _decision(a, version.threshold) == _decision(b, version.threshold) for a, b in pairs
    ) / len(pairs)
    assert same_class >= 0.99, same_class
    # A photo near the threshold may go to review in one form and alone in the other (the
    # int8 confidences differ from the float32 ones by a few points): fewer agree on the
    # decision than on the class. Here 96 %; the shipped v5 on the real photos: bench/README.md.
    assert same_decision >= 0.95, same_decision
    # Two networks indeed: the float32 features are not the int8 ones.
    assert any((a.features != b.features).any() for a, b in pairs)
    # And the forms decide: most drawn photos are published alone by both.
    assert sum(_decision(a, version.threshold) != "review" for a, _ in pairs) > len(pairs) / 2


def test_auto_serves_the_faster_form_and_says_so_in_the_log_and_metrics(
    v5, settings, caplog, client
):
    settings.CLASSIFIER_SERVING_FORM = "auto"
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = TOKEN, []
    version = _with_float32(v5)
    with caplog.at_level("INFO", logger="classifier.services.serving_forms"):
        predictor_for(version)
    choice = serving_forms.last_choice
    assert set(choice.ms) == {"int8", "float32"}
    assert choice.form == min(choice.ms, key=choice.ms.get)
    logged = [r.getMessage() for r in caplog.records if "backbone on" in r.getMessage()]
    assert len(logged) == 1 and f"serving the {choice.form} backbone" in logged[0]
    assert choice.cpu.model in logged[0] and f"int8 {choice.ms['int8']:.1f} ms" in logged[0]

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    samples = scrape(response.text)
    process = serving_forms._process()
    vnni = "1" if choice.cpu.avx512_vnni else "0"
    labels = {"process": process, "version": str(version.number), "cpu": choice.cpu.model}
    assert value(samples, "avito_serving_form", form=choice.form, avx512_vnni=vnni, **labels) == 1
    for form in ("int8", "float32"):
        timed = value(samples, "avito_serving_form_benchmark_ms", process=process, form=form)
        assert timed == choice.ms[form]


def test_a_forced_form_is_served_without_a_benchmark(v5, settings):
    version = _with_float32(v5)
    settings.CLASSIFIER_SERVING_FORM = "float32"
    predictor_for(version)
    choice = serving_forms.last_choice
    assert (choice.form, choice.ms) == ("float32", {})
    assert "forced by CLASSIFIER_SERVING_FORM=float32" in choice.why


def test_without_its_float32_form_int8_serves_while_the_training_queue_builds_it(v5, settings):
    from avito_mod.broker import probe_client
    from classifier.tasks import build_serving_forms

    settings.CLASSIFIER_SERVING_FORM = "auto"
    queue = settings.CLASSIFIER_TRAINING_QUEUE
    redis = probe_client(settings.BROKER_REDIS_URL, timeout=2)
    before = redis.llen(queue)
    predictor_for(v5)
    assert serving_forms.last_choice.form == "int8"
    assert "float32 asked of the training queue" in serving_forms.last_choice.why
    # Asked by this process, on the training queue (taken off again: no worker here).
    asked = [m for m in redis.lrange(queue, 0, -1) if b"build_serving_forms" in m]
    assert len(asked) == 1 and redis.llen(queue) == before + 1
    redis.lrem(queue, 1, asked[0])

    # What the training worker runs; the serving process notices the new file and chooses.
    assert "built the float32 form" in build_serving_forms(v5.served_backbone_id)
    backbone = ServedBackbone.objects.get(pk=v5.served_backbone_id)
    with backbone.float32_artifact.open("rb") as handle:
        _built.setdefault("v5", handle.read())
    assert "already" in build_serving_forms(v5.served_backbone_id)
    predictor_for(ModelVersion.objects.get(pk=v5.pk))
    assert set(serving_forms.last_choice.ms) == {"int8", "float32"}


def test_a_replaced_float32_file_is_refused(v5, settings):
    settings.CLASSIFIER_SERVING_FORM = "auto"
    version = _with_float32(v5)
    file = version.served_backbone.float32_artifact
    file.storage.delete(file.name)
    file.storage.save(file.name, ContentFile(_built["v5"][:-1] + b"\0"))
    with pytest.raises(ArtifactMismatch, match="float32"):
        predictor_for(version)


def test_a_backbone_of_another_revision_gets_no_float32_form():
    other = ServedBackbone(backbone="efficientnet-lite1-imagenet/r1/240px-letterbox")
    with pytest.raises(ClassifierError, match="not a backbone this release builds"):
        serving_forms.input_size_of(other)


def test_the_production_default_is_auto():
    from avito_mod import settings as production

    assert production.CLASSIFIER_SERVING_FORM == "auto"
