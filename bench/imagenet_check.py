"""A converted EfficientNet-Lite with its own ImageNet head, over the shared dataset.

    python bench/imagenet_check.py                     # letterboxed, as the classifier serves
    python bench/imagenet_check.py --resize crop       # ImageNet's evaluation crop
    python bench/imagenet_check.py --backbone efficientnet-lite0-imagenet

A check of the weights conversion on real photos, independent of any head we train: per
class folder, the most frequent top-1 ImageNet classes, and the share of photos whose top-5
holds an ImageNet class that names the product (a laptop folder should see laptops,
notebooks, keyboards and screens; a phone folder cellular telephones). A wrong mapping
(layout, padding, BatchNorm epsilon, colour order) shows as top-1 classes unrelated to the
products and shares near zero.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from classifier.ml.backbone import BACKBONES, DEFAULT_BACKBONE  # noqa: E402
from classifier.ml.dataset import scan_class_folders  # noqa: E402
from classifier.ml.preprocess import ImageError, decode_image, letterbox  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/avito-phone-laptop/train"

# ImageNet-1k indices of the classes that name the products.
PRODUCT_CLASSES = {
    "laptop": {620, 681, 527, 664, 782, 508},
    "phone": {487, 590, 605},
}


def center_crop(image: Image.Image, size: int) -> np.ndarray:
    """ImageNet's evaluation view: the central square of side 224/256 of the shorter side."""
    width, height = image.size
    side = min(width, height) * 224 / 256
    left, top = (width - side) / 2, (height - side) / 2
    box = (round(left), round(top), round(left + side), round(top + side))
    cropped = image.crop(box).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(cropped, dtype=np.uint8)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def top5_per_photo(model, paths: list[Path], size: int, resize, batch: int) -> np.ndarray:
    """The five most probable ImageNet classes of each photo, most probable first."""
    rows = []
    for start in range(0, len(paths), batch):
        pixels = np.stack([resize(read(path), size) for path in paths[start : start + batch]])
        probabilities = model.predict(pixels.astype(np.float32), verbose=0)
        rows.append(np.argsort(-probabilities, axis=1)[:, :5])
    return np.concatenate(rows)


def read(path: Path) -> Image.Image:
    try:
        return decode_image(path.read_bytes())
    except ImageError as error:
        raise SystemExit(f"{path}: {error}") from error


def name(index: int) -> str:
    from classifier.ml.imagenet import class_names

    return class_names()[index]


def report(folder: str, top5: np.ndarray, shown: int) -> None:
    print(f"\n{folder}: {len(top5)} photos")
    counts = Counter(top5[:, 0].tolist())
    for index, count in counts.most_common(shown):
        print(f"  top-1 {index:4d} {name(index):32s} {count:5d}  {count / len(top5):6.1%}")
    products = PRODUCT_CLASSES.get(folder)
    if products is None:
        print("  (no product classes listed for this folder)")
        return
    matched = np.isin(top5, sorted(products)).any(axis=1)
    top1 = np.isin(top5[:, 0], sorted(products))
    print(f"  product class in top-5: {matched.mean():.1%}   in top-1: {top1.mean():.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", choices=list(BACKBONES), default=DEFAULT_BACKBONE)
    parser.add_argument("--size", type=int, help="input size (default: the backbone's native)")
    parser.add_argument("--resize", choices=["letterbox", "crop"], default="letterbox")
    parser.add_argument("--limit", type=int, default=0, help="photos per folder (0: all)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shown", type=int, default=8, help="top-1 classes listed per folder")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all)")
    args = parser.parse_args()

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from classifier.ml.backbone import build_imagenet_classifier, load_imagenet_weights

    print(f"machine: {machine()}, python {platform.python_version()}")
    print(f"command: python {' '.join(sys.argv)}")
    args.size = args.size or BACKBONES[args.backbone].native_size
    model = build_imagenet_classifier(args.size, args.backbone)
    load_imagenet_weights(model, args.backbone)
    resize = {"letterbox": letterbox, "crop": center_crop}[args.resize]
    started, total = time.monotonic(), 0
    for folder, paths in scan_class_folders(args.data).items():
        paths = paths[: args.limit] if args.limit else paths
        report(folder, top5_per_photo(model, paths, args.size, resize, args.batch), args.shown)
        total += len(paths)
    seconds = time.monotonic() - started
    print(f"\n{total} photos in {seconds:.0f} s ({total / seconds:.1f} photos/s)")


if __name__ == "__main__":
    main()
