"""Decoding a seller's photo: the one path by which untrusted bytes become pixels.

Uploads (``ads.uploads``), imports of training images and the classifier's preprocessing
(``classifier.ml.preprocess``) all decode through ``decode_image``. No Django imports: the
classifier's Django-free ``ml`` package builds on it.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import time
import warnings
from functools import cache

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Transparent areas become white: product shots with alpha are usually cut out on white.
ALPHA_BACKGROUND = (255, 255, 255)
# Decompression-bomb guard: a thumbnail-sized model has no use for more pixels than this.
MAX_PIXELS = 40_000_000
# The decoding budget (issue 27): bytes a decode may hold at its peak (see ``decode_bytes``),
# CPU seconds it may take, and scans a JPEG may have. Each scan of a progressive JPEG is a
# pass over all the picture's blocks (some 0.8 ns a pixel here), which no check can
# interrupt: libjpeg's default progression writes 10 scans, mozjpeg and Photoshop fewer
# than 20; 32 cost about 1 s at the pixel cap.
MAX_DECODE_BYTES = 256 * 1024 * 1024
MAX_DECODE_SECONDS = 1.0
MAX_JPEG_SCANS = 32
# Bytes a pixel takes in Pillow's memory, by mode: one for "1" (unpacked), "L" and "P", two
# for 16-bit greyscale, four for the rest ("I", "F", and every multi-band mode, RGB padded).
_ONE_BYTE, _TWO_BYTES = {"1", "L", "P"}, {"I;16", "I;16L", "I;16B", "I;16N"}
# The conversions after decoding hold at most two more copies of 4 bytes a pixel at once
# (the sRGB or RGBA copy and the RGB result) and an alpha mask.
_WORKING_BYTES_PER_PIXEL = 9
# The decoder reads the file in blocks this large; the CPU clock is checked between blocks.
# A JPEG of several scans in smaller ones: each scan, of a few dozen bytes in a hostile file,
# is a pass over the whole picture (15 ms at the pixel cap), and 16 KiB of them would run
# half a second past the budget; 256 bytes cost a progressive 12-megapixel photo some 10%.
_READ_BLOCK = 16 * 1024
_SCANS_READ_BLOCK = 256
# Formats whose decoder takes the whole file in one call, which no clock check can stop.
_READ_WHOLE = frozenset({"WEBP"})
# The next marker after a scan's entropy-coded data (where FF is stuffed as FF 00 and
# restart markers FF D0-D7 belong to the scan).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# MPO is how Pillow names a JPEG carrying more pictures after the first (phones' depth
# maps and HDR gain maps, 3D cameras): its first picture is an ordinary JPEG.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF"})
# The only Pillow plugins that ever parse a seller's bytes (JPEG's opens MPO files too).
DECODERS = ("JPEG", "PNG", "WEBP", "GIF")
ACCEPTED = "send JPEG, PNG, WebP or GIF"
# A picture narrower than this on either side shows no product (and letterboxing a
# 20000x1 strip leaves nothing to classify): refused, not stretched.
MIN_SIDE = 32
# JPEG's own limit, and photos are stored as JPEG: a 65535 px wide GIF of 39 bytes decodes,
# then cannot be stored.
MAX_SIDE = 65_500

# ISO-BMFF brands of HEIF files (iPhones' HEIC photos), which Pillow cannot open.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
# Formats we refuse, named by their first bytes so that the seller learns what to change:
# their decoders never run on sellers' bytes (Pillow is asked for the accepted ones only).
_SIGNATURES = [
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"DDS ", "DDS"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"%!PS", "EPS"),
    (b"qoif", "QOI"),
    (b"\x00\x00\x00\x0cjP  \r\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"P1", "PNM"), (b"P2", "PNM"), (b"P3", "PNM"), (b"P4", "PNM"), (b"P5", "PNM"), (b"P6", "PNM"),
]  # fmt: skip


class ImageError(ValueError):
    """The bytes are not an image we can read; the message says why, for a human."""


class TooSlow(ImageError):
    """The decode ran out of its CPU seconds."""


def decode_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    min_side: int = 1,
    max_aspect: float | None = None,
    max_bytes: int = MAX_DECODE_BYTES,
    max_seconds: float = MAX_DECODE_SECONDS,
    max_scans: int = MAX_JPEG_SCANS,
    max_kept_side: int | None = None,
    photo_seconds: float | None = None,
) -> Image.Image:
    """Decode ``data`` fully into an upright RGB image, or raise ``ImageError``.

    Only the decoders of ``SUPPORTED_FORMATS`` ever see the bytes. Handles EXIF orientation,
    palette and alpha, CMYK, 16-bit and greyscale modes, and takes the first frame of
    animated GIF/WebP/PNG and multi-picture JPEG. Pictures with more than ``max_pixels``
    pixels, a side longer than ``MAX_SIDE`` or shorter than ``min_side``, or longer than
    ``max_aspect`` times their width (or the other way round) are refused before their
    pixels are decoded, and so are JPEGs of more than ``max_scans`` scans and pictures
    whose decode would hold more than ``max_bytes`` (a JPEG is decoded at 1/2, 1/4 or 1/8
    of its size instead when that fits). A decode that takes more than ``max_seconds`` of
    CPU is stopped between blocks of the file, or refused after. With ``max_kept_side``, a
    larger picture comes back shrunk to fit it (a JPEG decoded at 1/2, 1/4 or 1/8 of its size
    first, which costs a fraction of the full decode; other formats reduced by a whole
    factor). When ``max_seconds`` is what is left of a larger budget (an ad's) and
    ``photo_seconds`` the photo's own, a WebP, which its decoder reads whole and the clock
    cannot stop, is refused unless what is left covers its share of ``photo_seconds`` (by
    pixels, of ``max_pixels``). Whatever a decoder raises becomes an ``ImageError``.
    """
    if not data:
        raise ImageError("the file is empty")
    started = time.thread_time()
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(_Clocked(data, started + max_seconds), formats=DECODERS)
            _check_header(image, max_pixels, min_side, max_aspect)
            image.seek(0)  # the first frame only: no other frame is ever decoded
            if photo_seconds and image.format in _READ_WHOLE:
                share = photo_seconds * image.width * image.height / max_pixels
                if max_seconds < share:
                    raise _too_slow()
            scans, fits = _check_cost(image, data, max_bytes, max_scans)
            kept = _kept_request(image, max_kept_side) if max_kept_side else None
            _draft(image, [size for size in (fits, kept) if size])
            image.decodermaxblock = _SCANS_READ_BLOCK if scans > 1 else _READ_BLOCK
            image.load()
            # One step at a time, each dropping the previous copy of the picture.
            _upright(image)
            image = _in_srgb(image)
            image = to_rgb(image)
            if max_kept_side and max(image.size) > max_kept_side:
                # A box average by a whole factor, like libjpeg's scaling: resampling 20
                # megapixels with Lanczos filters took 0.35 s.
                image = image.reduce(math.ceil(max(image.size) / max_kept_side))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_not_an_image(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image dimensions are too large (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise ImageError(f"the image is damaged or truncated ({error})") from None
    except Exception as error:  # noqa: BLE001 - a decoder's bug must not be a server error
        raise ImageError(f"the image could not be decoded ({type(error).__name__})") from None
    spent = time.thread_time() - started
    if spent > max_seconds:
        raise _too_slow(spent, max_seconds)
    return image


class _Clocked(io.BytesIO):
    """The file as the decoders read it, refusing to go on once the CPU budget is spent."""

    def __init__(self, data: bytes, deadline: float):
        super().__init__(data)
        self.deadline = deadline

    def read(self, size: int | None = -1) -> bytes:
        if time.thread_time() > self.deadline:
            raise _too_slow()
        return super().read(size)


def _too_slow(spent: float | None = None, most: float | None = None) -> TooSlow:
    took = f" ({spent:.2f} s of CPU; at most {most:g} s)" if spent is not None else ""
    return TooSlow(f"the image takes too long to decode{took}")


def _check_header(
    image: Image.Image, max_pixels: int, min_side: int, max_aspect: float | None = None
) -> None:
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(f"unsupported image format {image.format}; {ACCEPTED}")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"image is too large ({width}x{height} pixels, at most {max_pixels:,})")
    if max(width, height) > MAX_SIDE:
        raise ImageError(
            f"image is too large ({width}x{height} pixels, at most {MAX_SIDE:,} px on a side)"
        )
    if min(width, height) < min_side:
        raise ImageError(
            f"image is too small ({width}x{height} pixels; at least {min_side} px on each side)"
        )
    if max_aspect is not None and max(width, height) > max_aspect * max(1, min(width, height)):
        raise ImageError(
            f"image is too elongated ({width}x{height} pixels; at most {max_aspect:g} times "
            "longer than wide)"
        )


Size = tuple[int, int]


def _check_cost(
    image: Image.Image, data: bytes, max_bytes: int, max_scans: int
) -> tuple[int, Size | None]:
    """Refuse what would cost more than the budget, before any pixel is decoded. Returns the
    JPEG's number of scans (0: not a JPEG) and, for a JPEG whose full size would hold too
    much but a smaller one fits, the size to ask ``_draft`` for (libjpeg scales while
    decoding, for less CPU too)."""
    jpeg = image.format in ("JPEG", "MPO")
    scans = 0
    if jpeg:
        scans = jpeg_scans(data, stop_after=max_scans)
        if scans > max_scans:
            raise ImageError(
                f"the JPEG has too many progressive scans (more than {max_scans}; "
                "cameras write at most about 20): save it again as an ordinary JPEG"
            )
    components = len(image.layer) if jpeg else 0
    multi_scan = jpeg and scans > 1
    read_whole = image.format in _READ_WHOLE
    needed = decode_bytes(image.mode, image.size, components, multi_scan, read_whole=read_whole)
    if needed <= max_bytes:
        return scans, None
    width, height = image.size
    for scale in (2, 4, 8) if jpeg else ():
        size = (math.ceil(width / scale), math.ceil(height / scale))
        if decode_bytes(image.mode, size, components, multi_scan, image.size) <= max_bytes:
            return scans, (width // scale, height // scale)
    raise ImageError(
        f"the image needs too much memory to decode ({width}x{height} pixels in mode "
        f"{image.mode}: {needed / 2**20:,.0f} MiB; at most {max_bytes / 2**20:,.0f} MiB)"
    )


def _kept_request(image: Image.Image, side: int) -> Size | None:
    """The size to ask ``_draft`` for so that libjpeg decodes a JPEG longer than ``side`` at
    1/2, 1/4 or 1/8 of its size, the smallest whose longer side is still at least
    ``side / 2`` (so it is kept between half ``side`` and ``side`` with no resampling at
    all); None for other formats."""
    longest = max(image.size)
    if image.format not in ("JPEG", "MPO") or longest <= side:
        return None
    width, height = image.size
    half = side // 2
    return max(1, width * half // longest), max(1, height * half // longest)


def _draft(image: Image.Image, requests: list[Size]) -> None:
    """One draft for all the ``requests`` (Pillow ignores a second one): the smallest, for
    which Pillow picks the largest scale that keeps at least the size asked for."""
    if requests:
        image.draft(image.mode, (min(w for w, _ in requests), min(h for _, h in requests)))


def decode_bytes(
    mode: str,
    size: tuple[int, int],
    components: int = 0,
    multi_scan: bool = False,
    coded_size: tuple[int, int] | None = None,
    read_whole: bool = False,
) -> int:
    """Bytes a decode to ``size`` in ``mode`` holds at its peak: the picture in Pillow's
    layout, the working copies of the conversions to RGB and, for a JPEG of several scans,
    libjpeg's buffer of every coefficient of its ``components`` (two bytes each, at the
    ``coded_size``, whatever the scale decoded to); for a decoder that reads the file whole
    (WebP), its own copy of the picture too, four bytes a pixel, which Pillow copies from (a
    4400 px WebP peaked 306 MB above the process's size: 15.8 bytes a pixel)."""
    pixels = size[0] * size[1]
    per_pixel = 1 if mode in _ONE_BYTE else 2 if mode in _TWO_BYTES else 4
    coded = coded_size or size
    coefficients = 2 * components * coded[0] * coded[1] if multi_scan else 0
    decoders_copy = 4 if read_whole else 0
    return pixels * (per_pixel + _WORKING_BYTES_PER_PIXEL + decoders_copy) + coefficients


def jpeg_scans(data: bytes, stop_after: int) -> int:
    """The number of scans of the JPEG's first picture (up to its end marker), counted as
    libjpeg finds them (bytes between segments skipped), up to ``stop_after`` + 1."""
    scans, position, end = 0, 2, len(data)
    while position + 4 <= end and scans <= stop_after:
        marker = data[position + 1] if data[position] == 0xFF else 0
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of the picture
            break
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD7:  # garbage or standalone
            found = _NEXT_MARKER.search(data, position + 1)
            if found is None:
                break
            position = found.start()
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            scans += 1
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                break
            position = found.start()
    return scans


def _not_an_image(data: bytes) -> str:
    # Name what Pillow cannot open but sellers do send, so they learn what to change.
    name = _named_format(data[:1024])
    if name:
        return f"unsupported image format {name}; {ACCEPTED}"
    return f"the file is not an image ({ACCEPTED})"


def _named_format(head: bytes) -> str | None:
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand in (b"avif", b"avis"):  # only when this Pillow has no AVIF decoder
        return "AVIF"
    if brand in _HEIF_BRANDS:
        return "HEIC"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)


