"""A WebP's decoder reads the file whole into a copy of its own, which Pillow copies from:
the decoding memory budget counts that copy (issue 27: a 4400 px WebP held 306 MB)."""

from __future__ import annotations

import pytest

from ads.photos import ImageError, decode_bytes, decode_image
from tests.support.images import drawn_photo, encode

SIZE = (400, 300)


def test_a_webp_counts_the_decoders_copy_of_the_picture():
    picture = drawn_photo("phone", 4, size=SIZE)
    # Room for the picture and its conversions, not for a second copy of it.
    budget = decode_bytes("RGB", SIZE)

    assert decode_image(encode(picture, "PNG"), max_bytes=budget).size == SIZE
    with pytest.raises(ImageError, match="needs too much memory to decode"):
        decode_image(encode(picture, "WEBP"), max_bytes=budget)
    assert decode_image(encode(picture, "WEBP"), max_bytes=budget + 4 * 400 * 300).size == SIZE
