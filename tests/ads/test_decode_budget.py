"""Photos decoded within a budget (issue 27): scans of a JPEG, bytes (not pixels) held by
the decode, CPU seconds; each refusal a 400 naming the photo, ordinary photos unchanged."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from ads.models import Ad, AdImage
from ads.photos import ImageError, decode_image, to_rgb
from ads.uploads import decode
from tests.support.costly import deep_png, many_frames_gif, many_scans_jpeg
from tests.support.factories import ad_form, upload
from tests.support.images import drawn_photo, encode

pytestmark = pytest.mark.django_db

ADS, QUICK_CHECK = "/api/v1/ads/", "/api/v1/classify/"


def post_photo(user, url: str, name: str, data: bytes):
    client = APIClient()
    client.force_authenticate(user)
    photo = upload(name, data)
    if url == QUICK_CHECK:
        return client.post(url, {"image": photo, "category": "phone"}, format="multipart")
    return client.post(url, ad_form(photos=[upload("front.jpg", seed=1), photo]), "multipart")


def photo(size=(1200, 900), mode: str = "RGB", fmt: str = "JPEG", **options) -> bytes:
    """A drawn product photo (not a flat test card), in ``mode`` and ``fmt``."""
    image = drawn_photo("phone", 3, size=(size[0] // 8, size[1] // 8)).resize(size)
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), np.uint16) * 257
        return encode(Image.fromarray(grey), fmt)  # uint16: mode I;16
    return encode(image.convert(mode), fmt, **options)


@pytest.mark.parametrize("url", [ADS, QUICK_CHECK])
def test_refuses_a_jpeg_with_more_scans_than_cameras_write(seller, media, settings, url):
    settings.CLASSIFIER_MAX_JPEG_SCANS = 32
    data = many_scans_jpeg((64, 64), scans=33)

    response = post_photo(seller, url, "scans.jpg", data)

    assert response.status_code == 400
    assert "'scans.jpg'" in str(response.data) and "too many progressive scans" in str(
        response.data
    )
    assert not Ad.objects.exists()


def test_accepts_progressive_jpegs_as_encoders_write_them(seller, media):
    for options in ({"progressive": True}, {"progressive": True, "optimize": True}):
        assert post_photo(seller, ADS, "p.jpg", photo(**options)).status_code == 201


@pytest.mark.parametrize("url", [ADS, QUICK_CHECK])
def test_the_memory_budget_counts_bytes_per_pixel_not_pixels(seller, media, settings, url):
    # 8-bit greyscale needs 1 + 9 bytes a pixel at most, 16-bit 2 + 9: a budget between the
    # two takes the first and refuses the second of the same size.
    size = (300, 200)
    settings.CLASSIFIER_MAX_DECODE_BYTES = int(size[0] * size[1] * 10.5)
    eight, sixteen = photo(size, "L", "PNG"), photo(size, "I;16", "PNG")

    refused = post_photo(seller, url, "deep.png", sixteen)

    assert refused.status_code == 400
    assert "'deep.png'" in str(refused.data) and "too much memory" in str(refused.data)
    assert "mode I;16" in str(refused.data)
    if url == ADS:
        assert post_photo(seller, url, "grey.png", eight).status_code == 201


def test_a_one_bit_png_counts_a_byte_a_pixel(seller, media, settings):
    settings.CLASSIFIER_MAX_DECODE_BYTES = 300 * 300 * 10 - 1

    response = post_photo(seller, ADS, "bits.png", deep_png((300, 300), bits=1))

    assert response.status_code == 400 and "too much memory" in str(response.data)


def test_a_jpeg_over_the_memory_budget_is_decoded_smaller(seller, media, settings):
    size = (1600, 1200)
    # Room for a quarter of the pixels, not for all.
    settings.CLASSIFIER_MAX_DECODE_BYTES = size[0] * size[1] * 13 // 3

    response = post_photo(seller, ADS, "big.jpg", photo(size))

    assert response.status_code == 201, response.data
    stored = Ad.objects.get().images.get(position=1)
    assert (stored.width, stored.height) == (800, 600)


def test_a_progressive_jpeg_counts_its_coefficients(settings):
    data = photo((1600, 1200), progressive=True)
    # Room for the picture at full size, not for libjpeg's coefficients besides.
    settings.CLASSIFIER_MAX_DECODE_BYTES = 1600 * 1200 * 13 + 1000
    assert decode(photo((1600, 1200))).size == (1600, 1200)

    assert decode(data).size == (800, 600)


@pytest.mark.parametrize("url", [ADS, QUICK_CHECK])
def test_a_decode_over_the_cpu_budget_is_refused(seller, media, settings, url):
    settings.CLASSIFIER_MAX_DECODE_SECONDS = 0.0001
    noise = np.random.default_rng(1).integers(0, 256, (900, 1200, 3), dtype=np.uint8)

    response = post_photo(seller, url, "slow.png", encode(Image.fromarray(noise), "PNG"))

    assert response.status_code == 400
    assert "'slow.png'" in str(response.data) and "too long to decode" in str(response.data)


def test_the_cpu_budget_stops_a_decode_between_blocks_of_the_file():
    noise = np.random.default_rng(2).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")  # some 3 MB: 180 blocks of 16 KiB

    # Spent as soon as it starts: a read of the file stops it (the message without figures
    # comes from the reads, not from the check after the decode).
    with pytest.raises(ImageError, match=r"^the image takes too long to decode$"):
        decode_image(data, max_seconds=0.0)


def test_only_the_first_frame_of_a_long_animation_is_decoded(seller, media):
    response = post_photo(seller, ADS, "long.gif", many_frames_gif(frames=2000))

    assert response.status_code == 201, response.data


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("JPEG", "CMYK"),
        ("PNG", "RGB"),
        ("PNG", "L"),
        ("PNG", "P"),
        ("PNG", "RGBA"),
        ("PNG", "I;16"),
        ("WEBP", "RGB"),
        ("WEBP", "RGBA"),
        ("GIF", "P"),
    ],
)
def test_ordinary_photos_pass_the_budget(fmt, mode):
    image = decode(photo((2000, 1500), mode, fmt))

    assert (image.mode, image.size) == ("RGB", (2000, 1500))


def test_a_twelve_megapixel_phone_photo_is_decoded_whole(settings):
    """Within the memory budget nothing is scaled for memory's sake (only the kept side is)."""
    settings.ADS_PHOTO_MAX_SIDE = 4096
    data = photo((4032, 3024), quality=90)

    assert decode(data).size == (4032, 3024)


