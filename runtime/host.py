"""The actor that hosts one module: decodes its messages, runs `learn`, encodes the results."""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any, Literal

import numpy as np
import ray

from runtime import codec, process
from runtime.errors import MessageError, ModuleError, SerketError
from runtime.module import Module, Progress, Update, UpdateContext, no_progress
from runtime.progress import BoardProgress

Mode = Literal["learn", "recognize"]


def _with_rows(shape: Any, rows: int | None) -> tuple[int, ...]:
    """A declared shape, with its first axis (elements) replaced when `rows` is given."""
    return tuple(shape) if rows is None else (rows, *tuple(shape)[1:])


def _rows(envelope: codec.Envelope) -> int:
    """Novel data's element count: the first axis of its first input."""
    if not isinstance(envelope.payload, np.ndarray) or envelope.payload.ndim == 0:
        raise MessageError(f"forward message from {envelope.sender} is not an array")
    return int(envelope.payload.shape[0])


def load_module_class(path: str) -> type[Module]:
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModuleError(path, f"cannot import the module class on this node: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, Module)):
        raise ModuleError(path, "is not a subclass of runtime.Module")
    return target


class ModuleHost:
    """Runs as a Ray actor; the coordinator is its only caller.

    inputs: per input, in connect order: its name, whether it is a module (observations
    learn nothing, so no backward message is encoded for them) and the shape of its
    forward message declared at connect time. output_shape: this module's own forward
    shape, which is also the shape of the backward message it may receive. board: the
    session's `ProgressBoard` actor, which the module's progress reports go to (None:
    progress is not shown).
    """

    def __init__(
        self,
        name: str,
        class_path: str,
        params: bytes,
        inputs: list[dict[str, Any]],
        output_shape: list[int],
        board: Any = None,
    ) -> None:
        self._name = name
        self._board = board
        self._inputs = inputs
        self._output_shape = tuple(output_shape)
        process.keep_freed_memory()
        cls = load_module_class(class_path)
        try:
            self._module = cls(**codec.unpack(params))
        except (TypeError, ValueError) as exc:
            raise ModuleError(name, f"cannot be built from its parameters: {exc}") from None

    def load_state(self, state: bytes) -> None:
        """Restore the module from a checkpoint (before its next update)."""
        self._module.load_state(codec.unpack(state))

    def describe(self) -> bytes:
        context = ray.get_runtime_context()
        return codec.pack(
            {
                "module": self._name,
                "node_id": context.get_node_id(),
                "node_ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "gpu_ids": [int(i) for i in ray.get_gpu_ids()],
            }
        )

    def update(
        self, round_: int, backward: codec.Wire | None, *inputs: codec.Wire
    ) -> tuple[Any, ...]:
        """Returns encoded messages (`codec.pack_wire`): report, files, state, forward
        message, one backward message per input."""
        return self._guarded("learn", round_, backward, inputs, None)

    def recognize(
        self, pass_: int, backward: codec.Wire | None, category: bytes, *inputs: codec.Wire
    ) -> tuple[Any, ...]:
        """Recognition of novel data (as many rows as its inputs), learning nothing; same
        returns as `update`, with an empty state."""
        return self._guarded("recognize", pass_, backward, inputs, codec.unpack(category))

    def _guarded(
        self,
        mode: Mode,
        round_: int,
        backward: codec.Wire | None,
        inputs: tuple[codec.Wire, ...],
        category: np.ndarray | None,
    ) -> tuple[Any, ...]:
        try:
            return self._run(mode, round_, backward, inputs, category)
        except SerketError:
            raise
        except NotImplementedError as exc:
            raise ModuleError(self._name, str(exc)) from None
        except Exception as exc:
            what = f"update {round_}" if mode == "learn" else "recognition"
            raise ModuleError(self._name, f"{what} failed: {type(exc).__name__}: {exc}") from exc

    def _fitting(self, envelope: codec.Envelope, shape: tuple[int, ...]) -> Any:
        """The envelope's array, if it has the shape this module expects."""
        kind = envelope.kind
        got = getattr(envelope.payload, "shape", None)
        if got != shape:
            raise MessageError(
                f"{kind} message from {envelope.sender} to {self._name} does not fit: "
                f"array of shape {got}, expected {shape}"
            )
        return envelope.payload

    def _run(
        self,
        mode: Mode,
        round_: int,
        backward: codec.Wire | None,
        inputs: tuple[codec.Wire, ...],
        category: np.ndarray | None,
    ) -> tuple[Any, ...]:
        # Learning sees the shapes declared at connect time; recognition sees novel data,
        # whose element count (the first axis) is its own.
        received = [codec.decode(m, receiver=self._name, kind="forward") for m in inputs]
        rows = _rows(received[0]) if mode == "recognize" else None
        arrays = [
            self._fitting(envelope, _with_rows(spec["shape"], rows))
            for envelope, spec in zip(received, self._inputs, strict=True)
        ]
        output_shape = _with_rows(self._output_shape, rows)
        prior = (
            None
            if backward is None
            else self._fitting(
                codec.decode(backward, receiver=self._name, kind="backward"), output_shape
            )
        )
        context = UpdateContext(
            module=self._name,
            round=round_,
            gpu_ids=[int(i) for i in ray.get_gpu_ids()],
            progress=self._progress_factory(round_),
            category=category,
        )
        began = time.perf_counter()
        result = getattr(self._module, mode)(arrays, prior, context)
        seconds = time.perf_counter() - began
        # The decoded inputs (the observations: as large as the data) are not needed to
        # encode the results, the step that needs the most memory: let them go first.
        del received, arrays, prior
        self._check(result, output_shape)
        try:
            return self._encoded(mode, round_, seconds, result)
        except MessageError as exc:
            raise ModuleError(self._name, f"its results cannot be sent: {exc}") from None

    def _progress_factory(self, round_: int) -> Any:
        """`ctx.progress` for this update: reports to the session's board, if any."""
        if self._board is None:
            return no_progress

        def progress(total: int, description: str) -> Progress:
            return BoardProgress(self._board, self._name, round_, total, description)

        return progress

    def _encoded(self, mode: Mode, round_: int, seconds: float, result: Update) -> tuple[Any, ...]:
        """The update's report, files, state and messages, encoded as `update` returns them."""
        forward = codec.encode_wire(
            codec.Envelope(self._name, codec.BROADCAST, "forward", round_, result.forward)
        )
        backward_messages = [
            codec.encode_wire(codec.Envelope(self._name, spec["name"], "backward", round_, message))
            if spec["is_module"] and message is not None
            else None
            for spec, message in zip(self._inputs, result.backward, strict=True)
        ]
        report = {
            "module": self._name,
            "mode": mode,
            "round": round_,
            "seconds": seconds,
            "metrics": {k: float(v) for k, v in result.metrics.items()},
        }
        return (
            codec.pack_wire(report),
            codec.pack_wire(dict(result.files)),
            codec.pack_wire(self._module.state() if mode == "learn" else {}),
            forward,
            *backward_messages,
        )

    def _check(self, result: Update, shape: tuple[int, ...]) -> None:
        if not isinstance(result, Update):
            raise ModuleError(self._name, f"it returned {type(result).__name__}, not Update")
        got = getattr(result.forward, "shape", type(result.forward).__name__)
        if not isinstance(result.forward, np.ndarray) or got != shape:
            raise ModuleError(
                self._name,
                f"forward message must be an array of shape {shape} (declared by "
                f"output_shape at connect time), got {got}",
            )
        if len(result.backward) != len(self._inputs):
            raise ModuleError(
                self._name,
                f"it returned {len(result.backward)} backward messages for "
                f"{len(self._inputs)} inputs",
            )
