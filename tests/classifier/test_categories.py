"""Beyond two categories: an admin adds a category and its example photos from the admin
(several files, or zips, in one form), sees which categories have too few photos to train
on (training refuses until each active one has enough), trains a version over every
active category, and deactivates a category (what happens to its ads, its photos, and the
versions that know it)."""

from __future__ import annotations

import io
import re
import zipfile
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.urls import reverse

from ads.models import Ad, Category
from classifier import services
from classifier.models import ModelVersion, TrainingImage
from classifier.services import retraining
from moderation import pipeline
from moderation import services as moderation
from moderation.policy import PhotoVerdict, decide
from tests.support.factories import PASSWORD, make_ad, make_user, upload
from tests.support.images import KINDS, drawn_photo, encode, jpeg_bytes, write_dataset
from tests.support.storage import stored_files
from tests.support.tiny import TINY_SIZE, tiny_config

pytestmark = pytest.mark.django_db
ADD_PHOTOS = "admin:classifier_trainingimage_add_photos"
REASON = Ad.ReviewReason


def account(role: str):
    call_command("create_account", role, role=role, password=PASSWORD, stdout=StringIO())
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=role)


@pytest.fixture
def admin_client(client, db):
    client.force_login(account("admin"))
    return client


@pytest.fixture
def camera(db):
    return Category.objects.create(slug="camera", name="Cameras")


@pytest.fixture
def exact_counts(settings):
    """No photo held out for evaluation: every photo added is a training photo."""
    settings.CLASSIFIER_EVALUATION_PERCENT = 0
    return settings


def said(response) -> str:
    return " | ".join(str(message) for message in get_messages(response.wsgi_request))


def photo(name: str, kind: str = "camera", seed: int = 0):
    return upload(name, jpeg_bytes(kind, seed))


