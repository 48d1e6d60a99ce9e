"""The hostile-file corpus (``tests/support/hostile.py``) through every way a photo comes in: an
ad's photos (``POST /api/v1/ads/``), the quick check (``POST /api/v1/classify/``),
``manage.py import_images`` and the admin's "Add example photos" (files, or a zip).
Refused files are named with the reason; accepted ones are stored as clean JPEGs (the quick
check stores nothing); nothing is left half-done.

Uploads are sent as hand-built multipart bodies: Django's test client would strip the
hostile file names (``../``, NUL) before they reach the server, as a real client need not.
"""

from __future__ import annotations

import io
import secrets
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient

from ads.models import Ad, AdImage
from ads.uploads import safe_name
from classifier.models import TrainingImage
from tests.support.hostile import BY_ID, BYTE_CAP, CORPUS, Case, jpeg
from tests.support.images import CLASSES

pytestmark = pytest.mark.django_db

ADS = "/api/v1/ads/"
CLASSIFY = "/api/v1/classify/"
ACCEPTED = [case for case in CORPUS if case.accepted]
REFUSED = [case for case in CORPUS if not case.accepted]
# Left in a stored photo, any of these would mean metadata or a payload got through.
FORBIDDEN_BYTES = (b"PK\x03\x04", b"Exif", b"GPS", b"http://ns.adobe.com/xap", b"<svg", b"<html")


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


@pytest.fixture
def limits(settings):
    """The corpus's byte cap, and upload rate limits out of the way (one account posts
    the whole corpus); the counters are cleared, since the cache outlives a test."""
    settings.ADS_MAX_PHOTO_BYTES = BYTE_CAP
    settings.ADS_MAX_PHOTOS = 10
    settings.ADS_UPLOAD_USER_RATE = settings.ADS_UPLOAD_ADDRESS_RATE = "100000/hour"
    settings.CLASSIFIER_QUICK_CHECK_USER_RATE = "100000/hour"
    settings.CLASSIFIER_QUICK_CHECK_ADDRESS_RATE = "100000/hour"
    cache.clear()
    yield settings
    cache.clear()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def multipart(fields: dict[str, str], files: list[tuple[str, Case]]) -> tuple[bytes, str]:
    """A multipart body sending each file's name and declared type exactly as given."""
    boundary = f"hostile-{secrets.token_hex(12)}"
    body = b""
    for key, value in fields.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    for field, case in files:
        filename = case.name.replace('"', "%22")
        body += (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                f"Content-Type: {case.content_type}\r\n\r\n"
            ).encode()
            + case.data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_ad(user, *photos: Case):
    fields = {"title": "iPhone 12", "price": "250.00", "category": "phone"}
    body, content_type = multipart(fields, [("photos", photo) for photo in photos])
    return client_for(user).post(ADS, body, content_type=content_type)


def quick_check(user, case: Case):
    body, content_type = multipart({"category": "phone"}, [("image", case)])
    return client_for(user).post(CLASSIFY, body, content_type=content_type)


def good(seed: int) -> Case:
    return Case(f"good-{seed}", f"good-{seed}.jpg", jpeg(1000 + seed), size=(64, 48))


def stored_files(media) -> set[str]:
    return {path.relative_to(media).as_posix() for path in media.rglob("*") if path.is_file()}


def read_stored(name: str) -> bytes:
    with default_storage.open(name) as handle:
        return handle.read()


def assert_clean_jpeg(data: bytes, case: Case) -> None:
    """``data`` is the stored form of ``case``: a plain RGB JPEG of its pixels, no more."""
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert image.size == case.size
    assert not image.getexif()
    assert not {"exif", "icc_profile", "xmp", "mp"} & set(image.info)
    for marker in FORBIDDEN_BYTES:
        assert marker not in data, marker
    for point, colour in case.probes:
        assert image.getpixel(point) == pytest.approx(colour, abs=16), point


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/cron.d/x.jpg", "x.jpg"),
        ("C:\\Users\\sam\\cat.png", "cat.png"),
        ("evil\x00.php.jpg", "evil.php.jpg"),
        ("photo\u202egpj.exe", "photogpj.exe"),
        ("\x1b[2J\x1b[31mred.jpg", "[2J[31mred.jpg"),
        ("a" * 296 + ".jpg", "a" * 251 + ".jpg"),
        ("b" * 300, "b" * 255),
    ],
)
def test_file_names_are_sanitized_keeping_the_extension(name, shown):
    assert safe_name(name) == shown


