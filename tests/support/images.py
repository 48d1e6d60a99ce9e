"""Images made on the spot: every test runs on a fresh machine without the shared dataset."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

# Drawable "categories" a tiny model can tell apart in a few epochs, on noisy backgrounds:
# upright dark bars ("phone"), wide blue slabs ("laptop"), red discs on a grey strap
# ("watch"), green boxes with a yellow lens ("camera"). Most tests use the first two, as
# the shipped categories; FOUR_CLASSES (in the sorted order a folder-per-class dataset
# gives) is for what must work with any number of categories.
CLASSES = ("laptop", "phone")
FOUR_CLASSES = ("camera", "laptop", "phone", "watch")
# The shipped two and one category an admin adds.
KINDS = (*CLASSES, "camera")


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
    if kind == "watch":
        _draw_watch(draw, rng, cx, cy, height)
    elif kind == "camera":
        _draw_camera(draw, rng, cx, cy)
    else:
        if kind == "phone":
            w, h, colour = rng.randint(6, 9), rng.randint(14, 18), (rng.randint(0, 40),) * 3
        else:
            w, h, colour = rng.randint(16, 20), rng.randint(6, 9), (30, 60, rng.randint(180, 255))
        draw.rectangle((cx - w, cy - h, cx + w, cy + h), fill=colour)
    return image


def _draw_watch(draw: ImageDraw.ImageDraw, rng: random.Random, cx: int, cy: int, height: int):
    strap = (rng.randint(90, 120),) * 3
    draw.rectangle((cx - 3, 0, cx + 3, height), fill=strap)
    r = rng.randint(8, 11)
    face = (rng.randint(190, 240), rng.randint(30, 70), rng.randint(20, 50))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=face)


def _draw_camera(draw: ImageDraw.ImageDraw, rng: random.Random, cx: int, cy: int):
    w, h = rng.randint(11, 14), rng.randint(8, 10)
    body = (rng.randint(20, 50), rng.randint(110, 150), rng.randint(40, 70))
    draw.rectangle((cx - w, cy - h, cx + w, cy + h), fill=body)
    r = rng.randint(4, 6)
    lens = (rng.randint(220, 255), rng.randint(200, 240), rng.randint(0, 40))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=lens)


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_bytes(kind: str = "phone", seed: int = 0) -> bytes:
    return encode(drawn_photo(kind, seed), "JPEG", quality=90)


def write_dataset(
    root: Path, per_class: int = 40, start: int = 0, classes: tuple[str, ...] = CLASSES
) -> Path:
    """``root/<class>/<n>.jpg`` for each of ``classes``; returns ``root``."""
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(start, start + per_class):
            (folder / f"{seed:04d}.jpg").write_bytes(jpeg_bytes(kind, seed))
    return root


# --- Colour profiles: small ICC v2 RGB profiles (matrix and gamma) written here ------------

# D50-adapted colorants (columns of the RGB -> XYZ matrix) of the spaces tests use.
COLORANTS = {
    "Display P3": ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841)),
    "Adobe RGB": ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)),
    "sRGB": ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)),
}
D50 = (0.9642, 1.0, 0.8249)


def icc_profile(space: str, gamma: float) -> bytes:
    """An ICC v2 display profile: the space's colorants, one gamma for all three channels."""
    import struct

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(values) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + b"".join(s15(v) for v in values)

    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"
    text = space.encode() + b"\x00"
    description = (
        b"desc\x00\x00\x00\x00" + struct.pack(">I", len(text)) + text + b"\x00" * 12 + b"\x00" * 67
    )
    red, green, blue = COLORANTS[space]
    tags = [
        (b"desc", description),
        (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(red)),
        (b"gXYZ", xyz(green)),
        (b"bXYZ", xyz(blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for signature, body in tags:
        body += b"\x00" * (-len(body) % 4)
        table.append(signature + struct.pack(">II", offset + len(data), len(body)))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
        + b"\x00" * 12 + b"acsp" + b"APPL" + b"\x00" * 4 + b"\x00" * 4 + b"\x00" * 4
        + b"\x00" * 8 + b"\x00" * 4 + s15(D50[0]) + s15(D50[1]) + s15(D50[2]) + b"lcms"
    )  # fmt: skip
    header += b"\x00" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def to_srgb(rgb: tuple[int, int, int], space: str, gamma: float) -> tuple[int, ...]:
    """What ``rgb`` in ``space`` (pure gamma) is in sRGB, worked out here, not by LittleCMS."""
    import numpy as np

    linear = (np.array(rgb) / 255.0) ** gamma
    xyz = np.array(COLORANTS[space]).T @ linear
    srgb = np.linalg.solve(np.array(COLORANTS["sRGB"]).T, xyz).clip(0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return tuple(int(round(v)) for v in encoded * 255)