def zipped(entries: dict[str, bytes], name: str = "photos.zip", encrypted=()):
    """A zip of ``entries`` (path: bytes); those ``encrypted`` have the flag that says so."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
    data = bytearray(buffer.getvalue())
    for path in encrypted:
        # The name last appears in the central directory, in a record whose flags are at 8.
        start = data.rindex(b"PK\x01\x02", 0, data.rindex(path.encode()))
        data[start + 8] |= 0x1
    return upload(name, bytes(data))


def add_photos(client, category, *files):
    return client.post(reverse(ADD_PHOTOS), {"category": category.pk, "photos": list(files)})


def names(category) -> list[str]:
    return sorted(
        TrainingImage.objects.filter(category=category).values_list("original_name", flat=True)
    )


def assert_no_orphans() -> None:
    assert sorted(stored_files()) == sorted(TrainingImage.objects.values_list("file", flat=True))


# --- Adding a category and its example photos -------------------------------------------


def test_an_admin_adds_a_category_and_goes_on_to_its_example_photos(admin_client):
    response = admin_client.post(
        reverse("admin:ads_category_add"), {"name": "Cameras", "slug": "camera", "active": "on"}
    )
    camera = Category.objects.get(slug="camera")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse(ADD_PHOTOS)}?category={camera.pk}"
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    assert f'<option value="{camera.pk}" selected>Cameras</option>' in page.text
    # The category's page links to its example photos (by URL: ads never imports classifier).
    change = admin_client.get(reverse("admin:ads_category_change", args=[camera.pk]))
    assert f"{reverse(ADD_PHOTOS)}?category={camera.pk}" in change.text


def test_the_training_images_list_links_to_the_form(admin_client):
    page = admin_client.get(reverse("admin:classifier_trainingimage_changelist"))
    assert reverse(ADD_PHOTOS) in page.text and "Add example photos" in page.text


def test_several_photos_at_once_the_bad_ones_named_and_the_good_ones_kept(
    admin_client, camera, media
):
    TrainingImage.objects.all().delete()
    add_photos(admin_client, Category.objects.get(slug="laptop"), photo("laptop.jpg", "laptop", 5))
    response = add_photos(
        admin_client,
        camera,
        photo("a.jpg", seed=1),
        photo("b.jpg", seed=2),
        upload("notes.jpg", b"shopping list: milk"),
        upload("tiny.png", encode(drawn_photo("camera", 3, size=(8, 8)), "PNG")),
        upload("again.jpg", jpeg_bytes("camera", 1)),  # a.jpg once more
        upload("known.jpg", jpeg_bytes("laptop", 5)),  # stored already, as a laptop
        upload("empty.jpg", b""),
    )
    assert response.status_code == 302
    assert response["Location"] == f"{reverse(ADD_PHOTOS)}?category={camera.pk}"
    message = said(response)
    assert "2 example photos added to Cameras." in message
    assert "Refused 3: notes.jpg: " in message and "tiny.png: " in message
    assert "empty.jpg: " in message
    assert "again.jpg (the same photo as another file sent)" in message
    assert "known.jpg (already a training image (Laptops))" in message
    assert names(camera) == ["a.jpg", "b.jpg"]
    image = TrainingImage.objects.get(original_name="a.jpg")
    assert (image.source, image.width, image.height) == ("import", 48, 40)
    assert image.file.name == f"training/{image.sha256[:2]}/{image.sha256}.jpg"
    assert_no_orphans()


def test_a_zip_of_photos_its_bad_entries_named(admin_client, camera, media):
    TrainingImage.objects.all().delete()
    archive = zipped(
        {
            "top.jpg": jpeg_bytes("camera", 1),
            "cameras/in-a-folder.jpg": jpeg_bytes("camera", 2),
            "cameras/deeper/nested.jpg": jpeg_bytes("camera", 3),
            "../escape.jpg": jpeg_bytes("camera", 4),
            "/etc/absolute.jpg": jpeg_bytes("camera", 5),
            "__MACOSX/cameras/._top.jpg": b"\x00\x05\x16\x07 resource fork",
            "readme.txt": b"not a photo",
            "locked.jpg": jpeg_bytes("camera", 6),
            "inner.zip": zipped({"x.jpg": jpeg_bytes("camera", 7)}).read(),
        },
        encrypted={"locked.jpg"},
    )
    response = add_photos(admin_client, camera, archive, photo("loose.jpg", seed=8))
    message = said(response)
    assert "3 example photos added to Cameras." in message, message
    assert names(camera) == ["in-a-folder.jpg", "loose.jpg", "top.jpg"]
    assert "photos.zip/cameras/deeper/nested.jpg: in a folder within a folder" in message
    assert "photos.zip/../escape.jpg: an unsafe path" in message
    assert "photos.zip//etc/absolute.jpg: an unsafe path" in message
    assert "photos.zip/locked.jpg: encrypted" in message
    assert "photos.zip/readme.txt: " in message
    assert "photos.zip/inner.zip: " in message  # a zip in a zip is not a photo
    assert "__MACOSX" not in message  # macOS's metadata: skipped without a word
    assert "Refused 6:" in message
    assert_no_orphans()


def test_photos_of_an_inactive_category_are_kept_and_said_not_trained_on(
    admin_client, camera, media
):
    camera.active = False
    camera.save()
    page = admin_client.get(reverse(ADD_PHOTOS)).text
    assert f'<option value="{camera.pk}">Cameras (inactive)</option>' in page
    message = said(add_photos(admin_client, camera, photo("a.jpg")))
    assert "Cameras is inactive: its photos are kept, and trained on once it is active." in message
    assert names(camera) == ["a.jpg"]


def test_a_file_named_zip_that_is_not_one_is_named(admin_client, camera, media):
    response = add_photos(
        admin_client, camera, upload("holiday.zip", jpeg_bytes("camera", 1)), photo("ok.jpg")
    )
    message = said(response)
    assert "holiday.zip: not a zip file" in message
    assert "1 example photo added to Cameras." in message
    assert names(camera) == ["ok.jpg"]


def test_a_zip_bomb_is_refused_whole_and_the_other_photos_kept(
    admin_client, camera, media, settings
):
    settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES = 2 * 1024 * 1024
    # 64 MiB of zeros in a few dozen KiB: declared by its central directory, never inflated.
    bomb = zipped({f"{n}.jpg": bytes(16 * 1024 * 1024) for n in range(4)}, name="bomb.zip")
    assert bomb.size < 300_000
    response = add_photos(admin_client, camera, bomb, photo("ok.jpg"))
    message = said(response)
    assert re.search(r"bomb\.zip: unpacks to 64\.0 MiB; at most 2\.0 MiB", message), message
    assert names(camera) == ["ok.jpg"]


def test_an_entry_over_the_photo_cap_is_never_inflated_past_it(
    admin_client, camera, media, settings
):
    settings.ADS_MAX_PHOTO_BYTES = 64 * 1024
    archive = zipped({"huge.jpg": bytes(5 * 1024 * 1024), "ok.jpg": jpeg_bytes("camera", 1)})
    message = said(add_photos(admin_client, camera, archive))
    assert "photos.zip/huge.jpg: the file is too large (5.0 MiB; at most 64.0 KiB)" in message
    assert names(camera) == ["ok.jpg"]


def test_a_zip_with_too_many_files_is_refused_whole(admin_client, camera, media, settings):
    settings.CLASSIFIER_PHOTO_UPLOAD_MAX_FILES = 3
    archive = zipped({f"{n}.jpg": jpeg_bytes("camera", n) for n in range(4)}, name="many.zip")
    response = add_photos(admin_client, camera, archive, photo("a.jpg", seed=10))
    message = said(response)
    assert "many.zip: 4 files in the zip; at most 3 photos a submission" in message
    assert names(camera) == ["a.jpg"]


def test_too_much_sent_at_once_adds_nothing(admin_client, camera, media, settings):
    settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES = 1000
    response = add_photos(admin_client, camera, photo("a.jpg", seed=1), photo("b.jpg", seed=2))
    assert "Nothing added: " in said(response) and "at most 0.0 MiB" in said(response)
    assert not TrainingImage.objects.filter(category=camera).exists()


def test_the_form_needs_a_category_and_photos(admin_client, camera, media):
    response = admin_client.post(reverse(ADD_PHOTOS), {"category": camera.pk})
    assert response.status_code == 200 and "This field is required." in response.text
    response = admin_client.post(
        reverse(ADD_PHOTOS), {"category": 999999, "photos": photo("a.jpg")}
    )
    assert response.status_code == 200 and "Select a valid choice." in response.text
    assert not TrainingImage.objects.filter(category=camera).exists()


# --- Who may: anonymous, seller, moderator, admin ---------------------------------------

ROLES = ["anonymous", "seller", "moderator", "admin"]


def client_as(client, role: str):
    if role == "seller":
        client.force_login(make_user("sam"))
    elif role != "anonymous":
        client.force_login(account(role))
    return client


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_open_the_example_photos_form(client, role, camera):
    response = client_as(client, role).get(f"{reverse(ADD_PHOTOS)}?category={camera.pk}")
    expected = {"anonymous": 302, "seller": 302, "moderator": 403, "admin": 200}[role]
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_add_example_photos(client, role, camera, media):
    response = add_photos(client_as(client, role), camera, photo("a.jpg"))
    added = TrainingImage.objects.filter(category=camera).count()
    if role == "admin":
        assert (response.status_code, added) == (302, 1)
        return
    assert added == 0 and stored_files() == []
    if role == "moderator":
        assert response.status_code == 403
    else:
        assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_add_a_category(client, role):
    url = reverse("admin:ads_category_add")
    client = client_as(client, role)
    page = client.get(url)
    response = client.post(url, {"name": "Cameras", "slug": "camera", "active": "on"})
    made = Category.objects.filter(slug="camera").exists()
    if role == "admin":
        assert (page.status_code, response.status_code, made) == (200, 302, True)
        return
    assert not made
    if role == "moderator":
        assert (page.status_code, response.status_code) == (403, 403)
    else:
        assert page["Location"].startswith(reverse("admin:login"))
        assert response["Location"].startswith(reverse("admin:login"))


# --- Enough photos to train on ------------------------------------------------------------


def import_drawn(tmp_path, counts: dict[str, int], start: int = 0) -> None:
    for kind, count in counts.items():
        write_dataset(tmp_path / f"{kind}-{start}", per_class=count, start=start, classes=(kind,))
        call_command("import_images", str(tmp_path / f"{kind}-{start}"), stdout=StringIO())


def test_the_floor_is_20_photos_by_default():
    from avito_mod import settings as production

    assert production.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY == 20


def test_training_refuses_while_an_active_category_has_too_few_photos(
    tmp_path, camera, media, exact_counts, client
):
    exact_counts.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = 20
    TrainingImage.objects.all().delete()
    import_drawn(tmp_path, {"laptop": 20, "phone": 7})
    counts = {row.category.slug: (row.train, row.too_few) for row in services.photos_per_category()}
    assert counts == {"camera": (0, True), "laptop": (20, False), "phone": (7, True)}
    expected = (
        "too few training photos in Cameras (0), Phones (7): every active category needs at "
        "least 20"
    )

    with pytest.raises(services.ClassifierError, match=re.escape(expected)):
        retraining.request_training(None)
    for options in ({}, {"queue": True}):
        with pytest.raises(CommandError, match=re.escape(expected)):
            call_command("train", stdout=StringIO(), **options)
    client.force_login(account("admin"))
    response = client.post(reverse("admin:classifier_modelversion_train"))
    assert f"Nothing started: {expected}" in said(response)
    assert not ModelVersion.objects.filter(status__in=["training", "failed"]).exists()
    # Both lists say which categories are short, with a link to add their photos.
    for page in ("modelversion", "trainingimage"):
        text = client.get(reverse(f"admin:classifier_{page}_changelist")).text
        assert "Training is refused until every active category has at least 20" in text
        assert f'?category={camera.pk}">Cameras</a> (0)' in text
    form = client.get(reverse(ADD_PHOTOS)).text
    assert re.search(r"Phones</a></td>\s*<td>7</td><td>0</td>\s*<td><strong>no", form)

    # A category deactivated no longer holds training up.
    Category.objects.filter(slug__in=["camera", "phone"]).update(active=False)
    services.require_enough_photos()


def test_evaluation_photos_do_not_count(tmp_path, media, settings):
    settings.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = 20
    settings.CLASSIFIER_EVALUATION_PERCENT = 50
    TrainingImage.objects.all().delete()
    import_drawn(tmp_path, {"laptop": 24, "phone": 24})
    rows = {row.category.slug: row for row in services.photos_per_category()}
    assert rows["laptop"].train + rows["laptop"].evaluation == 24
    assert rows["laptop"].evaluation > 0 and rows["laptop"].too_few


def test_a_version_is_trained_over_every_active_category(tmp_path, camera, media, settings):
    """Three categories of drawn photos, the third added by an admin: the version's head
    answers all three, and the served model tells new photos of each apart. Deactivated,
    a category's photos stay, and the next version does not know it."""
    settings.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY = 12
    TrainingImage.objects.all().delete()
    import_drawn(tmp_path, {kind: 30 for kind in KINDS})

    version = retraining.train_in_process(config=tiny_config())
    assert version.classes == ["camera", "laptop", "phone"]
    assert set(version.metrics["per_class"]) == {"camera", "laptop", "phone"}
    unseen = {kind: [jpeg_bytes(kind, 900 + n) for n in range(6)] for kind in KINDS}
    for kind, photos in unseen.items():
        answers = [r.category for r in services.classify_images(photos, version)]
        assert answers.count(kind) >= 5, (kind, answers)

    camera.active = False
    camera.save()
    photos_kept = TrainingImage.objects.filter(category=camera).count()
    assert photos_kept == 30
    summary = {row["category"]: row["total"] for row in services.training_set_summary()}
    assert summary["Cameras (inactive: not trained on)"] == 30
    assert "camera" not in services.labelled_set(TINY_SIZE).classes
    assert "camera" not in [
        label for label in services.trainable_images().values_list("category__slug", flat=True)
    ]
    again = retraining.train_in_process(config=tiny_config(epochs=4))
    assert again.classes == ["laptop", "phone"]
    assert TrainingImage.objects.filter(category=camera).count() == photos_kept
    # The evaluation set leaves it out too, for the version that knows it as well.
    pixels, labels, ids, _ = services.evaluation_set(TINY_SIZE, version.classes)
    assert not TrainingImage.objects.filter(pk__in=ids, category=camera).exists()


