"""Serket's `load_dir`: what a learned module wrote, read back for a new model.

Read in the driver, at `connect()`, through the run's storage layer (a local folder or
an object-storage URI), checked against the new inputs, then handed to the module's
actors as their starting state: a bad `load_dir` fails before any actor starts, and the
actors need not see the folder.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import numpy as np

from runtime import codec, storage
from runtime.errors import ModuleError, SerketError
from runtime.module import Module, Shape


def read_learned(module: Module, name: str, input_shapes: Sequence[Shape]) -> bytes | None:
    """The msgpack-encoded state `module` starts from (None without a load_dir)."""
    if module.load_dir is None:
        return None
    where = f"load_dir {module.load_dir!r}"
    try:
        folder = storage.folder(module.load_dir)
        found = folder.exists(module.model_file)
    except (SerketError, OSError) as exc:
        raise ModuleError(name, f"{where} cannot be read: {exc}") from None
    if not found:
        raise ModuleError(
            name,
            f"{where} holds no learned model ({module.model_file} is missing): give the "
            f"folder of a learned {type(module).__name__}, such as module002_{module.kind}",
        )
    try:
        with np.load(io.BytesIO(folder.read(module.model_file)), allow_pickle=False) as arrays:
            model = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModuleError(name, f"{where}: {module.model_file} cannot be read: {exc}") from None
    if not model:
        raise ModuleError(name, f"{where}: {module.model_file} holds nothing learned")
    state = module.learned_state(model)
    try:
        module.check_learned(state, input_shapes)
    except KeyError as exc:
        raise ModuleError(
            name, f"{where}: {module.model_file} is not a {type(module).__name__}'s: it lacks {exc}"
        ) from None
    except ValueError as exc:
        raise ModuleError(
            name, f"the model learned in {module.load_dir!r} does not fit: {exc}"
        ) from None
    return codec.pack(state)
