"""Data in `.npy` shard files, read where it is used: the driver never opens them.

An observation given as a folder or glob of `.npy` files (rows of one array each, in
file-name order) is inspected on the cluster, one task per file (`data_inspection`):
shape, dtype, NaN/inf and a digest of the values. The driver gets that metadata only,
and each module actor reads the rows it owns, memory-mapped (`runtime.parts`). A file
only the nodes can see (shared storage mounted on them) is fine.
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import Any

import numpy as np

from runtime.errors import DataError

SCAN_ROWS = 65_536  # rows checked and hashed at a time


def is_pattern(data: object) -> bool:
    """Whether an observation's data is a folder or glob of files (not an array)."""
    return isinstance(data, (str, os.PathLike))


def is_dataset(data: object) -> bool:
    """Whether data is a `ray.data.Dataset` (without importing Ray here)."""
    return hasattr(data, "to_numpy_refs")


def is_block_parts(data: object) -> bool:
    """Whether data is a dataset's blocks as message parts (what a module's actor gets
    for a parameter given as a dataset: `data_inspection.dataset_parts`)."""
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(part, dict) and "array" in part for part in data)
    )


def is_in_memory(data: object) -> bool:
    """Whether data is an array here, not files, a dataset or a dataset's blocks."""
    return not (is_pattern(data) or is_dataset(data) or is_block_parts(data))


def is_shard_files(path: str) -> bool:
    """Whether a path given on the command line names shard files: a folder or a glob
    (a stat of the folder, no file opened)."""
    return any(char in path for char in "*?[") or os.path.isdir(path)


def expand(pattern: str) -> list[str]:
    """The files of a folder (its `*.npy`) or a glob, in name order."""
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*.npy")
    return sorted(glob.glob(pattern))


def inspect(path: str, ndim: int) -> dict[str, Any]:
    """One file's rows, row shape, dtype and digest, or the problem with it."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return {"file": path, "problem": f"cannot be read as .npy ({exc})"}
    return {"file": path, **inspect_array(array, ndim)}


def inspect_array(array: np.ndarray, ndim: int) -> dict[str, Any]:
    """An array's rows, row shape, dtype and digest, or the problem with it (read in
    blocks of rows: a memory-mapped file is never read whole)."""
    if array.dtype.kind not in "biuf":
        return {"problem": f"must be numeric, got dtype {array.dtype}"}
    if array.ndim != ndim:
        return {"problem": f"must be {ndim}-D, got shape {array.shape}"}
    if len(array) == 0:
        return {"problem": "is empty"}
    hashed = hashlib.sha256(f"{array.dtype.str} {array.shape}".encode())
    for start in range(0, len(array), SCAN_ROWS):
        block = np.ascontiguousarray(array[start : start + SCAN_ROWS])
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            return {"problem": f"holds NaN or inf, first at row {row}"}
        hashed.update(block.reshape(-1).view(np.uint8))
    return {
        "rows": len(array),
        "row_shape": [int(n) for n in array.shape[1:]],
        "dtype": array.dtype.str,
        "digest": hashed.hexdigest(),
    }


def rows(pattern: str, start: int, stop: int) -> np.ndarray:
    """Rows start..stop of the data in a folder or glob of files, read memory-mapped
    (for an actor reading the labels of its own elements)."""
    pieces, offset = [], 0
    for path in expand(pattern):
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        lo, hi = max(start, offset), min(stop, offset + len(array))
        if lo < hi:
            pieces.append(np.asarray(array[lo - offset : hi - offset]))
        offset += len(array)
    if sum(len(p) for p in pieces) != stop - start:
        raise DataError(pattern, f"holds {offset} rows; rows {start}..{stop} were asked for")
    return np.concatenate(pieces)
