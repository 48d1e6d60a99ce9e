"""Backup and restore (``manage.py backup``, ``manage.py restore``): realistic data made
through the project's own services is backed up from the database in use (PostgreSQL in
CI), restored by a process of its own, as on a new machine, into a fresh database and an
empty storage folder, and read back there: every row and every file as it was."""

from __future__ import annotations

import json
import os
import tarfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from psycopg import sql

from ads import services as ad_services
from ads.models import Ad, AdImage
from avito_mod.backup import databases, services
from classifier.models import TrainingImage
from classifier.services.datasets import training_features
from moderation import pipeline
from moderation import services as moderation
from tests.support.contents import READ_CONTENTS, contents
from tests.support.factories import make_ad, make_moderator, store_shipped_files
from tests.support.images import write_dataset
from tests.support.live import manage
from tests.support.tiny import TINY_SIZE

# Committed rows: pg_dump and the restoring process see only what is committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def new_machine(data_dir: Path, database_url: str | None) -> dict:
    """Another machine's environment: the production settings, a data folder of its own
    (its storage is ``data_dir/media``) and only the database given (else SQLite there)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AVITO_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    environment |= {"AVITO_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return environment | ({"DATABASE_URL": database_url} if database_url else {})


@dataclass
class FreshDatabase:
    name: str
    url: str

    def tables(self) -> list[str]:
        with psycopg.connect(self.url) as database:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            return [row[0] for row in database.execute(query)]


def _server() -> psycopg.Connection:
    """The test database's PostgreSQL server, outside any database's transaction."""
    settings = connection.settings_dict
    options = {"host": settings["HOST"], "port": settings["PORT"], "user": settings["USER"]}
    options |= {"password": settings["PASSWORD"]}
    present = {key: value for key, value in options.items() if value}
    return psycopg.connect(dbname="postgres", autocommit=True, **present)


@pytest.fixture
def fresh_database():
    """An empty PostgreSQL database of this test's own, as ``createdb`` makes it; dropped
    afterwards."""
    if connection.vendor != "postgresql":
        if os.environ.get("AVITO_REQUIRE_POSTGRES"):
            pytest.fail("AVITO_REQUIRE_POSTGRES is set but the tests run on " + connection.vendor)
        pytest.skip("restoring into a fresh PostgreSQL database needs DATABASE_URL")
    name = f"avito_restore_{uuid.uuid4().hex[:12]}"
    with _server() as server:
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = connection.settings_dict
    user = quote(settings["USER"], safe="")
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings["PASSWORD"] else ""
    host = f"{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
    try:
        yield FreshDatabase(name, f"postgres://{user}{password}@{host}/{name}")
    finally:
        with _server() as server:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            server.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def installed(media):
    """This test's storage (``media``) holding what ``migrate`` stored in the test run's:
    the shipped models' files, which the database names."""
    store_shipped_files()
    return media


@pytest.fixture
def no_broker(monkeypatch):
    """Classification requests are recorded, not sent: the broker's side is not tested here."""
    sent: list[int] = []
    monkeypatch.setattr(ad_services, "request_classification", sent.append)
    return sent


@pytest.fixture
def marketplace(installed, no_broker, tiny_version, seller, other_seller, tmp_path):
    """Ads in every state with their photos and predictions by the active (tiny) model,
    moderators' decisions and the labels they gave, imported labels with their kept
    backbone features: all through the project's own services."""
    moderator = make_moderator()
    published = make_ad(seller, photos=2, seed=9100)
    mismatched = make_ad(seller, kind="laptop", seed=9200, title="ThinkPad")
    not_product = make_ad(other_seller, seed=9300, title="Empty box")
    in_review = make_ad(other_seller, kind="laptop", seed=9400, title="MacBook")
    make_ad(seller, seed=9500, title="Still pending")
    for ad in (published, mismatched, in_review):
        pipeline.classify_ad(ad.pk)
    not_product.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
    moderation.decide(mismatched.pk, moderator, "recategorize")
    moderation.decide(not_product.pk, moderator, "reject", reason=Ad.RejectionReason.NOT_PRODUCT)
    dataset = write_dataset(tmp_path / "dataset", per_class=3, start=9600)
    call_command("import_images", str(dataset), stdout=StringIO())
    training_features(list(TrainingImage.objects.all()), TINY_SIZE)


