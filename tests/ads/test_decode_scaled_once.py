"""A JPEG shrunk both to fit the decoding memory budget and to the kept side is decoded at
the smaller of the two scales in one go (Pillow takes one draft only): no resampling of a
larger decode after it."""

from __future__ import annotations

from ads.photos import decode_bytes, decode_image
from tests.support.images import drawn_photo, encode


def test_the_kept_side_and_the_memory_budget_share_one_scale():
    data = encode(drawn_photo("phone", 1, size=(800, 800)), "JPEG")
    # Too much memory at full size, enough at half: the budget alone decodes at 1/2.
    budget = decode_bytes("RGB", (400, 400), 3)

    by_memory = decode_image(data, max_bytes=budget)
    both = decode_image(data, max_bytes=budget, max_kept_side=256)

    assert by_memory.size == (400, 400)
    # 256 px at most, at least half of it: libjpeg's 1/4 (200 px), not 400 px resampled.
    assert both.size == (200, 200)
