"""The actor that hosts one module: decodes its messages, runs `learn`, encodes the results."""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any

import numpy as np
import ray
from ray.experimental import tqdm_ray

from runtime import codec
from runtime.errors import ModuleError, SerketError
from runtime.module import Module, Update, UpdateContext


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


def _progress(total: int, description: str) -> tqdm_ray.tqdm:
    # tqdm_ray draws the bar in the driver's terminal, wherever the actor runs.
    return tqdm_ray.tqdm(total=total, desc=description)


class ModuleHost:
    """Runs as a Ray actor; the coordinator is its only caller.

    inputs: the names of the module's inputs in connect order, with whether each is a
    module (observations learn nothing, so no backward message is encoded for them).
    """

    def __init__(
        self, name: str, class_path: str, params: bytes, inputs: list[tuple[str, bool]]
    ) -> None:
        self._name = name
        self._inputs = inputs
        cls = load_module_class(class_path)
        try:
            self._module = cls(**codec.unpack(params))
        except (TypeError, ValueError) as exc:
            raise ModuleError(name, f"cannot be built from its parameters: {exc}") from None

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

    def update(self, round_: int, backward: bytes | None, *inputs: bytes) -> tuple[Any, ...]:
        """Returns msgpack bytes: report, files, forward message, one backward message per input."""
        try:
            return self._update(round_, backward, inputs)
        except SerketError:
            raise
        except Exception as exc:
            raise ModuleError(
                self._name, f"update {round_} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _update(
        self, round_: int, backward: bytes | None, inputs: tuple[bytes, ...]
    ) -> tuple[Any, ...]:
        arrays = [codec.decode(m, receiver=self._name, kind="forward").payload for m in inputs]
        prior = None
        if backward is not None:
            prior = codec.decode(backward, receiver=self._name, kind="backward").payload
        context = UpdateContext(
            module=self._name,
            round=round_,
            gpu_ids=[int(i) for i in ray.get_gpu_ids()],
            progress=_progress,
        )
        began = time.perf_counter()
        result = self._module.learn(arrays, prior, context)
        seconds = time.perf_counter() - began
        self._check(result, arrays)
        forward = codec.encode(
            codec.Envelope(self._name, codec.BROADCAST, "forward", round_, result.forward)
        )
        backward_messages = [
            codec.encode(codec.Envelope(self._name, name, "backward", round_, message))
            if is_module and message is not None
            else None
            for (name, is_module), message in zip(self._inputs, result.backward, strict=True)
        ]
        report = {
            "module": self._name,
            "round": round_,
            "seconds": seconds,
            "metrics": {k: float(v) for k, v in result.metrics.items()},
        }
        return (codec.pack(report), codec.pack(dict(result.files)), forward, *backward_messages)

    def _check(self, result: Update, arrays: list[np.ndarray]) -> None:
        if not isinstance(result, Update):
            raise ModuleError(self._name, f"learn() returned {type(result).__name__}, not Update")
        if (
            not isinstance(result.forward, np.ndarray)
            or result.forward.shape[0] != arrays[0].shape[0]
        ):
            raise ModuleError(
                self._name,
                f"forward message must be an array with one row per element "
                f"({arrays[0].shape[0]}), got {getattr(result.forward, 'shape', result.forward)}",
            )
        if len(result.backward) != len(self._inputs):
            raise ModuleError(
                self._name,
                f"learn() returned {len(result.backward)} backward messages for "
                f"{len(self._inputs)} inputs",
            )