def _upright(image: Image.Image) -> None:
    """Turn the picture as its EXIF orientation says, in place (no copy when upright)."""
    # Corrupt EXIF must not cost the photo: keep it as stored.
    with contextlib.suppress(OSError, ValueError, SyntaxError, TypeError, KeyError):
        ImageOps.exif_transpose(image, in_place=True)


@cache
def _srgb_profile():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _in_srgb(image: Image.Image) -> Image.Image:
    """Pixels described by an embedded ICC profile (Display P3, Adobe RGB, a printer's CMYK)
    converted to sRGB, the space everything downstream assumes: storing them as they are
    would shift every colour once the profile is dropped. A profile LittleCMS cannot read
    leaves the pixels as they are."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return image
    from PIL import ImageCms

    srgb = _srgb_profile()
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        if image.mode in ("RGBA", "LA"):  # convert the colours, keep the alpha for to_rgb
            alpha = image.getchannel("A")
            converted = ImageCms.profileToProfile(
                image.convert(image.mode[:-1]), source, srgb, outputMode="RGB"
            )
            converted.putalpha(alpha)
            return converted
        return ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in (*_TWO_BYTES, "I"):
        return _deep_grey(image).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if image.mode != "RGBA":
            image = image.convert("RGBA")
        background = Image.new("RGB", image.size, ALPHA_BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    # CMYK, YCbCr, L, 1, F, HSV, LAB: Pillow's converters handle these.
    return image.convert("RGB")


def _deep_grey(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled down to 8 bits (not clipped at 255), in integers and in
    stripes: no copy of the whole picture wider than its 8-bit result."""
    peak = 65535 if image.mode in _TWO_BYTES else max(int(image.getextrema()[1]), 1)
    width, height = image.size
    grey = np.empty((height, width), np.uint8)
    rows = max(1, (1 << 20) // max(width, 1))
    for top in range(0, height, rows):
        stripe = np.asarray(image.crop((0, top, width, min(top + rows, height))), np.int64)
        grey[top : top + rows] = np.clip(stripe * 255 // peak, 0, 255)
    return Image.fromarray(grey, "L")


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash as an unsigned int: close for near-copies, unlike sha256."""
    return int(str(imagehash.phash(image)), 16)