def test_a_twelve_megapixel_phone_photo_is_kept_at_the_default_side():
    data = photo((4032, 3024), quality=90)

    assert decode(data).size == (2016, 1512)  # drafted at 1/2: half the CPU of a whole decode


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_deep_greyscale_is_scaled_to_eight_bits_in_integers(mode):
    # Taller than one stripe of the conversion, with values across the whole range.
    width, height = 1500, 1000
    peak = 65535 if mode == "I;16" else 1_000_000
    values = np.linspace(0, peak, width * height, dtype=np.int64).reshape(height, width)
    image = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32))
    assert image.mode == mode

    grey = np.asarray(to_rgb(image))[..., 0]

    assert np.array_equal(grey, (values * 255 // peak).astype(np.uint8))


def test_a_png_of_sixteen_bits_keeps_its_values(settings):
    data = photo((640, 480), "I;16", "PNG")

    rgb = decode(data)

    expected = np.asarray(Image.open(io.BytesIO(data)), np.int64) * 255 // 65535
    assert np.array_equal(np.asarray(rgb)[..., 1], expected.astype(np.uint8))


@pytest.mark.parametrize(
    ("fmt", "size", "kept"),
    [
        # JPEGs are decoded at 1/2, 1/4 or 1/8 of their size (no resampling): the smallest
        # still at least half the kept side long.
        ("JPEG", (2400, 1800), (600, 450)),
        ("JPEG", (1900, 1000), (950, 500)),
        ("JPEG", (1000, 700), (1000, 700)),
        # Other formats are reduced by the smallest whole factor that fits (box average).
        ("PNG", (2400, 1800), (800, 600)),
    ],
)
def test_a_photo_longer_than_the_kept_side_is_kept_smaller(settings, fmt, size, kept):
    settings.ADS_PHOTO_MAX_SIDE = 1000

    assert decode(photo(size, "RGB", fmt)).size == kept


def test_a_photo_kept_smaller_is_stored_at_that_size(seller, media, settings):
    settings.ADS_PHOTO_MAX_SIDE = 1000

    response = post_photo(seller, ADS, "big.jpg", photo((2400, 1800)))

    assert response.status_code == 201, response.data
    stored = AdImage.objects.get(original_name="big.jpg")
    assert (stored.width, stored.height) == (600, 450)
    with stored.file.open("rb") as handle:
        assert Image.open(handle).size == (600, 450)
