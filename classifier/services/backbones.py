"""The shared int8 backbone: converted once per backbone id, then reused by every retrain."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from ..ml.features import backbone_id
from ..models import ServedBackbone
from .artifacts import read_verified, store
from .datasets import LabelledSet
from .errors import ClassifierError


def served_backbone(data: LabelledSet, config) -> ServedBackbone:
    """The stored int8 backbone for ``config.input_size``; converted now, calibrated on a
    sample of ``data``'s photos, when this backbone id has none yet."""
    name = backbone_id(config.input_size)
    existing = ServedBackbone.objects.filter(backbone=name).first()
    if existing is not None:
        return existing
    content, calibrated_on = convert_backbone(data, config)
    backbone = ServedBackbone(backbone=name, calibrated_on=calibrated_on)
    store(backbone, "artifact", f"{config.input_size}px-int8.tflite", content)
    try:
        with transaction.atomic():
            backbone.save()
    except IntegrityError:  # converted meanwhile by another process: keep theirs
        backbone.artifact.delete(save=False)
        return ServedBackbone.objects.get(backbone=name)
    return backbone


def convert_backbone(data: LabelledSet, config) -> tuple[bytes, int]:
    """The backbone at ``config.input_size`` in int8 LiteRT, calibrated on a fixed sample of
    ``data``'s photos; and how many calibrated it."""
    # Training only: serving processes never import TensorFlow (nor Keras).
    from ..ml.export import backbone_litert_bytes
    from ..ml.train import sample_index

    readable = data.readable
    if not len(readable):
        raise ClassifierError(
            f"no photo to calibrate the int8 backbone {backbone_id(config.input_size)} on: "
            "add labelled photos of your own, or train at the shipped model's input size"
        )
    indices = readable[sample_index(len(readable), config.calibration_photos, config.seed)]
    pixels = data.pixels(indices, config.input_size)
    return backbone_litert_bytes(config.input_size, pixels), len(indices)


def read_backbone(backbone: ServedBackbone) -> bytes:
    return read_verified(backbone, "artifact", f"backbone {backbone.backbone}")