# --- POST /api/v1/ads/ ----------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=ids(CORPUS))
def test_an_ad_photo_is_stored_clean_or_refused_by_name(case, seller, media, limits):
    response = post_ad(seller, case)

    if case.refused:
        assert response.status_code == 400, response.data
        [message] = response.data["photos"]
        assert message.startswith(f"photo 1 ({safe_name(case.name)!r}): "), message
        assert case.refused in message
        assert not Ad.objects.exists() and not stored_files(media)
        return
    assert response.status_code == 201, response.data
    image = AdImage.objects.get(ad_id=response.data["id"])
    assert image.original_name == safe_name(case.name)
    assert stored_files(media) == {image.file.name}
    stored = read_stored(image.file.name)
    assert_clean_jpeg(stored, case)
    assert (image.width, image.height) == case.size
    served = client_for(seller).get(response.data["photos"][0]["url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert b"".join(served.streaming_content) == stored


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_one_hostile_photo_refuses_the_whole_ad(case, seller, media, limits):
    response = post_ad(seller, good(1), case, good(2))

    assert response.status_code == 400
    [message] = response.data["photos"]
    assert message.startswith(f"photo 2 ({safe_name(case.name)!r}): ") and case.refused in message
    assert not Ad.objects.exists() and not AdImage.objects.exists()
    assert not stored_files(media)


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_a_hostile_photo_in_an_edit_keeps_the_ads_photos(case, seller, media, limits):
    ad_id = post_ad(seller, good(1)).data["id"]
    before = stored_files(media)
    body, content_type = multipart({}, [("photos", good(2)), ("photos", case)])

    response = client_for(seller).patch(f"{ADS}{ad_id}/", body, content_type=content_type)

    assert response.status_code == 400
    [message] = response.data["photos"]
    assert message.startswith(f"photo 2 ({safe_name(case.name)!r}): ") and case.refused in message
    assert list(AdImage.objects.values_list("original_name", flat=True)) == ["good-1.jpg"]
    assert stored_files(media) == before


def test_an_eleventh_photo_refuses_the_ad(seller, media, limits):
    response = post_ad(seller, *[good(seed) for seed in range(11)])

    assert response.status_code == 400
    assert response.data["photos"] == ["an ad needs 1 to 10 photos; 11 were sent"]
    assert not Ad.objects.exists() and not stored_files(media)
    assert post_ad(seller, *[good(seed) for seed in range(10)]).status_code == 201


def test_the_whole_corpus_leaves_exactly_the_accepted_ads_and_no_orphan_files(
    seller, media, limits
):
    statuses = {}
    for number, case in enumerate(CORPUS):
        statuses[case.id] = (
            post_ad(seller, case).status_code,
            post_ad(seller, good(number), case).status_code,
        )

    assert statuses == {case.id: (201, 201) if case.accepted else (400, 400) for case in CORPUS}
    assert Ad.objects.count() == 2 * len(ACCEPTED)
    assert AdImage.objects.count() == 3 * len(ACCEPTED)
    assert not Ad.objects.filter(images__isnull=True).exists()
    assert stored_files(media) == set(AdImage.objects.values_list("file", flat=True))


# --- POST /api/v1/classify/ -----------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=ids(CORPUS))
def test_the_quick_check_answers_or_refuses_by_name_and_stores_nothing(
    case, seller, tiny_version, media, limits
):
    before = stored_files(media)  # the model's artifacts

    response = quick_check(seller, case)

    body = response.json()
    if case.refused:
        assert response.status_code == 400, body
        [message] = body["image"]
        assert message.startswith(f"photo 1 ({safe_name(case.name)!r}): "), message
        assert case.refused in message
    else:
        assert response.status_code == 200, body
        assert body["class"] in CLASSES and 0 <= body["confidence"] <= 1
        assert body["model_version"] == tiny_version.number
    assert stored_files(media) == before
    assert not AdImage.objects.exists() and not TrainingImage.objects.exists()


# --- manage.py import_images ----------------------------------------------------------


def file_name(case: Case) -> str:
    """The case's name as a file in a folder: unique per case; names no file system
    allows (``/``, NUL, over 255 bytes) become their sanitized form."""
    name = f"{case.id}-{case.name}"
    if "/" in name or "\x00" in name or len(name.encode()) > 255:
        name = f"{case.id}-{safe_name(case.name)[-40:]}"
    return name


def import_folder(directory) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_images", str(directory), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def assert_no_orphans(media) -> None:
    assert stored_files(media) == set(TrainingImage.objects.values_list("file", flat=True))


@pytest.mark.parametrize("case", CORPUS, ids=ids(CORPUS))
def test_import_images_stores_clean_photos_and_lists_refused_ones(case, tmp_path, media, limits):
    folder = tmp_path / "data" / "phone"
    folder.mkdir(parents=True)
    (folder / "good.jpg").write_bytes(good(1).data)
    (folder / file_name(case)).write_bytes(case.data)

    out, err = import_folder(tmp_path / "data")

    shown = safe_name(file_name(case))
    if case.refused:
        assert f"skipped {folder / shown}: " in err and case.refused in err, err
        assert "Imported 1 images; 0 duplicates and 1 unreadable files skipped." in out
        assert "\x1b" not in err and "\u202e" not in err
        assert list(TrainingImage.objects.values_list("original_name", flat=True)) == ["good.jpg"]
    else:
        assert "Imported 2 images; 0 duplicates and 0 unreadable files skipped." in out, err
        image = TrainingImage.objects.get(original_name=shown)
        assert image.file.name.endswith(f"{image.sha256}.jpg")
        assert (image.width, image.height) == case.size
        assert_clean_jpeg(read_stored(image.file.name), case)
    assert_no_orphans(media)


def test_import_images_takes_the_whole_corpus_at_once(tmp_path, media, limits):
    folder = tmp_path / "data" / "phone"
    folder.mkdir(parents=True)
    for case in CORPUS:
        (folder / file_name(case)).write_bytes(case.data)

    out, err = import_folder(tmp_path / "data")

    assert f"Imported {len(ACCEPTED)} images; 0 duplicates and {len(REFUSED)} unreadable" in out, (
        err
    )
    for case in REFUSED:
        assert f"skipped {folder / safe_name(file_name(case))}: " in err
    assert sorted(TrainingImage.objects.values_list("original_name", flat=True)) == sorted(
        safe_name(file_name(case)) for case in ACCEPTED
    )
    assert_no_orphans(media)
    # Again: every file is now a duplicate (by its bytes as they were), nothing is added.
    out, _ = import_folder(tmp_path / "data")
    assert f"Imported 0 images; {len(ACCEPTED)} duplicates" in out
    assert_no_orphans(media)


def test_an_exported_training_set_imports_again_as_duplicates(tmp_path, media, limits):
    folder = tmp_path / "data" / "phone"
    folder.mkdir(parents=True)
    for case in ACCEPTED[:5]:
        (folder / file_name(case)).write_bytes(case.data)
    import_folder(tmp_path / "data")

    call_command("export_dataset", str(tmp_path / "export"), stdout=StringIO())
    out, _ = import_folder(tmp_path / "export")

    # The stored (re-encoded) files are recognised, though re-encoding them would differ.
    assert "Imported 0 images; 5 duplicates" in out
    assert TrainingImage.objects.count() == 5


def test_import_images_keeps_a_photo_already_in_stored_form(tmp_path, seller, media, limits):
    """A dataset made of earlier ads' photos is imported byte for byte: the same sha256,
    so a moderator's later label on the same photo finds the row."""
    response = post_ad(seller, BY_ID["exif-gps"])  # re-encoded on the way in
    ad_photo = AdImage.objects.get(ad_id=response.data["id"])
    folder = tmp_path / "data" / "phone"
    folder.mkdir(parents=True)
    (folder / "from-an-ad.jpg").write_bytes(read_stored(ad_photo.file.name))

    import_folder(tmp_path / "data")

    image = TrainingImage.objects.get()
    assert image.sha256 == ad_photo.sha256
    assert read_stored(image.file.name) == read_stored(ad_photo.file.name)


# --- The admin's "Add example photos" (several files, or a zip) -----------------------------


def admin_client():
    from django.test import Client

    call_command("create_account", "ada", role="admin", password="a-long-pass-phrase")
    client = Client()
    client.force_login(get_user_model().objects.get(username="ada"))
    return client


def add_example_photos(client, files: list[tuple[str, Case]]):
    from django.contrib.messages import get_messages
    from django.urls import reverse

    from ads.models import Category

    category = Category.objects.get(slug="phone")
    body, content_type = multipart({"category": str(category.pk)}, files)
    url = reverse("admin:classifier_trainingimage_add_photos")
    response = client.post(url, body, content_type=content_type)
    assert response.status_code == 302, response.content[:500]
    return " | ".join(str(m) for m in get_messages(response.wsgi_request))


def test_admin_example_photos_take_the_whole_corpus_as_files(media, limits):
    said = add_example_photos(admin_client(), [("photos", case) for case in CORPUS])

    assert f"{len(ACCEPTED)} example photos added to Phones." in said, said
    assert f"Refused {len(REFUSED)}: " in said
    for case in REFUSED[:20]:  # the message names the first 20
        assert f"{safe_name(case.name) or '(no name)'}: " in said and case.refused in said
    assert "\x1b" not in said and "\u202e" not in said
    assert TrainingImage.objects.count() == len(ACCEPTED)
    for image in TrainingImage.objects.all():
        case = next(c for c in ACCEPTED if safe_name(c.name) == image.original_name)
        assert_clean_jpeg(read_stored(image.file.name), case)
    assert_no_orphans(media)


def test_admin_example_photos_take_the_whole_corpus_in_a_zip(media, limits):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for case in CORPUS:
            archive.writestr(file_name(case), case.data)
    zipped = Case("corpus", "corpus.zip", buffer.getvalue(), content_type="application/zip")

    said = add_example_photos(admin_client(), [("photos", zipped)])

    assert f"{len(ACCEPTED)} example photos added to Phones." in said, said
    assert f"Refused {len(REFUSED)}: corpus.zip/" in said
    assert sorted(TrainingImage.objects.values_list("original_name", flat=True)) == sorted(
        safe_name(file_name(case)) for case in ACCEPTED
    )
    assert_no_orphans(media)
    # Again: every photo is a duplicate of one stored, and said so.
    said = add_example_photos(admin_client_again(), [("photos", zipped)])
    assert "0 example photos added" in said and f"Skipped {len(ACCEPTED)} duplicates" in said
    assert TrainingImage.objects.count() == len(ACCEPTED)


def admin_client_again():
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="ada"))
    return client