def test_a_backup_restores_into_a_fresh_database_and_storage_intact(
    fresh_database, marketplace, tmp_path
):
    archive, machine = tmp_path / "avito.tar", tmp_path / "new-machine"
    before = contents()
    started = time.monotonic()
    call_command("backup", str(archive), stdout=(report := StringIO()))
    backed_up = time.monotonic() - started
    environment = new_machine(machine, fresh_database.url)
    started = time.monotonic()
    restored = manage(environment, "restore", str(archive))
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    assert "every row count and file's SHA-256 matches its manifest" in restored.stdout
    print(f"backup, in this process: {backed_up:.1f} s. {report.getvalue()}")
    print(f"restore, a process of its own: {restore_seconds:.1f} s. {restored.stdout}")

    read = manage(environment, *READ_CONTENTS)
    assert read.returncode == 0, read.stderr
    after = json.loads(read.stdout)
    assert after == before  # every row of every model, every stored file's SHA-256

    rows = after["rows"]
    assert {ad["title"]: ad["status"] for ad in rows["ads.Ad"]} == {
        "iPhone 12": "published",
        "ThinkPad": "published",  # recategorized by the moderator
        "Empty box": "rejected",
        "MacBook": "needs_review",
        "Still pending": "pending",
    }
    photos = AdImage.objects.all()
    assert len(photos) == len(rows["ads.AdImage"]) == 6
    for photo in photos:
        with photo.file.open("rb") as stored:
            assert (machine / "media" / photo.file.name).read_bytes() == stored.read()
    assert len(rows["classifier.Prediction"]) == 4  # the classified ads' photos
    decisions = rows["moderation.ModerationDecision"]
    assert sorted(decision["action"] for decision in decisions) == ["recategorize", "reject"]
    labels = rows["classifier.TrainingImage"]
    assert sorted((label["source"], label["not_product"]) for label in labels) == [
        *[("import", False)] * 6,
        ("moderator", False),
        ("moderator", True),
    ]
    assert len(rows["classifier.ImageFeatures"]) == 8
    versions = [
        (version["number"], version["status"]) for version in rows["classifier.ModelVersion"]
    ]
    assert versions == [(1, "retired"), (2, "active")]  # the shipped v5, the tiny version
    # The restored installation serves: the system check loads the active model's file.
    checked = manage(environment, "check")
    assert checked.returncode == 0, checked.stderr


def test_ads_posted_and_deleted_while_a_backup_runs_leave_it_consistent(
    installed, no_broker, seller, tmp_path, monkeypatch
):
    """Files written a while ago are copied before the snapshot, recent ones it names
    after it: a file deleted meanwhile is still in the archive, and none it names is lost."""
    kept, deleted_before, deleted_after = (
        make_ad(seller, seed=seed, title=title)
        for seed, title in ((1, "Kept"), (2, "Deleted before the dump"), (3, "Deleted after"))
    )
    photo = {ad.title: ad.images.get().file.name for ad in (kept, deleted_before, deleted_after)}
    written_earlier = (timezone.now() - 2 * services.SETTLED).timestamp()
    for path in installed.rglob("*"):
        os.utime(path, (written_earlier, written_earlier))
    snapshot = databases.snapshot

    @contextmanager
    def sellers_meanwhile(*args):
        ad_services.delete_ad(deleted_before)
        photo["Posted meanwhile"] = make_ad(seller, seed=4).images.get().file.name
        with snapshot(*args) as taken:
            yield taken
        ad_services.delete_ad(deleted_after)
        photo["Posted after"] = make_ad(seller, seed=5).images.get().file.name

    monkeypatch.setattr(databases, "snapshot", sellers_meanwhile)
    archive = tmp_path / "avito.tar"
    call_command("backup", str(archive), stdout=StringIO())
    manifest = services.verify(archive).manifest
    files = {name: entry["referenced"] for name, entry in manifest["files"].items()}
    assert [files.get(photo[title]) for title in photo] == [True, False, True, True, None]
    assert manifest["tables"]["ads_ad"] == 3  # kept, deleted after the dump, posted meanwhile


ZOE = ("--role", "seller", "--password", "a-long-pass-phrase")


