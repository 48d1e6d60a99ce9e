"""The form of a version's backbone a process serves (``ml.serving_forms``): chosen when it
loads the model, said in its log and on ``/metrics``; the float32 form built where missing.

The float32 form is built from the installed weights package (no download), once per
backbone id, by the training queue (it needs TensorFlow, ~17 s and ~1 GB): the first
process that loads a version without it asks for it and serves int8 meanwhile; the processes
notice the new file at their next look at the artifacts (``serving._stamps``) and choose
again. Stored beside the int8 form with its SHA-256, and verified on every load.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator

from django.conf import settings

from ..ml.features import backbone_id
from ..ml.heads import Heads
from ..ml.predict import Predictor
from ..ml.serving_forms import Choice, fastest
from ..models import ModelVersion, ServedBackbone
from .artifacts import read_verified, store
from .errors import ClassifierError

logger = logging.getLogger(__name__)

# Each process's last choice, a hash of "host:pid" → JSON, in the broker's Redis.
RECORD_KEY = "avito-mod:serving-forms"
FORGET_AFTER_SECONDS = 24 * 3600  # a process that loaded nothing for a day is forgotten

# This process's last choice (bench/serving.py, tests), and the backbones it asked for.
last_choice: Choice | None = None
_asked: set[str] = set()


def backbone_predictor(version: ModelVersion, heads: Heads, threads: int) -> Predictor:
    """The version's predictor on the form of its backbone this process serves best."""
    global last_choice
    forms, why = _forms(version.served_backbone)
    predictors = {
        form: Predictor(
            content, version.classes, version.input_size, num_threads=threads, heads=heads
        )
        for form, content in forms.items()
    }
    if len(predictors) > 1:
        choice = fastest({form: p.answers for form, p in predictors.items()}, version.input_size)
    else:
        choice = Choice(next(iter(predictors)), why=why)
    logger.info("model v%s: %s", version.number, choice.summary())
    _record(choice, version)
    last_choice = choice
    return predictors[choice.form]


def _forms(backbone: ServedBackbone) -> tuple[dict[str, bytes], str]:
    """The verified forms CLASSIFIER_SERVING_FORM lets this process choose from, and why
    there is no choice when there is one form only."""
    wanted = settings.CLASSIFIER_SERVING_FORM
    has_float32 = bool(backbone.float32_artifact)
    if wanted != "int8" and not has_float32:
        ask_for_float32(backbone)
    forms = {}
    if wanted != "float32" or not has_float32:
        forms["int8"] = read_verified(backbone, "artifact", f"backbone {backbone.backbone}")
    if wanted != "int8" and has_float32:
        forms["float32"] = read_verified(
            backbone, "float32_artifact", f"backbone {backbone.backbone} (float32)"
        )
    if wanted == "auto" or wanted in forms:
        why = f"forced by CLASSIFIER_SERVING_FORM={wanted}" if wanted != "auto" else ""
        return forms, why or "the only form built yet (float32 asked of the training queue)"
    return forms, f"CLASSIFIER_SERVING_FORM={wanted}, but that form is not built yet"


def ask_for_float32(backbone: ServedBackbone) -> None:
    """Ask the training queue, once per process, to build the backbone's float32 form."""
    from kombu.exceptions import OperationalError

    from ..tasks import build_serving_forms

    if backbone.backbone in _asked:
        return
    _asked.add(backbone.backbone)
    try:
        build_serving_forms.delay(backbone.pk)
    except OperationalError as error:
        logger.warning("the float32 form of %s not asked for: %s", backbone.backbone, error)
        return
    logger.info("asked the training queue to build the float32 form of %s", backbone.backbone)


def forget_asked() -> None:
    """Forget which float32 forms this process asked for (tests: a fresh process)."""
    _asked.clear()


def build_float32(backbone_pk: int) -> str:
    """Build and store the float32 form of a served backbone, unless it has one."""
    from ..ml.export import backbone_float32_bytes

    backbone = ServedBackbone.objects.get(pk=backbone_pk)
    if backbone.float32_artifact:
        return f"{backbone.backbone} has its float32 form already"
    input_size = input_size_of(backbone)
    return store_float32(backbone, backbone_float32_bytes(input_size, backbone.backbone))


