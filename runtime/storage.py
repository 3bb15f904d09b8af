"""A run's storage: a local folder, a path on a shared file system, or an object-storage
URI (``s3://bucket/run``, ``gs://bucket/run``, with pyarrow's query options such as
``?region=...`` or ``?endpoint_override=host:port&scheme=http``), as Ray Train's
`storage_path` takes them.

Everything a run writes (results, checkpoints) goes through `Folder`, over pyarrow.fs,
so that one code path serves all three. What an object store lacks is done here: it has
no atomic rename, but an object appears whole only when its upload closes, so a write
there is one put; it has no hard links, so a round's "latest" files are copies there
(server-side). Credentials come the way pyarrow finds them (environment variables,
profiles, instance roles), on every node that writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow.fs as pafs

from runtime.errors import SerketError

# File systems with an atomic rename (a write goes to a temporary name first) and those
# where an object appears only once whole (a write is one put).
_RENAMING = ("local", "hdfs")


def is_uri(location: str | os.PathLike[str]) -> bool:
    return "://" in os.fspath(location)


def folder(location: Where) -> Folder:
    """`location` as a Folder (a Folder is taken as it is)."""
    return location if isinstance(location, Folder) else Folder(location)


class Folder:
    """A folder in the run's storage; `location` is a local path or a URI."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        text = os.fspath(location)
        if is_uri(text):
            try:
                self.filesystem, self.path = pafs.FileSystem.from_uri(text)
            except (ValueError, OSError) as exc:
                raise SerketError(f"storage {text!r} cannot be opened: {exc}") from None
            self.location = text
        else:
            self.filesystem, self.path = pafs.LocalFileSystem(), str(Path(text).resolve())
            self.location = self.path

    def __truediv__(self, name: str) -> Folder:
        """The sub folder `name` (made when something is written into it)."""
        child = object.__new__(Folder)
        child.filesystem, child.path = self.filesystem, f"{self.path}/{name}"
        if is_uri(self.location):  # the name goes into the URI's path, before its query
            parts = urlsplit(self.location)
            child.location = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))
        else:
            child.location = child.path
        return child

    def __str__(self) -> str:
        return self.location

    @property
    def is_local(self) -> bool:
        return self.filesystem.type_name == "local"

    def local_path(self) -> Path:
        """This folder on this machine's disk (for what only local files take: plots)."""
        if not self.is_local:
            raise ValueError(f"{self.location} is not a local folder")
        return Path(self.path)

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def write(self, name: str, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        """The file `name` (any bytes-like data), whole or not at all: a reader never
        sees a truncated one."""
        self.filesystem.create_dir(self.path, recursive=True)
        if self.filesystem.type_name in _RENAMING:
            temporary = self._file(name + ".tmp")
            with self.filesystem.open_output_stream(temporary) as stream:
                stream.write(data)
            self.filesystem.move(temporary, self._file(name))
        else:
            with self.filesystem.open_output_stream(self._file(name)) as stream:
                stream.write(data)

    def read(self, name: str) -> bytes:
        with self.filesystem.open_input_stream(self._file(name)) as stream:
            return stream.read()

    def exists(self, name: str | None = None) -> bool:
        """Whether the file `name` (or this folder, with none) is there."""
        info = self.filesystem.get_file_info(self.path if name is None else self._file(name))
        return info.type != pafs.FileType.NotFound

    def _entries(self, kind: pafs.FileType) -> list[str]:
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        infos = self.filesystem.get_file_info(selector)
        return sorted(info.base_name for info in infos if info.type == kind)

    def files(self) -> list[str]:
        """The names of the files directly in this folder (none if it is not there)."""
        return self._entries(pafs.FileType.File)

    def folders(self) -> list[str]:
        return self._entries(pafs.FileType.Directory)

    def delete(self, name: str) -> None:
        """Delete the file `name`, if it is there."""
        if self.exists(name):
            self.filesystem.delete_file(self._file(name))

    def delete_folder(self, name: str) -> None:
        """Delete the sub folder `name` and everything in it, if it is there."""
        if self.exists(name):
            self.filesystem.delete_dir(self._file(name))

    def link(self, source: str, target: str) -> None:
        """Make `target` (a path under this folder) hold what `source` holds: a hard link
        on local disks (no copy of a large round's files), a copy elsewhere."""
        if self.is_local:
            temporary = Path(self._file(target + ".tmp"))
            temporary.unlink(missing_ok=True)
            try:
                os.link(self._file(source), temporary)
            except OSError:  # file systems without hard links
                self.filesystem.copy_file(self._file(source), str(temporary))
            os.replace(temporary, self._file(target))
        else:
            self.filesystem.copy_file(self._file(source), self._file(target))


Where = str | os.PathLike[str] | Folder  # a local path, a URI, or a Folder of either
