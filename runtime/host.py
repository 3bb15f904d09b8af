"""The actor that hosts one module (or one shard of it): decodes its messages, runs
`learn`, encodes the results.

An input arrives either whole (an encoded message Ray resolved for the call) or as parts
(`runtime.parts`): then this actor reads the rows of its own range from them. A shard of
a sharded module writes its own element-wise results and its part of the checkpoint to
the run's storage (`runtime.shard_files`) and returns only a small report and its
messages' rows: nothing element-wise passes through the coordinator.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any, Literal

import numpy as np
import ray

from runtime import codec, parts, process, shard_files
from runtime.collective import GroupMember, TorchCollective
from runtime.errors import MessageError, ModuleError, SerketError
from runtime.module import Module, Progress, Shard, Solo, Update, UpdateContext, no_progress
from runtime.output import row_file
from runtime.peers import PeerCalls
from runtime.progress import BoardProgress

Mode = Literal["learn", "recognize"]


def _with_rows(shape: Any, rows: int) -> tuple[int, ...]:
    """A declared shape, with its first axis (elements) replaced by `rows`."""
    return (rows, *tuple(shape)[1:])


Message = codec.Wire | list[parts.Part]  # an input or backward message, whole or in parts


def _rows_of(payload: Any) -> int:
    return int(payload.shape[0]) if isinstance(payload, np.ndarray) and payload.ndim else 0


def _element_count(received: tuple[str, Any]) -> int:
    """Novel data's element count: the first axis of its first input."""
    sender, payload = received
    if not isinstance(payload, np.ndarray) or payload.ndim == 0:
        raise MessageError(f"forward message from {sender} is not an array")
    return int(payload.shape[0])


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


def _reserved_cpus() -> float | None:
    """The CPUs Ray reserved for this actor; None in a driver (a host built directly)."""
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_assigned_resources().get("CPU")


