"""Folder-per-class datasets (``DIR/<class>/*.jpg``) and perceptual hashes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ads.photos import perceptual_hash

from .preprocess import ImageError, decode_image, letterbox


class DatasetError(ValueError):
    """The folder is not a usable folder-per-class dataset; the message says why."""


def scan_class_folders(directory: Path) -> dict[str, list[Path]]:
    """Map each class folder's name to its files, sorted. Hidden entries are ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{directory} has no class folders (expected {directory}/<category>/…)")
    files = {
        folder.name: sorted(
            p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        for folder in folders
    }
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DatasetError(f"class folder(s) with no files: {', '.join(empty)}")
    return files


@dataclass
class LoadedFolder:
    classes: list[str]
    pixels: np.ndarray
    labels: np.ndarray
    hashes: list[int]
    paths: list[Path]
    unreadable: list[tuple[Path, str]]


def load_folder(directory: Path, size: int, classes: list[str] | None = None) -> LoadedFolder:
    """Decode and preprocess every image of a folder-per-class dataset.

    ``classes`` fixes the label order (a model's classes); by default it is the folder names.
    Unreadable files are returned in ``unreadable``, not raised: the caller lists them.
    """
    folders = scan_class_folders(directory)
    classes = list(classes) if classes is not None else sorted(folders)
    unknown = sorted(set(folders) - set(classes))
    if unknown:
        raise DatasetError(
            f"folder(s) {', '.join(unknown)} are not among the classes {', '.join(classes)}"
        )
    pixels, labels, hashes, paths, unreadable = [], [], [], [], []
    for name, files in sorted(folders.items()):
        for path in files:
            try:
                image = decode_image(path.read_bytes())
            except ImageError as error:
                unreadable.append((path, str(error)))
                continue
            pixels.append(letterbox(image, size))
            labels.append(classes.index(name))
            hashes.append(perceptual_hash(image))
            paths.append(path)
    if not pixels:
        raise DatasetError(f"no readable image in {directory}")
    return LoadedFolder(classes, np.stack(pixels), np.array(labels), hashes, paths, unreadable)
