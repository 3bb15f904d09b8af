"""Observations: the data at the bottom of a model (Serket's srk.Observation)."""

from __future__ import annotations

import numpy as np

from runtime import data_files, wiring
from runtime.errors import DataError


def validated_data(data: object, source: str) -> np.ndarray:
    """Return `data` as a finite 2-D float32 array (elements x features) or raise DataError."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise DataError(source, f"cannot be read as an array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise DataError(source, f"must be numeric, got dtype {array.dtype}")
    if array.size == 0:
        raise DataError(source, f"is empty: shape {array.shape}")
    if array.ndim != 2:
        hint = " (one feature per element? use data.reshape(-1, 1))" if array.ndim == 1 else ""
        raise DataError(source, f"must be 2-D (elements x features), got shape {array.shape}{hint}")
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            source,
            f"holds NaN or inf in {rows.size} element(s), first at row {rows[0]}",
        )
    return np.ascontiguousarray(array, dtype=np.float32)


class Observation:
    """Data (elements x features) that modules connect to; it sends the data forward.

    data: an array, validated here, in the caller's process, which travels to the
    cluster once, through Ray's object store, however many rounds read it. Or a folder
    or glob of `.npy` files (rows of one array each, in file-name order), or a
    `ray.data.Dataset` (Ray Data reads parquet, numpy, images from disk or object
    storage; `column`: the column holding the rows, default its only one). Those are
    inspected on the cluster when the first module connects and read by the module
    actors that use them, each the rows it owns: this process never reads them
    (`runtime.data_files`, `runtime.data_inspection`).
    """

    kind = "obs"

    def __init__(self, data: object, name: str | None = None, column: str | None = None) -> None:
        self.name = name or self.kind
        self.files: str | None = None
        self.dataset: object | None = None
        self.column = column
        self.data: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        if data_files.is_pattern(data):
            self.files = str(data)
        elif data_files.is_dataset(data):
            self.dataset = data
        else:
            self.data = validated_data(data, f"Observation {self.name!r}")
            self._shape = self.data.shape
        self._handle: wiring.Handle = wiring.attach(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(elements, features); of files, known once the first module connected."""
        if self._shape is None:
            raise DataError(
                f"Observation {self.name!r}", "its data are inspected when a module connects"
            )
        return self._shape

    def described(self, shape: tuple[int, int]) -> None:
        """The shape of its files, as the cluster found it (set by the session)."""
        self._shape = shape

    @property
    def full_name(self) -> str:
        return self._handle.full_name
