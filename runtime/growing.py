"""Observations that grow while the model runs (Serket's ROS bridge, without ROS).

Serket's `serket_ros.ObservationImg` keeps receiving images and every update learns from
all received so far. A `GrowingObservation` is fed by a Python queue, a Ray queue (any
process or node may put to it) or a folder that fills with `.npy` or image files; it
takes in what has arrived each time a module that reads it updates, so the model's
modules go on from their learned state over all data so far (`runtime.session`), and the
checkpoint keeps the rows taken in (`Coordinator.grow`).
"""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path
from typing import Any

import numpy as np
from ray.util.queue import Empty as RayQueueEmpty
from ray.util.queue import Queue as RayQueue

from runtime import wiring
from runtime.errors import DataError
from runtime.observation import Observation, validated_data

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class GrowingObservation(Observation):
    """Data (elements x features) that grows between updates.

    source: a `queue.Queue` or a `ray.util.queue.Queue` of arrays (rows x features, or
    one row), or a folder where `.npy` files (rows of one array each) or images (one
    element each: grey levels in [0, 1], flattened) appear, taken in name order.
    first_wait_s: how long the first connect waits for the first data (the features
    must be known). Every update of a module that reads it first takes in what arrived
    since, without waiting. Modules fed from it must be unsharded; labels given for
    scoring (`category`) may cover the elements still to come: the first N score N.
    """

    kind = "obs"

    def __init__(self, source: Any, name: str | None = None, first_wait_s: float = 60.0) -> None:
        if not (_is_queue(source) or isinstance(source, (str, os.PathLike))):
            raise DataError(
                f"GrowingObservation {name or self.kind!r}",
                f"source must be a queue.Queue, a ray.util.queue.Queue or a folder, got "
                f"{type(source).__name__}",
            )
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_dir():
            raise DataError(f"GrowingObservation {name or self.kind!r}", f"no folder {source}")
        self.source = source
        self.first_wait_s = first_wait_s
        self._taken: set[str] = set()  # a folder's files already read
        self.name = name or self.kind
        self.files, self.dataset, self.column = None, None, None
        self.data: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._handle = wiring.attach(self)

    def start(self, seen: np.ndarray | None) -> None:
        """Before registration: the rows a checkpoint kept (`seen`, on resume), or the
        first that arrive (waiting up to first_wait_s)."""
        if seen is not None:
            self._set(seen)
            return
        deadline = time.monotonic() + self.first_wait_s
        while True:
            arrived = self._arrived()
            if arrived is not None:
                self._set(arrived)
                return
            if time.monotonic() > deadline:
                raise DataError(
                    self._where, f"no data arrived within {self.first_wait_s:g} s of connect"
                )
            time.sleep(0.05)

    def take(self) -> np.ndarray | None:
        """The rows that arrived since the last call (now part of `data`), or None."""
        arrived = self._arrived()
        if arrived is None:
            return None
        assert self.data is not None
        if arrived.shape[1] != self.data.shape[1]:
            raise DataError(
                self._where,
                f"new rows have {arrived.shape[1]} features; it has {self.data.shape[1]}",
            )
        self._set(np.concatenate([self.data, arrived]))
        return arrived

    @property
    def _where(self) -> str:
        return f"GrowingObservation {self.name!r}"

    def _set(self, data: np.ndarray) -> None:
        self.data = data
        self._shape = data.shape

    def _arrived(self) -> np.ndarray | None:
        batches = self._from_folder() if not _is_queue(self.source) else self._from_queue()
        if not batches:
            return None
        return validated_data(np.concatenate(batches), self._where)

    def _from_queue(self) -> list[np.ndarray]:
        batches = []
        while True:
            try:
                item = self.source.get_nowait()
            except (queue.Empty, RayQueueEmpty):
                return batches
            batches.append(_rows(np.asarray(item), self._where))

    def _from_folder(self) -> list[np.ndarray]:
        batches = []
        for path in sorted(Path(self.source).iterdir()):
            if path.name in self._taken or path.name.endswith(".tmp"):
                continue
            if path.suffix == ".npy":
                batches.append(_rows(np.load(path, allow_pickle=False), f"{self._where}: {path}"))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                batches.append(_image_row(path, f"{self._where}: {path}"))
            else:
                continue
            self._taken.add(path.name)
        return batches


def _is_queue(source: Any) -> bool:
    """A queue.Queue, or a Ray queue (`ray.util.queue.Queue`)."""
    return isinstance(source, (queue.Queue, RayQueue))


def _rows(item: np.ndarray, where: str) -> np.ndarray:
    return validated_data(item.reshape(1, -1) if item.ndim == 1 else item, where)


def _image_row(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(where, f"is not an image PIL can read ({exc})") from None
    return grey.reshape(1, -1)
