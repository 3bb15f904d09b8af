"""Data inspected by Ray tasks on the cluster, so the driver never reads it: shard files,
and the blocks of a Ray Data dataset."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import ray

from runtime.data_files import expand, inspect, inspect_array
from runtime.errors import DataError
from runtime.parts import read_rows


@ray.remote(num_cpus=1)
def _listed(pattern: str) -> list[str]:
    return expand(pattern)


@ray.remote(num_cpus=1)
def _inspected(path: str, ndim: int) -> dict[str, Any]:
    return inspect(path, ndim)


@ray.remote(num_cpus=1)
def _inspected_block(block: np.ndarray, ndim: int) -> dict[str, Any]:
    return inspect_array(np.asarray(block), ndim)


def describe(pattern: str, source: str, ndim: int = 2) -> tuple[list[dict[str, Any]], str]:
    """Inspect a folder or glob of shard files on the cluster; returns each file's
    metadata (with its first global row, "start") and a digest of the whole data.

    Raises DataError naming `source` and the file (and row) of the first problem: a
    missing, unreadable or empty file, NaN/inf, or files whose rows differ in shape or
    dtype.
    """
    files = ray.get(_listed.remote(pattern))
    if not files:
        raise DataError(source, f"no .npy files match {pattern!r} on the cluster")
    described = ray.get([_inspected.remote(path, ndim) for path in files])
    return _joined(described, source)


def describe_dataset(
    dataset: Any, column: str | None, source: str, ndim: int = 2
) -> tuple[list[dict[str, Any]], str]:
    """A Ray Data dataset's blocks as numpy arrays in Ray's object store (converted by
    Ray's tasks, in the dataset's order), inspected on the cluster like files; each
    block's metadata carries its reference ("block") instead of a file name."""
    if column is None:  # the dataset's only column (Ray's numpy readers call it "data")
        columns = dataset.columns()
        if len(columns) != 1:
            raise DataError(
                source, f"the dataset has columns {columns}: name the rows' one with column="
            )
        column = columns[0]
    context = ray.data.DataContext.get_current()
    kept = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # a fixed global index per element
    try:
        blocks = dataset.to_numpy_refs(column=column)
    finally:
        context.execution_options.preserve_order = kept
    described = ray.get([_inspected_block.remote(block, ndim) for block in blocks])
    for index, (item, block) in enumerate(zip(described, blocks, strict=True)):
        item.update(file=f"block {index} of the dataset", block=block)
    return _joined([d for d in described if d.get("problem") != "is empty"], source)


def dataset_parts(dataset: Any, source: str, ndim: int) -> tuple[list[dict[str, Any]], str]:
    """A dataset's blocks as message parts (``array`` parts: rows and block reference)
    and the whole's digest, inspected as `describe_dataset` does."""
    described, whole = describe_dataset(dataset, None, source, ndim)
    parts = [
        {"start": d["start"], "stop": d["start"] + d["rows"], "array": d["block"]}
        for d in described
    ]
    return parts, whole


def block_rows(parts: list[dict[str, Any]], start: int, stop: int) -> np.ndarray:
    """Rows start..stop of a dataset held as ``array`` parts, read in the calling actor
    (the blocks overlapping them only), in their own dtype."""
    return read_rows(parts, start, stop, lambda part: np.asarray(ray.get(part["array"])))


def _joined(described: list[dict[str, Any]], source: str) -> tuple[list[dict[str, Any]], str]:
    """Check the pieces agree, number their rows; returns them and the whole's digest."""
    first = described[0]
    start = 0
    for item in described:
        if "problem" in item:
            raise DataError(source, f"{item['file']} {item['problem']}")
        for key in ("row_shape", "dtype"):
            if item[key] != first[key]:
                raise DataError(
                    source,
                    f"{item['file']} has {key.replace('_', ' ')} {item[key]}, but "
                    f"{first['file']} has {first[key]}: every file must hold rows alike",
                )
        item["start"] = start
        start += item["rows"]
    whole = hashlib.sha256(" ".join(f"{d['rows']}:{d['digest']}" for d in described).encode())
    return described, f"files:{whole.hexdigest()}"
