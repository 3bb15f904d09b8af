"""Shard files inspected by Ray tasks on the cluster, so the driver never opens them."""

from __future__ import annotations

import hashlib
from typing import Any

import ray

from runtime.data_files import expand, inspect
from runtime.errors import DataError


@ray.remote(num_cpus=1)
def _listed(pattern: str) -> list[str]:
    return expand(pattern)


@ray.remote(num_cpus=1)
def _inspected(path: str, ndim: int) -> dict[str, Any]:
    return inspect(path, ndim)


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