# --- Deactivating a category ---------------------------------------------------------------


def test_an_ad_in_an_inactive_category_is_never_published_by_the_model(db):
    phone = Category.objects.get(slug="phone")
    phone.active = False
    routing = decide(phone, [PhotoVerdict("phone", 0.99)], ["laptop", "phone"], 0.5)
    assert (routing.status, routing.reason) == (Ad.Status.NEEDS_REVIEW, REASON.CATEGORY_INACTIVE)
    assert routing.suggested_category is None
    routing = decide(phone, [PhotoVerdict("laptop", 0.99)], ["laptop", "phone"], 0.5)
    assert routing.suggested_category.slug == "laptop"  # an active one: moderators' shortcut


def test_a_photo_predicted_as_an_inactive_category_is_never_suggested(db, camera):
    camera.active = False
    camera.save()
    phone = Category.objects.get(slug="phone")
    classes = ["camera", "laptop", "phone"]
    verdicts = [PhotoVerdict("camera", 0.99), PhotoVerdict("camera", 0.98)]
    routing = decide(phone, verdicts, classes, 0.5)
    assert (routing.reason, routing.suggested_category) == (REASON.CATEGORY_MISMATCH, None)
    # The most photos point to the inactive one: the active one after it is suggested.
    routing = decide(phone, [*verdicts, PhotoVerdict("laptop", 0.97)], classes, 0.5)
    assert routing.suggested_category.slug == "laptop"


