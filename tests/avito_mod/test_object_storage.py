"""Object storage (AVITO_STORAGE_URL=s3://bucket[/prefix]): the settings refuse what they
cannot use, and on a real S3 API server (moto, tests/support/s3.py) photos stay private and are
streamed by the permission-checked views, a model file replaced in the bucket is noticed
and refused, and a backup made from one bucket prefix restores into another.

Many more tests run against the S3 server under ``AVITO_TEST_STORAGE=s3`` (.ci/run), and
tests/live/test_no_shared_disk.py runs the whole flow with processes that share no disk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ads.models import Ad, AdImage
from avito_mod.storage import LOCAL_BACKEND, S3_BACKEND, default_storage_config
from classifier.services import classify_images
from classifier.services.artifacts import ArtifactMismatch, stamp
from tests.support.contents import READ_CONTENTS
from tests.support.factories import ad_form, make_user
from tests.support.images import jpeg_bytes
from tests.support.live import manage
from tests.support.s3 import S3Place

ROOT = Path(__file__).resolve().parents[2]
ADS = "/api/v1/ads/"


# --- Settings ---------------------------------------------------------------------------


def test_the_local_folder_is_the_default():
    assert default_storage_config("") == {"BACKEND": LOCAL_BACKEND}


def test_an_s3_url_gives_the_bucket_prefix_and_endpoint():
    config = default_storage_config(
        "s3://avito-media/prod/eu/", endpoint_url="http://127.0.0.1:9000", region="eu-west-1"
    )
    assert config["BACKEND"] == S3_BACKEND
    assert config["OPTIONS"] == {
        "bucket_name": "avito-media",
        "location": "prod/eu",
        "endpoint_url": "http://127.0.0.1:9000",
        "region_name": "eu-west-1",
    }


@pytest.mark.parametrize(
    ("url", "endpoint", "message"),
    [
        ("gs://avito-media", "", "must look like s3://bucket"),
        ("/srv/media", "", "must look like s3://bucket"),
        ("s3://", "", "names no valid bucket"),
        ("s3:///prefix", "", "names no valid bucket"),
        ("s3://Avito_Media", "", "names no valid bucket"),
        ("s3://key:secret@avito-media", "", "credentials come from AWS_ACCESS_KEY_ID"),
        ("s3://avito-media?region=eu", "", "only s3://bucket[/prefix]"),
        ("s3://avito-media", "127.0.0.1:9000", "must be an http(s)://host[:port] URL"),
        ("", "http://127.0.0.1:9000", "AVITO_STORAGE_URL is not"),
    ],
)
def test_refuses_a_storage_setting_it_cannot_use(url, endpoint, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        default_storage_config(url, endpoint_url=endpoint)


def test_start_up_stops_on_a_bad_storage_url():
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AVITO_STORAGE_URL": "ftp://files.example/avito"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 1
    assert "AVITO_STORAGE_URL must look like s3://bucket[/prefix], not 'ftp:" in checked.stderr


# --- On the S3 API server -------------------------------------------------------------


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_photos_are_private_objects_streamed_only_to_those_who_may_see_them(media, s3_storage):
    seller, other = make_user("seller"), make_user("other_seller")
    staff = make_user("staff", staff=True)
    posted = _client_for(seller).post(ADS, ad_form(), format="multipart")
    assert posted.status_code == 201, posted.content
    ad = posted.json()
    keys = s3_storage.stored_keys()
    assert len(keys) == 2 and all(key.startswith("ads/") for key in keys)  # under the prefix
    assert not media.exists()  # nothing on the local disk

    client = s3_storage.server.client()
    first = AdImage.objects.get(pk=ad["photos"][0]["id"])
    key = f"{s3_storage.prefix}/{first.file.name}"
    grantees = [
        grant["Grantee"] for grant in client.get_object_acl(Bucket="avito-tests", Key=key)["Grants"]
    ]
    assert [grantee["Type"] for grantee in grantees] == ["CanonicalUser"]  # the owner only
    stored = client.get_object(Bucket="avito-tests", Key=key)["Body"].read()

    photo = f"{ADS}{ad['id']}/photos/{ad['photos'][0]['id']}/"
    for user in (seller, staff):
        response = _client_for(user).get(photo)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == stored
    assert _client_for(other).get(photo).status_code == 404
    assert APIClient().get(photo).status_code == 401
    # The API hands out the view's address, never the bucket's.
    assert "X-Amz" not in json.dumps(ad) and s3_storage.server.endpoint_url not in json.dumps(ad)


@pytest.mark.django_db
def test_a_missing_photo_object_is_a_404(s3_storage):
    seller = make_user("seller")
    ad = _client_for(seller).post(ADS, ad_form(), format="multipart").json()
    name = AdImage.objects.get(pk=ad["photos"][0]["id"]).file.name
    client = s3_storage.server.client()
    client.delete_object(Bucket="avito-tests", Key=f"{s3_storage.prefix}/{name}")
    response = _client_for(seller).get(f"{ADS}{ad['id']}/photos/{ad['photos'][0]['id']}/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_an_upload_while_the_bucket_is_unreachable_is_a_503_and_leaves_no_ad(settings, media):
    from bench.pipeline import free_port
    from tests.support.s3 import MotoServer

    nowhere = S3Place(MotoServer(media.parent / "unused.log"), "avito-tests", "down")
    nowhere.server.endpoint_url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    settings.STORAGES = settings.STORAGES | {"default": nowhere.storage_config()}
    started = time.monotonic()
    response = _client_for(make_user("seller")).post(ADS, ad_form(), format="multipart")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {
        "detail": "The file storage is unavailable for a moment; try again shortly."
    }
    assert time.monotonic() - started < 20  # boto3's retries, bounded
    assert not Ad.objects.exists()


@pytest.mark.django_db
def test_a_model_file_replaced_in_the_bucket_is_refused_then_served_again_when_put_back(
    s3_storage, settings, tiny_version
):
    settings.CLASSIFIER_ARTIFACT_CHECK_SECONDS = 0  # look at the object before every use
    photo = jpeg_bytes("phone", 7)
    assert classify_images([photo], tiny_version)[0].category == "phone"
    file = tiny_version.serving_artifact
    size, modified, etag = stamp(tiny_version, "serving_artifact")
    assert size == file.size and etag  # S3 has no change time: the ETag stands for it

    with file.open("rb") as handle:
        original = handle.read()
    # Same size, within the same second: only the ETag tells the two apart.
    file.storage.delete(file.name)
    assert file.storage.save(file.name, ContentFile(original[::-1])) == file.name
    assert stamp(tiny_version, "serving_artifact")[::2] == (size, _etag_of(s3_storage, file.name))
    assert stamp(tiny_version, "serving_artifact")[2] != etag
    with pytest.raises(ArtifactMismatch, match="not the file the registry recorded"):
        classify_images([photo], tiny_version)

    file.storage.delete(file.name)
    file.storage.save(file.name, ContentFile(original))
    assert classify_images([photo], tiny_version)[0].category == "phone"


def test_a_name_taken_in_the_bucket_is_never_overwritten(s3_storage):
    first = default_storage.save("models/v9/model.tflite", ContentFile(b"first"))
    second = default_storage.save("models/v9/model.tflite", ContentFile(b"second"))
    assert first == "models/v9/model.tflite"
    assert second.startswith("models/v9/model_") and second.endswith(".tflite")
    for name, content in ((first, b"first"), (second, b"second")):
        with default_storage.open(name, "rb") as handle:
            assert handle.read() == content
    assert s3_storage.stored_keys() == sorted([first, second])


def _etag_of(place: S3Place, name: str) -> str:
    head = place.server.client().head_object(Bucket=place.bucket, Key=f"{place.prefix}/{name}")
    return head["ETag"]


# --- Backup and restore between two buckets' prefixes ---------------------------------


def _machine(data_dir: Path, place: S3Place) -> dict:
    """Another machine's environment: SQLite in a data folder of its own, files in ``place``."""
    import os

    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AVITO_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "AWS_"))
    }
    return (
        environment | place.env() | {"AVITO_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    )


def test_a_backup_of_a_bucket_restores_into_another_bucket_prefix(s3_server, tmp_path):
    old_place, new_place = (
        S3Place(s3_server, "avito-tests", f"backup-{name}-{tmp_path.name}") for name in "ab"
    )
    old = _machine(tmp_path / "old", old_place)
    assert manage(old, "migrate", "-v0").returncode == 0
    posts = (
        "from tests.support.factories import make_ad, make_user; "
        "make_ad(make_user('sam'), photos=2)"
    )
    made = manage(old, "shell", "-c", posts)
    assert made.returncode == 0, made.stderr
    archive = tmp_path / "s3.tar"
    backed_up = manage(old, "backup", str(archive))
    assert backed_up.returncode == 0, backed_up.stderr

    new = _machine(tmp_path / "new", new_place)
    restored = manage(new, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    before, after = (json.loads(manage(env, *READ_CONTENTS).stdout) for env in (old, new))
    assert after == before and len(after["rows"]["ads.AdImage"]) == 2
    assert sorted(after["files"]) == new_place.stored_keys() == old_place.stored_keys()
    assert not (tmp_path / "new" / "media").exists()  # nothing on the new machine's disk

    again = manage(_machine(tmp_path / "third", new_place), "restore", str(archive))
    assert again.returncode == 1
    assert f"the storage {new_place.url} holds files (" in again.stderr


# --- Moving an installation's files to a bucket ----------------------------------------


def test_copy_media_moves_a_local_folder_into_the_bucket_under_the_same_names(s3_storage, tmp_path):
    old = tmp_path / "old-media"
    (old / "ads" / "ab").mkdir(parents=True)
    (old / "ads" / "ab" / "abc.jpg").write_bytes(b"photo")
    (old / "models" / "v3").mkdir(parents=True)
    (old / "models" / "v3" / "model.tflite").write_bytes(b"model" * 1000)

    call_command("copy_media", str(old), stdout=(out := StringIO()))
    assert f"Copied 2 files (0.0 MB) from {old} to {s3_storage.url}; 0 were" in out.getvalue()
    assert s3_storage.stored_keys() == ["ads/ab/abc.jpg", "models/v3/model.tflite"]
    with default_storage.open("models/v3/model.tflite", "rb") as handle:
        assert handle.read() == b"model" * 1000

    (old / "ads" / "ab" / "new.jpg").write_bytes(b"written meanwhile")
    call_command("copy_media", str(old), stdout=(again := StringIO()))
    assert "Copied 1 files" in again.getvalue() and "2 were there already" in again.getvalue()

    (old / "ads" / "ab" / "abc.jpg").write_bytes(b"another photo")
    with pytest.raises(CommandError, match="ads/ab/abc.jpg is in s3://.* with other content"):
        call_command("copy_media", str(old))
    with default_storage.open("ads/ab/abc.jpg", "rb") as handle:
        assert handle.read() == b"photo"


def test_copy_media_refuses_a_missing_folder_or_the_storage_itself(media, tmp_path):
    with pytest.raises(CommandError, match="no such folder"):
        call_command("copy_media", str(tmp_path / "nowhere"))
    if hasattr(default_storage, "bucket_name"):
        pytest.skip("the storage is a bucket here (AVITO_TEST_STORAGE=s3)")
    media.mkdir(parents=True)
    with pytest.raises(CommandError, match="is the storage already: set AVITO_STORAGE_URL"):
        call_command("copy_media", str(media))
