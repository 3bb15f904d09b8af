"""Result files: per module and per round, each written whole, in the run's storage
(`runtime.storage`: a local folder, a shared file system or an object store).

Layout under the output root::

    module001_vae/round_003/z_learn.txt   every round kept (or the first and last few)
    module001_vae/z_learn.txt             the latest round (a hard link to the above)
    module001_vae/z_recog.txt             recognition of novel data (the last one run)
    recognition.json                      one record per module recognition
    history.jsonl                         one line per module update: round, seconds, metrics
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from runtime.errors import ModuleError
from runtime.storage import Folder, Where, folder

WRITABLE = (".txt", ".npy", ".npz", ".json")
# Element-wise results up to this many rows are Serket's text files (z_learn.txt); beyond,
# .npy files of the same stem: text of millions of rows is slow to write and to read.
TEXT_ROWS = 100_000


def row_file(name: str, rows: int) -> str:
    """The file an element-wise result of `rows` rows is written to (see TEXT_ROWS)."""
    if rows > TEXT_ROWS and name.endswith(".txt"):
        return name.removesuffix(".txt") + ".npy"
    return name


HISTORY, RECOGNITION, PLACEMENTS = "history.jsonl", "recognition.json", "placements.json"
RUN_FILES = (HISTORY, RECOGNITION, PLACEMENTS)  # beside the module folders
_MODULE_DIR = re.compile(r"module\d{3}_\w+")  # Serket's numbering: module001_vae
_ROUND_DIR = re.compile(r"round_(\d{3,})")


def encoded(name: str, value: Any) -> bytes:
    """A result's bytes, in the format its file name's suffix says."""
    suffix = PurePosixPath(name).suffix
    buffer = io.BytesIO()
    if suffix == ".txt":
        array = np.asarray(value)
        fmt = "%d" if array.dtype.kind in "biu" else "%.7g"
        np.savetxt(buffer, np.atleast_1d(array), fmt=fmt)
    elif suffix == ".npy":
        np.save(buffer, np.asarray(value), allow_pickle=False)
    elif suffix == ".npz":
        np.savez(buffer, **{key: np.asarray(v) for key, v in dict(value).items()})
    else:  # ".json": `ResultWriter.check_names` lets no other suffix through
        buffer.write(json.dumps(value, indent=2).encode())
    return buffer.getvalue()


def remove_results(location: Where) -> None:
    """Delete what result writers wrote under `location` (module folders, the run's
    files) and nothing else: the earlier run's files, before a new run replaces it."""
    root = folder(location)
    for name in root.folders():
        if _MODULE_DIR.fullmatch(name):
            root.delete_folder(name)
    for name in root.files():
        if name in RUN_FILES:
            root.delete(name)


class ResultWriter:
    """keep_rounds: per module, the round folders kept besides the first (the starting
    point that plots compare against): the last `keep_rounds`, or all when None. A round's
    files can be as large as the data (a VAE's reconstructions), so a long run on a large
    data set would otherwise fill the disk."""

    def __init__(self, root: Where, keep_rounds: int | None = None) -> None:
        self.root = folder(root)
        self.keep_rounds = keep_rounds

    def write_round(self, module: str, round_: int, files: Mapping[str, Any]) -> None:
        self.link_round(module, round_, self.write_files(module, files, f"round_{round_:03d}"))

    def link_round(self, module: str, round_: int, names: list[str]) -> None:
        """Make a round's files (written already, here or by a module's shards) the
        module's latest, and drop the round folders not kept."""
        module_dir = self.root / module
        for name in names:
            module_dir.link(f"round_{round_:03d}/{name}", name)
        if self.keep_rounds is not None:
            self._drop_rounds_before(module_dir, round_ - self.keep_rounds + 1)

    @staticmethod
    def _drop_rounds_before(module_dir: Folder, first_kept: int) -> None:
        """Delete round folders 2 .. first_kept - 1; the latest files are hard links into
        (or copies of) the newest folder, which is always kept."""
        for name in module_dir.folders():
            match = _ROUND_DIR.fullmatch(name)
            if match and 1 < int(match[1]) < first_kept:
                module_dir.delete_folder(name)

    @staticmethod
    def check_names(module: str, files: Mapping[str, Any]) -> None:
        """Refuse file names this writer would not write, before anything is written."""
        for name in files:
            suffix = PurePosixPath(name).suffix
            if PurePosixPath(name).name != name or name.startswith("."):
                raise ModuleError(module, f"result file name {name!r} must be a plain file name")
            if suffix not in WRITABLE:
                raise ModuleError(
                    module,
                    f"cannot write {name}: no writer for {suffix or 'no suffix'}"
                    f" (use {', '.join(WRITABLE)})",
                )

    def write_files(self, module: str, files: Mapping[str, Any], subdir: str = "") -> list[str]:
        """Write a module's files (in `subdir` of its directory); returns their names."""
        self.check_names(module, files)
        directory = self.root / module
        if subdir:
            directory = directory / subdir
        for name, value in files.items():
            try:
                data = encoded(name, value)
            except (ValueError, TypeError) as exc:
                raise ModuleError(module, f"cannot write {name}: {exc}") from None
            directory.write(name, data)
        return list(files)

    def write_json(self, name: str, value: Any) -> None:
        self.root.write(name, encoded(name, value))

    def write_history(self, records: list[Mapping[str, Any]]) -> None:
        """history.jsonl: one line per update, rewritten whole (it follows the checkpoint)."""
        lines = "".join(json.dumps(record) + "\n" for record in records)
        self.root.write(HISTORY, lines.encode())
