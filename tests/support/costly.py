"""Files that are cheap to send and costly to decode, made on the spot (issue 27): the
tests' hostile files for each decoding budget, and ``bench/hostile_cost.py``'s at full size.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _segments(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """A JPEG split into its header (up to the first scan's tables), its scans (each with
    the tables written just before it) and its end marker."""
    units, start, pos = [], 2, 2
    header_end = None
    while True:
        marker = data[pos + 1]
        if marker == 0xD9:
            return data[:header_end], units, data[pos:]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker != 0xDA:
            if marker == 0xC4 and header_end is None:  # the first scan's tables start here
                header_end = start = pos
            pos += 2 + length
            continue
        pos += 2 + length
        while True:  # the entropy-coded data ends at the next marker (not FF00, not RSTn)
            pos = data.index(b"\xff", pos)
            if data[pos + 1] not in (0x00, *range(0xD0, 0xD8)):
                break
            pos += 2
        units.append(data[start:pos])
        start = pos


def many_scans_jpeg(size: tuple[int, int] = (6000, 6000), scans: int = 2500) -> bytes:
    """A progressive JPEG of a flat grey picture whose last refinement scan is repeated until
    the file holds ``scans`` scans: libjpeg warns and decodes every one, each a pass over all
    the picture's blocks, for some 60 bytes of file (issue 27: 291 KB, 13 s of CPU)."""
    flat = Image.new("L", size, 128)
    data = _encode(flat, "JPEG", progressive=True, quality=90)
    header, units, end = _segments(data)
    repeated = [units[-1]] * max(0, scans - len(units))
    return header + b"".join(units) + b"".join(repeated) + end


def deep_png(size: tuple[int, int], bits: int) -> bytes:
    """A greyscale PNG of ``bits`` per pixel (1 or 16), all one value: a few hundred bytes
    for ``size``'s pixels (issue 27: 16-bit 6300x6300 took 1.5 GB)."""
    width, height = size
    row = b"\0" + b"\xff" * ((width * bits + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def noise_jpeg(size: tuple[int, int], quality: int = 95) -> bytes:
    """A baseline JPEG of random pixels: the most a decoder does per pixel."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=quality)


def many_frames_gif(frames: int = 5000, size: tuple[int, int] = (64, 64)) -> bytes:
    """An animated GIF of ``frames`` frames, each of one colour."""
    pictures = [Image.new("P", size, index % 256) for index in range(frames)]
    for picture in pictures:
        picture.putpalette(bytes(range(256)) * 3)
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=10)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()
