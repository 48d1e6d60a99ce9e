import io

import numpy as np
import pytest
from PIL import Image

from ads.photos import ALPHA_BACKGROUND, DECODERS, ImageError, decode_image
from classifier.ml.preprocess import (
    PAD_COLOUR,
    letterbox,
    preprocess,
    preprocess_batch,
)
from tests.support.images import drawn_photo, encode


def solid(mode, size=(20, 10), colour=None):
    return Image.new(mode, size, colour)


def test_rgb_jpeg_decodes_to_rgb():
    image = decode_image(encode(drawn_photo("phone", 1)))
    assert image.mode == "RGB"
    assert image.size == (48, 40)


def test_transparent_png_is_flattened_on_white():
    data = encode(solid("RGBA", colour=(255, 0, 0, 0)), "PNG")
    image = decode_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == ALPHA_BACKGROUND


def test_half_transparent_png_blends_with_white():
    image = decode_image(encode(solid("RGBA", colour=(0, 0, 0, 128)), "PNG"))
    assert image.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_palette_png_with_transparency_is_flattened():
    palette = solid("P", colour=1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    data = encode(palette, "PNG", transparency=1)
    assert decode_image(data).getpixel((3, 3)) == ALPHA_BACKGROUND


def test_palette_png_without_transparency_keeps_its_colours():
    palette = solid("P", colour=1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    assert decode_image(encode(palette, "PNG")).getpixel((3, 3)) == (0, 255, 0)


def test_cmyk_jpeg_is_converted_to_rgb():
    data = encode(solid("CMYK", colour=(0, 255, 255, 0)), "JPEG", quality=95)
    red, green, blue = decode_image(data).getpixel((5, 5))
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped():
    array = np.full((10, 20), 32768, dtype=np.uint16)
    data = encode(Image.fromarray(array), "PNG")
    image = decode_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_greyscale_and_bilevel_images_become_rgb():
    assert decode_image(encode(solid("L", colour=200), "PNG")).getpixel((0, 0)) == (200,) * 3
    assert decode_image(encode(solid("1", colour=1), "PNG")).getpixel((0, 0)) == (255,) * 3


def test_greyscale_with_alpha_is_flattened():
    data = encode(solid("LA", colour=(0, 0)), "PNG")
    assert decode_image(data).getpixel((0, 0)) == ALPHA_BACKGROUND


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_uses_its_first_frame(fmt):
    frames = [solid("RGB", colour=(255, 0, 0)), solid("RGB", colour=(0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    red, green, blue = decode_image(buffer.getvalue()).getpixel((5, 5))
    assert red > 200 and blue < 60


def test_exif_orientation_is_applied():
    # Stored 20 wide x 10 high with orientation 6 ("rotate 90° clockwise to view").
    image = solid("RGB", size=(20, 10), colour=(0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = decode_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert upright.size == (10, 20)


def test_corrupt_exif_keeps_the_photo():
    image = solid("RGB", colour=(0, 255, 0))
    data = encode(image, "JPEG", exif=b"Exif\x00\x00II*\x00garbage-not-a-valid-ifd")
    assert decode_image(data).size == (20, 10)


def test_truncated_jpeg_is_refused():
    data = encode(drawn_photo("phone", 2, size=(200, 160)), "JPEG", quality=95)
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode_image(data[: len(data) // 2])


def test_empty_file_is_refused():
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_text_with_an_image_name_is_refused():
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"<html><script>alert(1)</script></html>")


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_unsupported_formats_are_named(fmt):
    with pytest.raises(ImageError, match=f"unsupported image format {fmt}"):
        decode_image(encode(solid("RGB"), fmt))


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (10_000, 10_000)), "PNG")  # a few KB, 100 Mpx
    assert len(bomb) < 50_000
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb, max_pixels=1_000_000)


def test_letterbox_keeps_aspect_ratio_and_pads_with_grey():
    tall = solid("RGB", size=(50, 100), colour=(0, 0, 0))
    pixels = letterbox(tall, 32)
    assert pixels.shape == (32, 32, 3)
    assert pixels.dtype == np.uint8
    assert tuple(pixels[16, 0]) == PAD_COLOUR  # left margin is padding
    assert tuple(pixels[16, 16]) == (0, 0, 0)  # the photo in the middle
    assert tuple(pixels[0, 16]) == (0, 0, 0)  # full height used


def test_letterbox_of_a_wide_image_pads_top_and_bottom():
    pixels = letterbox(solid("RGB", size=(100, 50), colour=(255, 255, 255)), 32)
    assert tuple(pixels[0, 16]) == PAD_COLOUR
    assert tuple(pixels[16, 0]) == (255, 255, 255)


@pytest.mark.parametrize("size", [(67, 90), (120, 68), (121, 91), (90, 90), (300, 41)])
def test_letterbox_gives_the_pixels_of_a_pillow_paste(size):
    # Stored backbone features were computed with a Pillow canvas; the NumPy one must match
    # it to the last bit, or every kept feature would silently disagree with serving.
    photo = Image.fromarray(
        np.random.default_rng(size[0]).integers(0, 256, (*size[::-1], 3), np.uint8)
    )
    scale = 224 / max(size)
    fitted = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    canvas = Image.new("RGB", (224, 224), PAD_COLOUR)
    canvas.paste(
        photo.resize(fitted, Image.Resampling.BILINEAR, reducing_gap=3.0),
        ((224 - fitted[0]) // 2, (224 - fitted[1]) // 2),
    )
    assert np.array_equal(letterbox(photo, 224), np.asarray(canvas))


def test_one_pixel_wide_image_still_yields_an_input():
    pixels = letterbox(solid("RGB", size=(2000, 1), colour=(255, 0, 0)), 32)
    assert pixels.shape == (32, 32, 3)


def test_preprocess_leaves_scaling_to_the_model():
    pixels = preprocess(encode(solid("RGB", colour=(255, 255, 255)), "PNG"), 16)
    assert pixels.max() == 255  # raw 0..255: the model's Rescaling layer divides


def test_preprocess_batch_stacks_photos():
    batch = preprocess_batch([encode(drawn_photo("phone", i)) for i in range(3)], 24)
    assert batch.shape == (3, 24, 24, 3)
    assert preprocess_batch([], 24).shape == (0, 24, 24, 3)


def test_an_elongated_photo_is_refused_only_past_the_ratio_asked_for():
    assert decode_image(encode(solid("RGB", (320, 40)), "PNG"), max_aspect=8).size == (320, 40)
    with pytest.raises(ImageError, match=r"too elongated \(40x321 pixels; at most 8 times"):
        decode_image(encode(solid("RGB", (40, 321)), "PNG"), max_aspect=8)
    assert decode_image(encode(solid("RGB", (40, 321)), "PNG")).size == (40, 321)  # no limit


# Formats Pillow can write and we do not take; each must be refused as such.
OTHER_FORMATS = [
    "BMP",
    "DDS",
    "ICO",
    "IM",
    "MSP",
    "PCX",
    "PDF",
    "PPM",
    "QOI",
    "SGI",
    "TGA",
    "TIFF",
    "XBM",
]


def other_format_files() -> dict[str, bytes]:
    files = {}
    for fmt in OTHER_FORMATS:
        image = solid("1" if fmt in ("MSP", "XBM") else "RGB")
        try:
            files[fmt] = encode(image, fmt)
        except (OSError, KeyError, ValueError):
            continue  # this Pillow cannot write it
    return files


def test_only_the_accepted_formats_decoders_ever_see_the_bytes(monkeypatch):
    """Pillow is asked for JPEG, PNG, WebP and GIF only: no other plugin parses a seller's
    bytes (the DDS reader once raised NotImplementedError on a header, a 500)."""
    from PIL import Image as PILImage

    PILImage.init()
    ran = []
    for name, (factory, _accept) in list(PILImage.OPEN.items()):
        if name in DECODERS:
            continue
        opener = getattr(factory, "_open", None)
        if opener is None:
            continue
        monkeypatch.setattr(
            factory,
            "_open",
            lambda self, opener=opener, name=name: (ran.append(name), opener(self))[1],
        )
    files = other_format_files()
    assert {"BMP", "TIFF", "DDS", "PCX", "TGA"} <= set(files)
    for fmt, data in files.items():
        with pytest.raises(ImageError) as refused:
            decode_image(data)
        assert "unsupported image format" in str(refused.value) or "not an image" in str(
            refused.value
        ), fmt
    assert ran == []
    assert decode_image(encode(solid("RGB"), "PNG")).size == solid("RGB").size  # ours still do


def test_whatever_a_decoder_raises_is_a_clear_refusal(monkeypatch):
    from PIL import PngImagePlugin

    def broken(self, *args, **kwargs):
        raise NotImplementedError("a decoder's bug")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", broken)
    with pytest.raises(ImageError, match=r"could not be decoded \(NotImplementedError\)"):
        decode_image(encode(solid("RGB"), "PNG"))


# Photos with an embedded colour profile: (space, gamma of the generated profile).
PROFILED = [("Display P3", 2.2), ("Adobe RGB", 563 / 256)]


@pytest.mark.parametrize(("space", "gamma"), PROFILED)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_photos_with_a_colour_profile_are_converted_to_srgb(space, gamma, fmt):
    from ads.uploads import clean_photo
    from tests.support.images import icc_profile, to_srgb

    colour = (200, 100, 50)
    data = encode(solid("RGB", (64, 48), colour), fmt, icc_profile=icc_profile(space, gamma))
    expected = to_srgb(colour, space, gamma)  # worked out in the test, not by LittleCMS
    # A real shift, that a missing conversion could not hide within the tolerances below.
    assert max(abs(e - c) for e, c in zip(expected, colour, strict=True)) > 16

    assert decode_image(data).getpixel((10, 10)) == pytest.approx(expected, abs=1)
    stored = Image.open(io.BytesIO(clean_photo(io.BytesIO(data)).data))
    assert "icc_profile" not in stored.info
    assert stored.getpixel((10, 10)) == pytest.approx(expected, abs=3)  # JPEG of a flat colour


def test_a_profile_that_cannot_be_read_leaves_the_pixels_as_they_are():
    data = encode(solid("RGB", (64, 48), (200, 100, 50)), "PNG", icc_profile=b"not a profile")
    assert decode_image(data).getpixel((10, 10)) == (200, 100, 50)
