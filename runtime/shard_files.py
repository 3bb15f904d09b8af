"""What a shard of a sharded module writes itself: its results and its checkpoint part.

A shard writes where the run's storage is (the output and checkpoint folders, which every
node of a sharded run must reach: a shared file system or an object store on a real
cluster, `runtime.storage`) so that its rows never travel to the driver's node. The
coordinator then links the round's latest files and commits the checkpoint manifest that
names the parts.

Element-wise results go as ``<stem>.part-0003.npy`` (one per shard, in shard order):
`read_parts` reads them back as one array. Values every shard holds alike (a GMM's
parameters) are written by shard 0 under their own names.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime import codec
from runtime.checkpoint import CheckpointStore, file_name, state_bytes
from runtime.output import ResultWriter
from runtime.storage import Folder, Where, folder

_PART = re.compile(r"(?P<stem>.+)\.part-(?P<index>\d{4})\.npy")


def part_name(name: str, shard: int) -> str:
    """The file a shard writes an element-wise result `name` to."""
    return f"{Path(name).stem}.part-{shard:04d}.npy"


def _npy(folder: Folder, name: str) -> np.ndarray:
    return np.load(io.BytesIO(folder.read(name)), allow_pickle=False)


def read_parts(location: Where, stem: str) -> np.ndarray:
    """A sharded module's element-wise result (say "class_learn"), its parts in a folder
    (a round's, or the module's for the latest round), joined in element order."""
    where = folder(location)
    found = sorted(
        (int(match["index"]), name)
        for name in where.files()
        if (match := _PART.fullmatch(name)) and match["stem"] == stem
    )
    if not found:
        raise FileNotFoundError(f"no parts of {stem} in {where}")
    indices = [index for index, _ in found]
    if indices != list(range(len(found))):
        raise FileNotFoundError(f"parts of {stem} in {where} are not 0..{len(found) - 1}")
    return np.concatenate([_npy(where, name) for _, name in found])


def read_result(location: Where, stem: str) -> np.ndarray | None:
    """A module's element-wise result (say "z_learn") in a folder, however it was
    written: Serket's text file, a .npy file (large), or a sharded module's parts; None
    if there is none."""
    where = folder(location)
    if where.exists(f"{stem}.txt"):
        return np.loadtxt(io.BytesIO(where.read(f"{stem}.txt")), ndmin=1)
    if where.exists(f"{stem}.npy"):
        return _npy(where, f"{stem}.npy")
    try:
        return read_parts(where, stem)
    except FileNotFoundError:
        return None


def has_result(location: Where, stem: str) -> bool:
    where = folder(location)
    return any(where.exists(name) for name in (f"{stem}.txt", f"{stem}.npy", part_name(stem, 0)))


@dataclass(frozen=True)
class Storage:
    """The run's output and checkpoint folders (local paths or URIs), as a module's
    actor sees them."""

    output_root: str
    checkpoint_dir: str

    def _checkpoints(self) -> CheckpointStore:
        return CheckpointStore(Folder(self.checkpoint_dir))

    def write_results(
        self,
        module: str,
        shard: int,
        round_: int | None,
        files: Mapping[str, Any],
        rows: Mapping[str, np.ndarray],
    ) -> list[str]:
        """The shard's rows (and shard 0's files) in the round's folder, or beside the
        module's files for recognition (round_ None); returns the names written."""
        own = {part_name(name, shard): np.asarray(value) for name, value in rows.items()}
        if shard == 0:
            own.update(files)
        subdir = "" if round_ is None else f"round_{round_:03d}"
        return ResultWriter(Folder(self.output_root)).write_files(module, own, subdir)

    def write_checkpoint(
        self,
        module: str,
        shard: int,
        round_: int,
        state: Mapping[str, np.ndarray],
        forward: codec.Wire,
        backward: Mapping[str, codec.Wire | None],
    ) -> dict[str, Any]:
        """The shard's part of the checkpoint; returns the file names, for the manifest."""
        store = self._checkpoints()
        names = {
            "state": file_name(module, round_, "state.npz", shard),
            "forward": file_name(module, round_, "forward.msgpack", shard),
            "backward": {},
        }
        store.write_part(names["state"], state_bytes(state))
        store.write_part(names["forward"], forward)
        for receiver, message in backward.items():
            if message is not None:
                name = file_name(module, round_, f"to.{receiver}.msgpack", shard)
                store.write_part(name, message)
                names["backward"][receiver] = name
        return names

    def read_state(self, name: str) -> dict[str, np.ndarray]:
        return self._checkpoints().read_state(name)

    def read_message(self, name: str) -> bytes:
        """A checkpointed message file (a sharded module's part of its last message)."""
        return self._checkpoints().read(name)
