"""Decoding a seller's photo: the one path by which untrusted bytes become pixels.

Uploads (``ads.uploads``), imports of training images and the classifier's preprocessing
(``classifier.ml.preprocess``) all decode through ``decode_image``. No Django imports: the
classifier's Django-free ``ml`` package builds on it.
"""

from __future__ import annotations

import io
import struct
import warnings
from functools import cache

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Transparent areas become white: product shots with alpha are usually cut out on white.
ALPHA_BACKGROUND = (255, 255, 255)
# Decompression-bomb guard: a thumbnail-sized model has no use for more pixels than this.
MAX_PIXELS = 40_000_000

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


def decode_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    min_side: int = 1,
    max_aspect: float | None = None,
) -> Image.Image:
    """Decode ``data`` fully into an upright RGB image, or raise ``ImageError``.

    Only the decoders of ``SUPPORTED_FORMATS`` ever see the bytes. Handles EXIF orientation,
    palette and alpha, CMYK, 16-bit and greyscale modes, and takes the first frame of
    animated GIF/WebP/PNG and multi-picture JPEG. Pictures with more than ``max_pixels``
    pixels, a side longer than ``MAX_SIDE`` or shorter than ``min_side``, or longer than
    ``max_aspect`` times their width (or the other way round) are refused before their
    pixels are decoded. Whatever a decoder raises becomes an ``ImageError``.
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=DECODERS)
            _check_header(image, max_pixels, min_side, max_aspect)
            image.seek(0)
            image.load()
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
    return to_rgb(_in_srgb(_upright(image)))


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


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        # Corrupt EXIF must not cost the photo: keep it as stored.
        return image


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
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        # 16/32-bit greyscale: scale down to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(array.max(), 1.0)
        grey = np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, ALPHA_BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    # CMYK, YCbCr, L, 1, F, HSV, LAB: Pillow's converters handle these.
    return image.convert("RGB")


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash as an unsigned int: close for near-copies, unlike sha256."""
    return int(str(imagehash.phash(image)), 16)