class ModuleHost:
    """Runs as a Ray actor; the coordinator is its only caller.

    inputs: per input, in connect order: its name, whether it is a module (observations
    learn nothing, so no backward message is encoded for them) and the shape of its
    forward message declared at connect time. output_shape: this module's own forward
    shape, which is also the shape of the backward message it may receive. board: the
    session's `ProgressBoard` actor, which the module's progress reports go to (None:
    progress is not shown). shard: this actor's index and the module's shard count (None:
    unsharded). storage: the run's output and checkpoint locations (`shard_files.Storage`
    fields): a sharded module's shards write their results and checkpoint parts there,
    and every actor reads checkpointed message parts from there. dataset_params: the
    parameters given as a Ray Data dataset, as its blocks (`data_inspection.dataset_parts`).
    learned: the encoded state to start from (a learned module's, Serket's load_dir).
    script_class: the module's class, shipped by Ray, where it cannot be imported.
    peers: the names of the modules it talks to (`runtime.peers`), in connect order.
    """

    def __init__(
        self,
        name: str,
        class_path: str,
        params: bytes,
        inputs: list[dict[str, Any]],
        output_shape: list[int],
        board: Any = None,
        shard: dict[str, int] | None = None,
        storage: dict[str, str] | None = None,
        dataset_params: dict[str, list[dict[str, Any]]] | None = None,
        learned: bytes | None = None,
        script_class: type[Module] | None = None,
        peers: list[str] | None = None,
    ) -> None:
        self._name = name
        self._peers = peers or []
        self._board = board
        self._inputs = inputs
        self._output_shape = tuple(output_shape)
        self._shard = shard or {"index": 0, "count": 1}
        self._storage = None if storage is None else shard_files.Storage(**storage)
        self._sharded = self._shard["count"] > 1
        self._group = GroupMember()
        self._collective = TorchCollective() if self._sharded else Solo()
        process.keep_freed_memory()
        cls = script_class or load_module_class(class_path)
        try:
            self._module = cls(**{**codec.unpack(params), **(dataset_params or {})})
        except (TypeError, ValueError) as exc:
            raise ModuleError(name, f"cannot be built from its parameters: {exc}") from None
        if learned is not None:
            self._module.load_state(codec.unpack(learned))

    def load_state(self, state: bytes) -> None:
        """Restore the module from a checkpoint (before its next update)."""
        self._module.load_state(codec.unpack(state))

    def load_state_file(self, files: list[str]) -> None:
        """Restore this shard from its part of the checkpoint (`files`: every shard's),
        read from the storage; a module whose shards hold one state, from shard 0's."""
        assert self._storage is not None
        own = files[0] if self._module.replicated_state else files[self._shard["index"]]
        self._module.load_state(self._storage.read_state(own))

    def open_group(self, timeout_s: float) -> list[Any]:
        """Shard 0: open a fresh rendezvous for the module's group; returns its address."""
        host = ray.util.get_node_ip_address()
        return [host, self._group.open_store(host, self._shard["count"], timeout_s)]

    def join_group(
        self, host: str, port: int, timeout_s: float, collective_timeout_s: float
    ) -> None:
        """Join the module's process group (every shard at once; it returns when all did);
        a collective then fails after collective_timeout_s (the update deadline)."""
        import torch  # here: modules that never form a group need not import it

        cuda = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
        if cuda:  # NCCL's ranks each on their device: the first Ray gave this actor
            torch.cuda.set_device(0)
        self._group.join(
            host, port, self._shard["index"], self._shard["count"], timeout_s,
            collective_timeout_s, cuda,
        )  # fmt: skip

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
        self, round_: int, backward: Message | None, *inputs: Message, peers: list[Any] = ()
    ) -> tuple[Any, ...]:
        """Returns encoded messages (`codec.pack_wire`): report, files, state, forward
        message, one backward message per input. A shard returns only its report (the
        files and state are written) and its messages: see `_written`. peers: the actors
        of the modules it talks to, in connect order (`runtime.peers`)."""
        calls = PeerCalls(self._peers, list(peers)) if peers else None
        return self._guarded("learn", round_, backward, inputs, None, calls)

    # ---- as the peer of a module that talks to others (`runtime.peers`) --------------
    def join(self, round_: int, *inputs: codec.Wire) -> None:
        """Hand the module the inputs of its last update, to answer questions from."""
        received = [self._received(m, "forward", None) for m in inputs]
        arrays = [
            self._fitting(*message, "forward", [tuple(spec["shape"])])
            for message, spec in zip(received, self._inputs, strict=True)
        ]
        self._as_module_error(f"joining after update {round_}",
                              lambda: self._module.join(arrays, self._context(round_)))  # fmt: skip

    def answer(self, question: str, message: bytes) -> bytes:
        """The module's answer to a peer's question (both msgpack-encoded named arrays)."""
        arrays = codec.unpack(message)
        reply = self._as_module_error(
            f"answering {question!r}", lambda: self._module.answer(question, arrays)
        )
        return codec.pack(reply)

    def settle(self, round_: int) -> tuple[Any, ...]:
        """After the questions: the module's state and messages, as `update` returns them
        (they take the place of those of its round `round_`)."""
        began = time.perf_counter()
        result = self._as_module_error(
            f"settling after update {round_}", lambda: self._module.settle(self._context(round_))
        )
        self._check(result, self._output_shape)
        return self._encoded("learn", round_, time.perf_counter() - began, result)

    def _as_module_error(self, what: str, call: Any) -> Any:
        """call(), its unexpected errors raised as this module's."""
        try:
            return call()
        except SerketError:
            raise
        except NotImplementedError as exc:
            raise ModuleError(self._name, str(exc)) from None
        except Exception as exc:
            raise ModuleError(self._name, f"{what} failed: {type(exc).__name__}: {exc}") from exc

    def _context(self, round_: int, **fields: Any) -> UpdateContext:
        return UpdateContext(
            module=self._name,
            round=round_,
            gpu_ids=[int(i) for i in ray.get_gpu_ids()],
            progress=self._progress_factory(round_),
            collective=self._collective,
            num_cpus=_reserved_cpus(),
            backward_taken=tuple(bool(spec["is_module"]) for spec in self._inputs),
            **fields,
        )

    def recognize(
        self, pass_: int, backward: Message | None, category: bytes, *inputs: Message
    ) -> tuple[Any, ...]:
        """Recognition of novel data (as many rows as its inputs), learning nothing; same
        returns as `update`, with an empty state."""
        return self._guarded("recognize", pass_, backward, inputs, codec.unpack(category))

    def _guarded(
        self,
        mode: Mode,
        round_: int,
        backward: Message | None,
        inputs: tuple[Message, ...],
        category: np.ndarray | None,
        peers: PeerCalls | None = None,
    ) -> tuple[Any, ...]:
        what = f"update {round_}" if mode == "learn" else "recognition"
        return self._as_module_error(
            what, lambda: self._run(mode, round_, backward, inputs, category, peers)
        )

    def _payload(self, message: codec.Wire, kind: codec.MessageKind) -> tuple[str, Any]:
        """A whole encoded message's sender and array."""
        envelope = codec.decode(message, receiver=self._name, kind=kind)
        return envelope.sender, envelope.payload

    def _received(
        self, message: Message, kind: codec.MessageKind, rows: tuple[int, int] | None
    ) -> tuple[str, Any]:
        """A message's sender and array: rows start..stop of it when `rows` is given (a
        shard's range, or all rows of a message in parts), else the whole message."""
        if not isinstance(message, list):
            sender, payload = self._payload(message, kind)
            if rows is None or not isinstance(payload, np.ndarray) or payload.ndim == 0:
                return sender, payload
            return sender, payload[rows[0] : rows[1]]
        if rows is None:
            rows = (0, message[-1]["stop"])

        def decode(part: parts.Part) -> Any:
            if "array" in part:  # a dataset's block, as the float32 modules take
                return np.asarray(ray.get(part["array"]), dtype=np.float32)
            wire = ray.get(part["ref"]) if "ref" in part else self._read_message(part)
            return self._payload(wire, kind)[1]

        try:
            return "its parts", parts.read_rows(message, rows[0], rows[1], decode)
        except (OSError, ValueError) as exc:
            raise MessageError(f"{kind} message to {self._name}: {exc}") from None

    def _read_message(self, part: parts.Part) -> bytes:
        assert self._storage is not None
        return self._storage.read_message(part["message"])

    def _fitting(self, sender: str, payload: Any, kind: str, shapes: list[tuple[int, ...]]) -> Any:
        """The message's array, if it has a shape this module expects."""
        got = getattr(payload, "shape", None)
        if got not in shapes:
            raise MessageError(
                f"{kind} message from {sender} to {self._name} does not fit: "
                f"array of shape {got}, expected {' or '.join(map(str, shapes))}"
            )
        return payload

    def _run(
        self,
        mode: Mode,
        round_: int,
        backward: Message | None,
        inputs: tuple[Message, ...],
        category: np.ndarray | None,
        peers: PeerCalls | None,
    ) -> tuple[Any, ...]:
        # Learning covers the rows declared at connect time; recognition covers the novel
        # data, whose element count (the first axis) is its own.
        index, count = self._shard["index"], self._shard["count"]
        # A source (no inputs) makes its own elements, as many as its output shape says.
        declared = int((self._inputs[0]["shape"] if self._inputs else self._output_shape)[0])
        if count == 1:  # whole messages (or all of their parts), each decoded once
            received = [self._received(m, "forward", None) for m in inputs]
            # Its first input's elements: as declared, unless the data grew since connect
            # (`runtime.growing`) or are novel (recognition).
            total = _element_count(received[0]) if received else declared
            rows, shard = None, Shard(0, 1, 0, total, total)
        else:  # a shard gets its inputs in parts and reads the rows of its own range
            first = inputs[0]
            assert isinstance(first, list)  # the shard group sends every message in parts
            total = declared if mode == "learn" else int(first[-1]["stop"])
            start, stop = parts.ranges(total, count)[index]
            rows, shard = (start, stop), Shard(index, count, start, stop, total)
            received = [self._received(m, "forward", rows) for m in inputs]
        cut = rows is not None
        owned = shard.stop - shard.start
        arrays = [
            self._fitting(*message, "forward", [_with_rows(spec["shape"], owned)])
            for message, spec in zip(received, self._inputs, strict=True)
        ]
        del received
        output_shape = _with_rows(self._output_shape, owned)
        prior = None if backward is None else self._received(backward, "backward", rows)
        if prior is not None and _rows_of(prior[1]) < owned and mode == "learn" and not cut:
            # Sent before the data grew, for fewer elements: this update learns without
            # it, as a first update does.
            prior = None
        if prior is not None:
            prior = self._fitting(*prior, "backward", self._module.backward_shapes(output_shape))
        if category is not None and cut:
            category = category[shard.start : shard.stop]
        context = self._context(round_, category=category, shard=shard, peers=peers)
        if isinstance(self._collective, TorchCollective):
            self._collective.payload_bytes = 0  # counted per call, for its report
        began = time.perf_counter()
        # Serket's recognition mode: a module built to recognise does so at every update.
        method = "recognize" if self._module.recognizing else mode
        result = getattr(self._module, method)(arrays, prior, context)
        seconds = time.perf_counter() - began
        # The decoded inputs (the observations: as large as the data) are not needed to
        # encode the results, the step that needs the most memory: let them go first.
        del arrays, prior
        self._check(result, output_shape)
        try:
            if self._sharded:
                return self._written(mode, round_, seconds, result)
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

    def _encoded(
        self, mode: Mode, round_: int, seconds: float, result: Update, *, with_state: bool = True
    ) -> tuple[Any, ...]:
        """The update's report, files, state (empty unless learning and with_state) and
        messages, encoded as `update` returns them."""
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
            codec.pack_wire(
                {**result.files, **{row_file(n, len(v)): v for n, v in result.rows.items()}}
            ),
            codec.pack_wire(self._module.state() if mode == "learn" and with_state else {}),
            forward,
            *backward_messages,
        )

    def _written(self, mode: Mode, round_: int, seconds: float, result: Update) -> tuple[Any, ...]:
        """A shard's results: its files and checkpoint part written to the storage here;
        returns its report (with the names written) and its messages' rows, encoded."""
        assert self._storage is not None
        index = self._shard["index"]
        # The state goes to the checkpoint part below, not in the reply: taken once.
        report, _files, _state, forward, *backward = self._encoded(
            mode, round_, seconds, Update(result.forward, result.backward, metrics=result.metrics),
            with_state=False,
        )  # fmt: skip
        names = self._storage.write_results(
            self._name, index, round_ if mode == "learn" else None, result.files, result.rows
        )
        record = codec.unpack(report)
        record["files"] = names
        if isinstance(self._collective, TorchCollective):
            record["collective_bytes"] = self._collective.payload_bytes
        if mode == "learn":
            # One copy of a state every shard holds alike: shard 0's.
            once = self._module.replicated_state and index > 0
            record["checkpoint"] = self._storage.write_checkpoint(
                self._name, index, round_, {} if once else self._module.state(), forward,
                {spec["name"]: message for spec, message in zip(self._inputs, backward,
                                                                 strict=True)},
            )  # fmt: skip
        return (codec.pack_wire(record), forward, *backward)

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
