"""Checkpoints: after every update, what a run needs to go on from there.

Per module: its learned state (.npz), its last forward message and the last backward
message addressed to it (.msgpack envelopes, the wire format). For the run: a manifest
(`manifest.json`) naming those files, each module's completed rounds and configuration
digest, and the update history. Files get unique names and are written first; replacing
the manifest (each file is written whole: `runtime.storage`) is the commit. A crash at
any point leaves the last committed checkpoint whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime import codec
from runtime.errors import CheckpointError
from runtime.storage import Where, folder

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# The names `file_name` gives, and their temporaries: the only files the store deletes,
# so a checkpoint folder shared with other files is safe.
_OWN_FILE = re.compile(
    r"(?P<module>.+)\.r(?P<round>\d{4})\.(s\d{4}\.)?"
    r"(settled\.)?(state\.npz|forward\.msgpack|to\..+\.msgpack)(\.tmp)?"
)


# The rows a growing observation took in, one file per intake (`rows_file`).
_ROWS_FILE = re.compile(r".+\.rows\.\d{6}\.npz(\.tmp)?")


def rows_file(observation: str, intake: int) -> str:
    """The checkpoint file of a growing observation's `intake`-th rows (0: its first)."""
    return f"{observation}.rows.{intake:06d}.npz"


def file_name(module: str, round_: int, what: str, shard: int | None = None) -> str:
    """A checkpoint file's name; `what` is "state.npz", "forward.msgpack" or
    "to.<receiver>.msgpack" (a backward message), each prefixed "settled." where a
    peer's settling replaced its round's (`runtime.peers`); `shard`: a sharded module's part. Unique
    per module, round and shard, so a new file never overwrites the committed one it
    replaces."""
    part = "" if shard is None else f"s{shard:04d}."
    return f"{module}.r{round_:04d}.{part}{what}"


def referenced_files(value: Any) -> list[str]:
    """The file names a manifest entry holds: a name, or a sharded module's parts (lists
    of names, or of parts with a "file")."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [value["file"]] if "file" in value else []
    return [name for item in value for name in referenced_files(item)]


def fingerprint(data: codec.Wire) -> str:
    """sha256 of encoded bytes: what a resumed run checks its settings against."""
    return hashlib.sha256(data).hexdigest()


def data_digest(data: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and little-endian values: what a resumed run
    checks its observations against. Taken over the values, not their message, so that a
    change of wire format (say, the row-block size) does not make the same data look
    different."""
    little = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    hashed = hashlib.sha256(f"{little.dtype.str} {little.shape}".encode())
    hashed.update(little.reshape(-1).view(np.uint8))
    return f"values:{hashed.hexdigest()}"


def digest(value: Any) -> str:
    """The fingerprint of a configuration (of its msgpack encoding)."""
    return fingerprint(codec.pack(value))


@dataclass
class Manifest:
    observations: dict[str, str] = field(default_factory=dict)  # name -> data digest
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> entry
    backward: dict[str, str] = field(default_factory=dict)  # receiver -> message file
    history: list[dict[str, Any]] = field(default_factory=list)
    # A growing observation's rows taken in so far, as files in intake order.
    growing: dict[str, list[str]] = field(default_factory=dict)


def _ahead(name: str, manifest: Manifest) -> bool:
    """Whether a file is of a round after the manifest's: a shard's part of an update
    whose commit is still to come (write-behind, or a module's first), not a stale file."""
    match = _OWN_FILE.fullmatch(name)
    if match is None:
        return False
    entry = manifest.modules.get(match["module"])
    return entry is None or int(match["round"]) > entry["rounds"]


class CheckpointStore:
    def __init__(self, root: Where) -> None:
        self.root = folder(root)

    def load(self) -> Manifest:
        if not self.root.exists(MANIFEST):
            raise CheckpointError(str(self.root), "no checkpoint to resume from (no manifest.json)")
        path = f"{self.root}/{MANIFEST}"
        try:
            raw = json.loads(self.read(MANIFEST))
            if raw.pop("version") != FORMAT_VERSION:
                raise ValueError("unknown format version")
            return Manifest(**raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(str(path), f"unreadable or truncated ({exc})") from None

    def commit(self, manifest: Manifest, new_files: Mapping[str, codec.Wire]) -> None:
        """Write `new_files`, then the manifest that refers to them; drop unreferenced files."""
        for name, data in new_files.items():
            self.root.write(name, data)
        document = {"version": FORMAT_VERSION, **manifest.__dict__}
        self.root.write(MANIFEST, json.dumps(document, indent=1).encode())
        referenced = set(referenced_files(list(manifest.backward.values())))
        for entry in manifest.modules.values():
            referenced.update(referenced_files([entry["state"], entry["forward"]]))
        for files in manifest.growing.values():
            referenced.update(files)
        for stale in self._own_files():
            if stale not in referenced and not _ahead(stale, manifest):
                self.root.delete(stale)

    def clear(self) -> None:
        """Delete the checkpoint (manifest first, so no half-deleted one is ever read)."""
        self.root.delete(MANIFEST)
        for name in self._own_files():
            self.root.delete(name)

    def holds_checkpoint(self) -> bool:
        return self.root.exists(MANIFEST)

    def _own_files(self) -> list[str]:
        return [
            name
            for name in self.root.files()
            if _OWN_FILE.fullmatch(name) or _ROWS_FILE.fullmatch(name)
        ]

    def write_part(self, name: str, data: codec.Wire) -> None:
        """One file of a checkpoint not yet committed (a shard writes its own)."""
        self.root.write(name, data)

    def read(self, name: str) -> bytes:
        try:
            return self.root.read(name)
        except OSError as exc:
            raise CheckpointError(f"{self.root}/{name}", f"cannot be read ({exc})") from None

    def read_state(self, name: str) -> dict[str, np.ndarray]:
        try:
            with np.load(io.BytesIO(self.read(name)), allow_pickle=False) as arrays:
                return {key: arrays[key] for key in arrays.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            where = f"{self.root}/{name}"
            raise CheckpointError(where, f"unreadable or truncated ({exc})") from None


def state_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """A module's state as .npz bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in state.items()})
    return buffer.getvalue()
