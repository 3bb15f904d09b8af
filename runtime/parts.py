"""Messages in parts: a message's rows split into contiguous ranges, each held apart.

A sharded module's forward message is one part per shard, each an object in the store
of that shard's node; an observation read from `.npy` files is one part per file; a
checkpointed part is a file in the run's storage. The coordinator routes the parts
(references and paths, never the rows) and each receiving actor reads the rows of its
own range from the parts that overlap it (`read_rows`).

A part is a dict: ``start`` and ``stop`` (global rows), and where the rows are: ``ref``
(an encoded message in Ray's object store), ``message`` (the name of an encoded message
file in the run's checkpoint storage), ``npy`` (a `.npy` file of data, read
memory-mapped; its rows start at ``start``) or ``array`` (a block of a Ray Data dataset,
a numpy array in the object store).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Part = dict[str, Any]


def ranges(total: int, count: int) -> list[tuple[int, int]]:
    """`count` contiguous ranges covering rows 0..total, sizes differing by at most one
    (the split numpy's array_split makes)."""
    sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
    return [(int(a), int(b)) for a, b in itertools.pairwise([0, *np.cumsum(sizes)])]


def whole(ref: Any, total: int) -> list[Part]:
    """A message held in one piece, as a list of one part."""
    return [{"start": 0, "stop": total, "ref": ref}]


def overlapping(parts: Sequence[Part], start: int, stop: int) -> list[Part]:
    """The parts holding any of rows start..stop."""
    return [p for p in parts if p["start"] < stop and p["stop"] > start]


def read_rows(
    parts: Sequence[Part],
    start: int,
    stop: int,
    decode: Callable[[Part], np.ndarray],
) -> np.ndarray:
    """Rows start..stop of a message in parts, as one array.

    decode(part) gives a ``ref`` or ``message`` part's array (all its rows); ``npy``
    parts are read memory-mapped, so only the rows wanted are read from disk.
    """
    covering = overlapping(parts, start, stop)
    covered = sum(min(stop, p["stop"]) - max(start, p["start"]) for p in covering)
    if covered != stop - start:
        raise ValueError(f"the parts hold {covered} of rows {start}..{stop}")

    def piece(part: Part) -> np.ndarray:
        lo, hi = max(start, part["start"]) - part["start"], min(stop, part["stop"]) - part["start"]
        if "npy" in part:  # data: only these rows are read, as the float32 modules take
            data = np.load(part["npy"], mmap_mode="r", allow_pickle=False)
            return np.asarray(data[lo:hi], dtype=np.float32)
        return decode(part)[lo:hi]

    first = piece(covering[0])
    if len(covering) == 1:
        return first  # a decoded message's rows are a view, no copy
    # Several parts: each copied into its place as it is read, so besides the result one
    # part's rows are held at a time (not all of them, then their concatenation).
    rows = np.empty((stop - start, *first.shape[1:]), dtype=first.dtype)
    rows[: len(first)] = first
    filled = len(first)
    del first
    for part in covering[1:]:
        block = piece(part)
        rows[filled : filled + len(block)] = block
        filled += len(block)
    return rows