def input_size_of(backbone: ServedBackbone) -> int:
    """The input size of the backbone's id, when today's code builds that very network."""
    try:
        size = int(backbone.backbone.rsplit("/", 1)[1].split("px", 1)[0])
        same = backbone_id(size, backbone.backbone) == backbone.backbone
    except (IndexError, ValueError):
        same = False
    if not same:
        raise ClassifierError(
            f"{backbone.backbone} is not a backbone this release builds: its float32 form "
            "cannot be built from the installed weights; its int8 form is served"
        )
    return size


def store_float32(backbone: ServedBackbone, content: bytes) -> str:
    """Store ``content`` as the backbone's float32 form, unless another process stored one
    meanwhile (a conditional update: the first one stays)."""
    store(backbone, "float32_artifact", f"{input_size_of(backbone)}px-float32.tflite", content)
    stored = ServedBackbone.objects.filter(pk=backbone.pk, float32_artifact="").update(
        float32_artifact=backbone.float32_artifact.name,
        float32_artifact_sha256=backbone.float32_artifact_sha256,
    )
    if not stored:
        backbone.float32_artifact.delete(save=False)
        return f"{backbone.backbone}: its float32 form was built meanwhile elsewhere"
    return f"built the float32 form of {backbone.backbone} ({len(content) / 1e6:.1f} MB)"


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _record(choice: Choice, version: ModelVersion) -> None:
    """This process's choice in the broker's Redis, for ``/metrics`` (any web process)."""
    import redis

    from avito_mod.broker import probe_client

    now = time.time()
    record = {
        "version": version.number,
        "form": choice.form,
        "ms": choice.ms,
        "cpu": choice.cpu.model,
        "avx512_vnni": choice.cpu.avx512_vnni,
        "at": now,
    }
    client = probe_client(settings.BROKER_REDIS_URL, timeout=1.0)
    try:
        client.hset(RECORD_KEY, _process(), json.dumps(record))
        stale = [key for key, value in client.hgetall(RECORD_KEY).items() if _stale(value, now)]
        if stale:
            client.hdel(RECORD_KEY, *stale)
    except (redis.RedisError, OSError) as error:
        # Said, not warned: a command run without the broker (classify, evaluate) serves alike.
        logger.info("the serving form's choice not recorded (broker unreachable): %s", error)
    finally:
        client.close()


def _stale(value: bytes, now: float) -> bool:
    return now - json.loads(value).get("at", 0) > FORGET_AFTER_SECONDS


def recorded() -> dict[str, dict]:
    """Each process's recorded choice (processes that loaded a model within a day)."""
    from avito_mod.broker import probe_client

    client = probe_client(settings.BROKER_REDIS_URL, timeout=0.4)
    try:
        values = client.hgetall(RECORD_KEY)
    finally:
        client.close()
    now = time.time()
    return {
        key.decode(): json.loads(value) for key, value in values.items() if not _stale(value, now)
    }


class ServingFormsCollector:
    """``/metrics``: each process's served form and its self-benchmark's figures."""

    def collect(self) -> Iterator:
        import redis
        from prometheus_client.core import GaugeMetricFamily

        chosen = GaugeMetricFamily(
            "avito_serving_form",
            "1 for the backbone form each process serves, chosen when it loaded the model",
            labels=["process", "version", "form", "cpu", "avx512_vnni"],
        )
        ms = GaugeMetricFamily(
            "avito_serving_form_benchmark_ms",
            "Each form's median milliseconds for one photo in the process's self-benchmark",
            labels=["process", "form"],
        )
        try:
            records = recorded()
        except (redis.RedisError, OSError) as error:
            logger.warning("metrics: the serving forms cannot be read: %s", error)
            return
        for process, record in sorted(records.items()):
            vnni = "1" if record["avx512_vnni"] else "0"
            labels = [process, str(record["version"]), record["form"], record["cpu"], vnni]
            chosen.add_metric(labels, 1)
            for form, value in record["ms"].items():
                ms.add_metric([process, form], value)
        yield from (chosen, ms)
