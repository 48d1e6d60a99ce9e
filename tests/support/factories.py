"""Users, uploads and ads for tests, made through the same code paths as production."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from ads import services
from ads.models import Ad, Category
from tests.support.images import jpeg_bytes

PASSWORD = "a-long-test-password"


def make_user(username: str, *, staff: bool = False):
    return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)


def make_moderator(username: str = "mona"):
    """A moderator account made as an operator makes one (``create_account``)."""
    call_command("create_account", username, role="moderator", password=PASSWORD, stdout=StringIO())
    return get_user_model().objects.get(username=username)


def upload(name: str = "photo.jpg", data: bytes | None = None, seed: int = 0):
    """An uploaded file as Django hands it to a view."""
    content = jpeg_bytes("phone", seed) if data is None else data
    return SimpleUploadedFile(name, content, content_type="image/jpeg")


def ad_form(**overrides) -> dict:
    """The fields of a valid ad as a client posts them (two photos), with ``overrides``."""
    form = {
        "title": "iPhone 12",
        "description": "Works fine",
        "price": "250.00",
        "category": "phone",
        "photos": [upload("front.jpg", seed=1), upload("back.jpg", seed=2)],
    }
    return form | overrides


def make_ad(
    seller,
    *,
    category: str = "phone",
    photos: int = 1,
    kind: str = "phone",
    seed: int = 0,
    **fields,
) -> Ad:
    """An ad whose photos are drawn ``kind`` photos numbered from ``seed`` (the same seed
    gives byte-identical photos: pass different seeds for different photos)."""
    values = {"title": "iPhone 12", "description": "Works fine", "price": Decimal("250.00")}
    return services.create_ad(
        seller,
        **(values | fields),
        category=Category.objects.get(slug=category),
        photos=[upload(f"p{n}.jpg", jpeg_bytes(kind, seed + n)) for n in range(photos)],
    )


def store_shipped_files() -> None:
    """This test's storage holding what ``migrate`` stored in the test run's: the shipped
    default model's files and its int8 backbone, which the database names (each row found
    by its recorded SHA-256)."""
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from classifier.bootstrap import DEFAULT_MODEL_DIR
    from classifier.models import ModelVersion, ServedBackbone

    by_sha = {
        hashlib.sha256(path.read_bytes()).hexdigest(): path
        for path in DEFAULT_MODEL_DIR.iterdir()
        if path.suffix in (".npz", ".tflite", ".keras")
    }
    files = [
        (getattr(version, field).name, by_sha[getattr(version, f"{field}_sha256")])
        for version in ModelVersion.objects.all()
        for field in ("artifact", "serving_artifact")
        if getattr(version, f"{field}_sha256") in by_sha
    ]
    files += [
        (backbone.artifact.name, by_sha[backbone.artifact_sha256])
        for backbone in ServedBackbone.objects.all()
        if backbone.artifact_sha256 in by_sha
    ]
    assert files, "migrate registered no shipped model"
    for name, path in files:
        assert default_storage.save(name, ContentFile(path.read_bytes())) == name
