"""Studio-style stand-ins for product photos from outside the marketplace, made from the
marketplace's own: this machine has no outside photos (and no internet to fetch any).

Outside shop and stock photos differ from ad thumbnails mostly by their background (white or
grey, no table, no hand), framing (the object fills the picture) and angle. Each maker turns
one ad photo into one such photo; the product in it is still the seller's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

WHITE, GREY = (255, 255, 255), (200, 200, 200)


def object_mask(image: Image.Image, tolerance: int = 40) -> Image.Image:
    """A rough foreground mask (L, 255 inside): pixels unlike the border's median colour,
    closed and smoothed. Good enough on thumbnails with a plain table or wall behind."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    far = np.abs(rgb - background).max(axis=2) > tolerance
    mask = Image.fromarray((far * 255).astype(np.uint8))
    return mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(3))


def object_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The mask's bounding box; the whole image when the mask is (nearly) empty."""
    box = object_mask(image).getbbox()
    width, height = image.size
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) < width * height // 20:
        return 0, 0, width, height
    return box


def on_canvas(piece: Image.Image, colour, margin: float = 0.15, mask=None) -> Image.Image:
    """``piece`` centred on a plain canvas with a ``margin`` around it."""
    width, height = piece.size
    canvas = Image.new(
        "RGB", (round(width * (1 + 2 * margin)), round(height * (1 + 2 * margin))), colour
    )
    canvas.paste(piece, ((canvas.width - width) // 2, (canvas.height - height) // 2), mask)
    return canvas


def cut_out(image: Image.Image, colour) -> Image.Image:
    """The object, cut out along its mask, on a plain background."""
    image = image.convert("RGB")
    box = object_box(image)
    mask = object_mask(image).filter(ImageFilter.GaussianBlur(1)).crop(box)
    return on_canvas(image.crop(box), colour, mask=mask)


def centred_on_white(image: Image.Image) -> Image.Image:
    """The middle 70 % of the photo pasted on white: a shop shot's framing."""
    width, height = image.size
    dx, dy = round(width * 0.15), round(height * 0.15)
    return on_canvas(image.convert("RGB").crop((dx, dy, width - dx, height - dy)), WHITE, 0.2)


def rotated(image: Image.Image, angle: float) -> Image.Image:
    return image.convert("RGB").rotate(angle, expand=True, fillcolor=WHITE)


def cropped_to_object(image: Image.Image) -> Image.Image:
    """The object filling the picture, its own background kept."""
    return image.convert("RGB").crop(object_box(image))


def sharpened(image: Image.Image) -> Image.Image:
    """Four times larger and sharpened: a camera's photo rather than a blurred thumbnail."""
    large = image.convert("RGB").resize((image.width * 4, image.height * 4), Image.LANCZOS)
    return large.filter(ImageFilter.UnsharpMask(4, 200, 2))


# Each stand-in of one ad photo, by kind: (photo, angle) to the studio-like photo.
MAKERS = {
    "cut out on white": lambda image, angle: cut_out(image, WHITE),
    "cut out on grey": lambda image, angle: cut_out(image, GREY),
    "centred on white": lambda image, angle: centred_on_white(image),
    "small on white": lambda image, angle: on_canvas(image.convert("RGB"), WHITE, 0.6),
    "rotated": lambda image, angle: rotated(image, angle),
    "cropped to the object": lambda image, angle: cropped_to_object(image),
    "sharpened": lambda image, angle: sharpened(image),
    "sharpened, cut out on white": lambda image, angle: cut_out(sharpened(image), WHITE),
}