def test_a_pending_ad_of_a_category_deactivated_meanwhile_goes_to_review(
    tiny_version, seller, media
):
    ad = make_ad(seller, category="phone", kind="phone", seed=600)
    laptop = make_ad(seller, category="laptop", kind="laptop", seed=620)
    Category.objects.filter(slug="phone").update(active=False)
    assert pipeline.classify_ad(ad.pk) == f"needs_review {REASON.CATEGORY_INACTIVE}"
    ad.refresh_from_db()
    assert (ad.status, ad.review_reason) == (Ad.Status.NEEDS_REVIEW, REASON.CATEGORY_INACTIVE)
    # The version that knows phones keeps serving the other categories.
    assert ModelVersion.objects.active() == tiny_version
    assert pipeline.classify_ad(laptop.pk) == "published"


def test_ads_in_review_stay_and_are_recategorized_or_rejected_not_accepted(seller, media):
    moderator = account("moderator")
    ads = [make_ad(seller, category="phone", seed=610 + 10 * n) for n in range(3)]
    for ad in ads:
        ad.send_to_review(REASON.LOW_CONFIDENCE)
    Category.objects.filter(slug="phone").update(active=False)
    assert Ad.objects.in_review().count() == 3  # still in the queue

    with pytest.raises(moderation.DecisionError, match="Phones is no longer an active category"):
        moderation.decide(ads[0].pk, moderator, "accept")
    laptop = Category.objects.get(slug="laptop")
    decision = moderation.decide(ads[0].pk, moderator, "recategorize", category=laptop)
    assert decision.to_category == laptop
    moderation.decide(ads[1].pk, moderator, "reject", reason="prohibited")
    with pytest.raises(moderation.DecisionError, match="not an active category"):
        moderation.decide(
            ads[2].pk, moderator, "recategorize", category=Category.objects.get(slug="phone")
        )
    statuses = dict(Ad.objects.filter(pk__in=[a.pk for a in ads]).values_list("pk", "status"))
    assert statuses == {ads[0].pk: "published", ads[1].pk: "rejected", ads[2].pk: "needs_review"}


def test_the_review_queue_button_says_why_an_accept_is_refused(seller, media, client):
    ad = make_ad(seller, category="phone", seed=650)
    ad.send_to_review(REASON.LOW_CONFIDENCE)
    Category.objects.filter(slug="phone").update(active=False)
    client.force_login(account("moderator"))
    response = client.post(reverse("admin:moderation_reviewitem_accept", args=[ad.pk]))
    assert "Phones is no longer an active category: recategorize" in said(response)
    ad.refresh_from_db()
    assert ad.status == Ad.Status.NEEDS_REVIEW


def test_sellers_cannot_post_in_an_inactive_category(seller, media):
    from rest_framework.test import APIClient

    Category.objects.filter(slug="phone").update(active=False)
    api = APIClient()
    api.force_authenticate(seller)
    response = api.post(
        "/api/v1/ads/",
        {"title": "t", "price": "1", "category": "phone", "photos": [upload()]},
        format="multipart",
    )
    assert response.status_code == 400 and "no active category" in str(response.data["category"])
    assert "phone" not in [c["slug"] for c in api.get("/api/v1/categories/").data]
