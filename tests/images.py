"""Images made on the spot: every test runs on a fresh machine without the shared dataset."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

# Two drawable "categories" a tiny CNN can tell apart in a few epochs: upright dark
# bars ("phone") versus wide bright slabs ("laptop"), on noisy backgrounds.
CLASSES = ("laptop", "phone")


def drawn_photo(kind: str, seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = random.Random(f"{kind}-{seed}")
    width, height = size
    background = tuple(rng.randint(150, 230) for _ in range(3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for _ in range(30):  # speckle, so no two photos are identical
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    cx, cy = width // 2 + rng.randint(-4, 4), height // 2 + rng.randint(-3, 3)
    if kind == "phone":
        w, h, colour = rng.randint(6, 9), rng.randint(14, 18), (rng.randint(0, 40),) * 3
    else:
        w, h, colour = rng.randint(16, 20), rng.randint(6, 9), (30, 60, rng.randint(180, 255))
    draw.rectangle((cx - w, cy - h, cx + w, cy + h), fill=colour)
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_bytes(kind: str = "phone", seed: int = 0) -> bytes:
    return encode(drawn_photo(kind, seed), "JPEG", quality=90)


def write_dataset(root: Path, per_class: int = 40, start: int = 0) -> Path:
    """``root/<class>/<n>.jpg`` for both classes; returns ``root``."""
    for kind in CLASSES:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(start, start + per_class):
            (folder / f"{seed:04d}.jpg").write_bytes(jpeg_bytes(kind, seed))
    return root