def test_a_forced_restore_replaces_the_database_and_the_files_it_holds(
    installed, no_broker, seller, fresh_database, tmp_path
):
    make_ad(seller, photos=2)
    before = contents()
    archive, machine = tmp_path / "avito.tar", tmp_path / "new-machine"
    call_command("backup", str(archive), stdout=StringIO())
    environment = new_machine(machine, fresh_database.url)
    assert manage(environment, "restore", str(archive)).returncode == 0
    # Life goes on there: a new account, a photo overwritten, a file of its own.
    assert manage(environment, "create_account", "zoe", *ZOE).returncode == 0
    photo = AdImage.objects.first().file.name
    (machine / "media" / photo).write_bytes(b"not the photo")
    (machine / "media" / "extra.txt").write_text("kept")

    forced = manage(environment, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    after = json.loads(manage(environment, *READ_CONTENTS).stdout)
    assert after["rows"] == before["rows"]  # zoe is gone: the database is the backup's
    assert after["files"] == before["files"] | {"extra.txt": after["files"]["extra.txt"]}


def test_a_sqlite_installation_is_backed_up_and_restored_too(tmp_path):
    old = new_machine(tmp_path / "old", None)
    assert manage(old, "migrate", "-v0").returncode == 0
    seller_posts = (
        "from tests.support.factories import make_ad, make_user; "
        "make_ad(make_user('sam'), photos=2)"
    )
    made = manage(old, "shell", "-c", seller_posts)
    assert made.returncode == 0, made.stderr
    archive = tmp_path / "sqlite.tar"
    backed_up = manage(old, "backup", str(archive))
    assert backed_up.returncode == 0, backed_up.stderr
    assert "Backed up the SQLite database" in backed_up.stdout

    new = new_machine(tmp_path / "new", None)
    restored = manage(new, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    before, after = (json.loads(manage(env, *READ_CONTENTS).stdout) for env in (old, new))
    assert after == before and len(after["rows"]["ads.AdImage"]) == 2
    if connection.vendor == "postgresql":
        other_engine = "holds a SQLite database and this installation uses PostgreSQL"
        with pytest.raises(CommandError, match=other_engine):
            call_command("restore", str(archive))


def test_restore_refuses_a_database_that_is_not_empty(installed, no_broker, seller, tmp_path):
    archive = tmp_path / "avito.tar"
    call_command("backup", str(archive), stdout=StringIO())
    later = make_ad(seller)
    refused = r"refusing to restore over existing data: the database \S+ has \d+ tables and"
    with pytest.raises(CommandError, match=refused + " the storage .* holds files"):
        call_command("restore", str(archive))
    assert Ad.objects.filter(pk=later.pk).exists()  # nothing was touched


def test_restore_refuses_a_storage_that_is_not_empty(installed, fresh_database, tmp_path):
    archive, machine = tmp_path / "avito.tar", tmp_path / "new-machine"
    call_command("backup", str(archive), stdout=StringIO())
    (machine / "media" / "ads").mkdir(parents=True)
    (machine / "media" / "ads" / "left-over.jpg").write_bytes(b"...")
    restored = manage(new_machine(machine, fresh_database.url), "restore", str(archive))
    assert restored.returncode == 1
    assert "holds files (ads/left-over.jpg, …)" in restored.stderr
    assert "or pass --force to replace them" in restored.stderr
    assert fresh_database.tables() == []


def test_a_damaged_archive_is_refused_before_anything_is_restored(
    installed, no_broker, seller, fresh_database, tmp_path
):
    photo = make_ad(seller).images.get().file.name
    archive, machine = tmp_path / "avito.tar", tmp_path / "new-machine"
    call_command("backup", str(archive), stdout=StringIO())
    call_command("restore", str(archive), verify_only=True, stdout=(report := StringIO()))
    assert "is intact: every member's SHA-256 matches its manifest" in report.getvalue()

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CommandError, match="truncated.tar .*truncated"):
        call_command("restore", str(truncated), verify_only=True)
    flip_a_byte(archive, f"media/{photo}")
    with pytest.raises(CommandError, match=f"media/{photo}: damaged"):
        call_command("restore", str(archive), verify_only=True)
    restored = manage(new_machine(machine, fresh_database.url), "restore", str(archive))
    assert restored.returncode == 1
    assert "is damaged; nothing was restored" in restored.stderr
    assert f"media/{photo}: damaged (its SHA-256 does not match)" in restored.stderr
    assert fresh_database.tables() == []
    assert not (machine / "media").exists() or not any((machine / "media").iterdir())


def flip_a_byte(archive: Path, member: str) -> None:
    with tarfile.open(archive) as tar:
        offset = tar.getmember(member).offset_data + 100
    with archive.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_backup_missing_a_file_the_database_names_fails_and_says_which(
    installed, no_broker, seller, tmp_path
):
    photo = make_ad(seller).images.get().file.name
    default_storage.delete(photo)
    archive = tmp_path / "avito.tar"
    missing = "refers to 1 file missing from storage; no backup was written:\n  "
    with pytest.raises(CommandError, match=rf"{missing}{photo} \(named in ads_adimage.file\)"):
        call_command("backup", str(archive))
    assert list(tmp_path.iterdir()) == [installed]  # no archive, no partial file
