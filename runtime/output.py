"""Result files: per module and per round, written atomically on the driver's machine.

Layout under the output root::

    module001_vae/round_003/z_learn.txt   every round kept (or the first and last few)
    module001_vae/z_learn.txt             the latest round (a hard link to the above)
    module001_vae/z_recog.txt             recognition of novel data (the last one run)
    recognition.json                      one record per module recognition
    history.jsonl                         one line per module update: round, seconds, metrics
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ModuleError


def _atomic(path: Path, write: Any) -> None:
    """Write through `write(file)` to a temporary name, then rename: no truncated files."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)


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


def _write_value(path: Path, value: Any) -> None:
    suffix = path.suffix
    if suffix == ".txt":
        array = np.asarray(value)
        fmt = "%d" if array.dtype.kind in "biu" else "%.7g"
        _atomic(path, lambda f: np.savetxt(f, np.atleast_1d(array), fmt=fmt))
    elif suffix == ".npy":
        _atomic(path, lambda f: np.save(f, np.asarray(value), allow_pickle=False))
    elif suffix == ".npz":
        arrays = {key: np.asarray(v) for key, v in dict(value).items()}
        _atomic(path, lambda f: np.savez(f, **arrays))
    else:  # ".json": `ResultWriter.check_names` lets no other suffix through
        _atomic(path, lambda f: f.write(json.dumps(value, indent=2).encode()))


def _link_latest(source: Path, latest: Path) -> None:
    temporary = latest.with_name(latest.name + ".tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:  # file systems without hard links
        shutil.copyfile(source, temporary)
    os.replace(temporary, latest)


def remove_results(root: Path) -> None:
    """Delete what result writers wrote under `root` (module folders, the run's files) and
    nothing else: the earlier run's files, before a new run replaces it."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.is_dir() and _MODULE_DIR.fullmatch(path.name):
            shutil.rmtree(path)
        elif path.is_file() and path.name in RUN_FILES:
            path.unlink()


class ResultWriter:
    """keep_rounds: per module, the round folders kept besides the first (the starting
    point that plots compare against): the last `keep_rounds`, or all when None. A round's
    files can be as large as the data (a VAE's reconstructions), so a long run on a large
    data set would otherwise fill the disk."""

    def __init__(self, root: Path, keep_rounds: int | None = None) -> None:
        self.root = root
        self.keep_rounds = keep_rounds
        root.mkdir(parents=True, exist_ok=True)

    def write_round(self, module: str, round_: int, files: Mapping[str, Any]) -> None:
        self.link_round(module, round_, self.write_files(module, files, f"round_{round_:03d}"))

    def link_round(self, module: str, round_: int, names: list[str]) -> None:
        """Make a round's files (written already, here or by a module's shards) the
        module's latest, and drop the round folders not kept."""
        module_dir = self.root / module
        for name in names:
            _link_latest(module_dir / f"round_{round_:03d}" / name, module_dir / name)
        if self.keep_rounds is not None:
            self._drop_rounds_before(module_dir, round_ - self.keep_rounds + 1)

    @staticmethod
    def _drop_rounds_before(module_dir: Path, first_kept: int) -> None:
        """Delete round folders 2 .. first_kept - 1; the latest files are hard links into
        the newest folder, which is always kept."""
        for path in module_dir.iterdir():
            match = _ROUND_DIR.fullmatch(path.name)
            if match and path.is_dir() and 1 < int(match[1]) < first_kept:
                shutil.rmtree(path)

    @staticmethod
    def check_names(module: str, files: Mapping[str, Any]) -> None:
        """Refuse file names this writer would not write, before anything is written."""
        for name in files:
            if Path(name).name != name or name.startswith("."):
                raise ModuleError(module, f"result file name {name!r} must be a plain file name")
            if Path(name).suffix not in WRITABLE:
                raise ModuleError(
                    module,
                    f"cannot write {name}: no writer for {Path(name).suffix or 'no suffix'}"
                    f" (use {', '.join(WRITABLE)})",
                )

    def write_files(self, module: str, files: Mapping[str, Any], subdir: str = "") -> list[str]:
        """Write a module's files (in `subdir` of its directory); returns their names."""
        self.check_names(module, files)
        directory = self.root / module / subdir
        directory.mkdir(parents=True, exist_ok=True)
        for name, value in files.items():
            try:
                _write_value(directory / name, value)
            except (ValueError, TypeError) as exc:
                raise ModuleError(module, f"cannot write {name}: {exc}") from None
        return list(files)

    def write_json(self, name: str, value: Any) -> None:
        _write_value(self.root / name, value)

    def write_history(self, records: list[Mapping[str, Any]]) -> None:
        """history.jsonl: one line per update, rewritten whole (it follows the checkpoint)."""
        lines = "".join(json.dumps(record) + "\n" for record in records)
        _atomic(self.root / HISTORY, lambda f: f.write(lines.encode()))
