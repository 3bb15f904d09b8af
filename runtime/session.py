"""The driver's side of a model: numbering, wiring and calls to the coordinator actor.

Modules and observations are numbered in creation order, as in Serket (module000_obs,
module001_vae, ...). The first `connect()` starts Ray (or joins $RAY_ADDRESS) and the
coordinator actor; from then on every update is a call to the coordinator, whether it
comes from a user's script or from the command line.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from runtime import cluster, codec, data_files, data_inspection, progress, storage, wiring
from runtime import display as display_module
from runtime.checkpoint import data_digest, fingerprint, state_bytes
from runtime.coordinator import Coordinator
from runtime.errors import DataError, MessageError, ModuleError, SerketError
from runtime.growing import GrowingObservation
from runtime.learned import read_learned
from runtime.module import Module, Resources, Shape
from runtime.observation import Observation, validated_data


class Session:
    """One model under construction or running: its numbering, coordinator and output root."""

    def __init__(
        self,
        output_root: str | Path = ".",
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        update_timeout_s: float = 3600.0,
        start_timeout_s: float = 120.0,
        max_restarts: int = 3,
        keep_rounds: int | None = None,
        display: str = "auto",
        verbose: bool = False,
    ) -> None:
        if keep_rounds is not None and (
            not isinstance(keep_rounds, int) or isinstance(keep_rounds, bool) or keep_rounds < 1
        ):
            raise SerketError(
                f"session: keep_rounds must be a positive integer, got {keep_rounds!r}"
            )
        output = storage.Folder(output_root)
        checkpoints = (
            output / "checkpoints" if checkpoint_dir is None else storage.Folder(checkpoint_dir)
        )
        # Local folders as paths (what plots and reports take); URIs as given.
        self.output_root: Path | str = output.local_path() if output.is_local else output.location
        self.checkpoint_dir: Path | str = (
            checkpoints.local_path() if checkpoints.is_local else checkpoints.location
        )
        self.resume = resume
        self.max_restarts = max_restarts
        self.keep_rounds = keep_rounds
        self.address = address
        self.num_cpus = num_cpus
        self.update_timeout_s = update_timeout_s
        self.start_timeout_s = start_timeout_s
        self.startup_seconds: float | None = None
        self.display = display_module.make(display)
        self.verbose = verbose
        self._board: Any = None  # the ProgressBoard actor, unless nothing is displayed
        self._numbers = itertools.count()
        self._coordinator: Any = None
        self._started_ray = False
        self._unwritten = False  # an update may have left files to write (write-behind)
        self._modules: list[str] = []  # registered with the coordinator, in order

    def next_number(self) -> int:
        return next(self._numbers)

    @property
    def coordinator(self) -> Any:
        """The coordinator actor, started (with Ray, if needed) on first use."""
        self.start()
        return self._coordinator

    def start(self) -> None:
        """Start or join Ray and start the coordinator actor, once."""
        if self._coordinator is not None:
            return
        began = time.perf_counter()
        self._started_ray = cluster.connect(
            self.address, num_cpus=self.num_cpus, verbose=self.verbose
        )
        # Pinned to the driver's node so that every result file lands on this machine.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        if not isinstance(self.display, display_module.SilentDisplay):
            self._board = (
                ray.remote(progress.ProgressBoard)
                .options(num_cpus=0, scheduling_strategy=here)
                .remote()
            )
        self._coordinator = (
            ray.remote(Coordinator)
            .options(num_cpus=0, scheduling_strategy=here)
            .remote(
                str(self.output_root),
                str(self.checkpoint_dir),
                resume=self.resume,
                update_timeout_s=self.update_timeout_s,
                start_timeout_s=self.start_timeout_s,
                max_restarts=self.max_restarts,
                keep_rounds=self.keep_rounds,
                fixed_cluster=self._started_ray,
                board=self._board,
            )
        )
        self.startup_seconds = time.perf_counter() - began

    def call(
        self,
        method: str,
        *args: Any,
        who: str,
        what: str,
        timeout_s: float | None,
        shows_progress: bool = False,
    ) -> Any:
        """A coordinator call, bounded; shows_progress: the display follows it meanwhile."""
        coordinator = self.coordinator

        def watch() -> None:
            self.display.waiting(who, self._latest_step())

        follow = shows_progress and self._board is not None
        if follow:
            self._board.clear.remote()  # a step of an earlier call is not this one's
        ref = getattr(coordinator, method).remote(*args)
        return cluster.wait(
            ref, who=who, what=what, timeout_s=timeout_s, while_waiting=watch if follow else None
        )

    def _latest_step(self) -> progress.Step | None:
        """The board's latest report, or None (also if the board does not answer soon:
        the display must never hold up a run)."""
        try:
            return progress.decoded(ray.get(self._board.latest.remote(), timeout=1.0))
        except (ray.exceptions.RayError, TimeoutError):
            return None

    def plan(self, rounds: int) -> None:
        """Say how many rounds the caller will run: the display then shows round r/N."""
        self.display.rounds = rounds

    def _put_data(self, sender: str, data: np.ndarray) -> tuple[list[Any], codec.Wire]:
        """Data as a forward message in the object store, once however many read it.

        The list keeps Ray from resolving the reference on its way to the coordinator,
        which only passes it on to the modules. Also returns the encoded message.
        """
        envelope = codec.Envelope(sender, codec.BROADCAST, "forward", 0, data)
        self.start()  # before ray.put, which would otherwise start Ray without our options
        try:
            encoded = codec.encode_wire(envelope)
        except MessageError as exc:
            raise DataError(sender, f"cannot be sent to the modules: {exc}") from None
        return [ray.put(encoded)], encoded

    def register_observation(self, handle: ObservationHandle) -> None:
        observation = handle.observation
        if observation.files is not None or observation.dataset is not None:
            self._register_on_cluster(handle)
            return
        seen = None
        if isinstance(observation, GrowingObservation):
            saved = self.call("grown", handle.full_name, who=handle.full_name,
                              what="resume", timeout_s=self.start_timeout_s)  # fmt: skip
            seen = None if saved is None else _rows_of(saved)
            observation.start(seen)
        data = observation.data
        assert data is not None
        message, encoded = self._put_data(handle.full_name, data)
        # Checkpoints written before data digests took the values recorded the encoded
        # message's sha256 instead; a resumed run accepts either.
        digests = [data_digest(data), *([fingerprint(encoded)] if self.resume else [])]
        self.call(
            "add_observation", handle.full_name, message, list(data.shape), digests,
            who=handle.full_name, what="registration", timeout_s=self.start_timeout_s,
        )  # fmt: skip
        if isinstance(observation, GrowingObservation) and seen is None:
            self._grown(handle.full_name, message, data, data)  # its first rows, kept

    def grow(self, handle: ObservationHandle) -> None:
        """A growing observation takes in what arrived; its readers then see all of it."""
        observation = handle.observation
        assert isinstance(observation, GrowingObservation)
        arrived = observation.take()
        if arrived is not None:
            assert observation.data is not None
            message, _ = self._put_data(handle.full_name, observation.data)
            self._grown(handle.full_name, message, observation.data, arrived)

    def _grown(self, name: str, message: list[Any], data: np.ndarray, rows: np.ndarray) -> None:
        self.call(
            "grow", name, message, list(data.shape), data_digest(data),
            state_bytes({"rows": rows}), who=name, what="growth",
            timeout_s=self.start_timeout_s,
        )  # fmt: skip

    def _register_on_cluster(self, handle: ObservationHandle) -> None:
        """An observation of files or of a Ray Data dataset: inspected on the cluster,
        sent on as parts (files or blocks, with their rows) that the actors read."""
        self.start()
        observation = handle.observation
        if observation.files is not None:
            described, whole = data_inspection.describe(observation.files, handle.full_name)
            where = [{"npy": d["file"]} for d in described]
        else:
            described, whole = data_inspection.describe_dataset(
                observation.dataset, observation.column, handle.full_name
            )
            where = [{"array": d["block"]} for d in described]
        message = [
            {"start": d["start"], "stop": d["start"] + d["rows"], **place}
            for d, place in zip(described, where, strict=True)
        ]
        shape = (message[-1]["stop"], *described[0]["row_shape"])
        observation.described(shape)
        self.call(
            "add_observation", handle.full_name, message, list(shape), [whole],
            who=handle.full_name, what="registration", timeout_s=self.start_timeout_s,
        )  # fmt: skip

    def register_module(
        self,
        handle: ModuleHandle,
        inputs: list[str],
        shape: Shape,
        learned: bytes | None = None,
        peers: list[str] | None = None,
    ) -> int:
        """Registers the module and starts its actor; returns rounds restored.
        learned: the encoded state it starts from (Serket's load_dir), if any. peers: the
        modules it talks to (`Module.connect_peers`), if any."""
        module = handle.module
        params, blocks = self._dataset_params(handle.full_name, module.get_params(), shape[0])
        spec = codec.pack(
            {
                "name": handle.full_name,
                "class_path": class_path(module),
                "params": params,
                "inputs": inputs,
                **({"peers": peers} if peers else {}),
                "output_shape": list(shape),
                "shards": module.shards,
                "resources": {
                    "num_cpus": handle.resources.num_cpus,
                    "num_gpus": handle.resources.num_gpus,
                    "custom": dict(handle.resources.custom),
                    "labels": dict(handle.resources.labels),
                },
            }
        )
        self._modules.append(handle.full_name)
        return self.call(
            "add_module", spec, blocks, learned, script_class(module),
            who=handle.full_name, what="registration", timeout_s=self.start_timeout_s,
        )  # fmt: skip

    def _dataset_params(
        self, name: str, params: dict[str, Any], elements: int
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """Parameters given as a Ray Data dataset (labels, say: `category`), inspected on
        the cluster like an observation's: in the module's configuration, their digest;
        to its actors, their blocks as parts (references, passed by Ray), of which each
        reads the rows it owns."""
        plain, blocks = dict(params), {}
        for key, value in params.items():
            if not data_files.is_dataset(value):
                continue
            self.start()
            parts, whole = data_inspection.dataset_parts(value, f"{name} {key}", ndim=1)
            if parts[-1]["stop"] != elements:
                raise ModuleError(
                    name, f"{key} has {parts[-1]['stop']} rows for {elements} elements"
                )
            plain[key], blocks[key] = whole, parts
        return plain, blocks

    def update(self, name: str, *, write_behind: bool = False) -> dict[str, Any]:
        # The coordinator enforces the update's deadline (and start-up's); this one is
        # only a backstop in case the coordinator itself stops answering.
        backstop = self.update_timeout_s + self.start_timeout_s + 60
        self._unwritten |= write_behind
        answer = self.call("update", name, write_behind, who=name, what="update",
                           timeout_s=backstop, shows_progress=True)  # fmt: skip
        report = codec.unpack(answer)
        self._unwritten = write_behind  # a plain update waits for every earlier write too
        self.display.done(report)
        return report

    def flush(self) -> None:
        """Return once the result files and checkpoints of every update are written."""
        if self._unwritten:
            self.call("flush", who="coordinator", what="writing results",
                      timeout_s=self.update_timeout_s)  # fmt: skip
            self._unwritten = False

    def recognize(
        self,
        data: Mapping[Observation, Any],
        *,
        category: Mapping[Module, Any] | None = None,
        order: Sequence[Module] | None = None,
        passes: int = 1,
    ) -> list[dict[str, Any]]:
        """Serket's recognition mode: novel data through the learned model, learning nothing.

        data: novel data per observation (as many features as it learned from, any number
        of elements). Each module in `order` (default: every module, in creation order)
        runs `recognize` once per pass and writes ``*_recog`` files beside its learning
        results; with passes > 1, backward messages from the pass before reach the modules
        below. category: true labels per module, used only to score (e.g. acc_recog.txt).
        Returns the modules' reports.
        """
        if not isinstance(passes, int) or passes < 1:
            raise ModuleError("recognition", f"passes must be a positive integer, got {passes!r}")
        messages, shapes = {}, {}
        for observation, values in data.items():
            if not isinstance(observation, Observation):
                raise ModuleError(
                    "recognition", f"data must be keyed by Observation, got {observation!r}"
                )
            name = observation.full_name
            array = validated_data(values, f"novel data for {name}")
            messages[name] = self._put_data(name, array)[0]
            shapes[name] = list(array.shape)
        names = self._modules if order is None else [m.full_name for m in order]
        labels = {m.full_name: np.asarray(y) for m, y in (category or {}).items()}
        backstop = (self.update_timeout_s + self.start_timeout_s) * passes * len(names) + 60
        reports = codec.unpack(self.call(
            "recognize", messages, shapes, list(names), codec.pack(labels), passes,
            who="recognition", what="recognition", timeout_s=backstop, shows_progress=True,
        ))  # fmt: skip
        for report in reports:
            self.display.done(report)
        return reports

    def status(self) -> dict[str, Any]:
        """Rounds done per module, how many times module actors were restarted, and where
        the coordinator runs (its process id and node's address)."""
        found = self.call(
            "status", who="coordinator", what="status", timeout_s=self.start_timeout_s
        )
        return codec.unpack(found)

    def placements(self) -> list[dict[str, Any]]:
        """Where each module's actor runs: node, IP, process id, accelerators."""
        # Each module's start-up is bounded by the coordinator; this is only a backstop.
        backstop = self.start_timeout_s * max(1, len(self._modules)) + 60
        described = self.call("placements", who="coordinator", what="placements",
                              timeout_s=backstop)  # fmt: skip
        return codec.unpack(described)

    def close(self) -> None:
        """Write what updates left to write (a failure is only warned of: call `flush()`
        to have it raised), then stop the coordinator (its module actors go with it) and
        Ray, if we started it."""
        try:
            self.flush()
        except SerketError as exc:  # cleanup does not raise; the last checkpoint stays whole
            warnings.warn(f"serket-ray: results not written: {exc}", stacklevel=2)
        finally:
            self._unwritten = False
            self.display.close()
            if self._coordinator is not None:
                # Its shard groups' placement groups, which outlive it otherwise (a
                # coordinator already gone took its actors with it).
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(self._coordinator.close.remote(), timeout=10)
                ray.kill(self._coordinator)
                self._coordinator = None
            if self._board is not None:
                ray.kill(self._board)
                self._board = None
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False


def class_path(module: Module) -> str:
    """Where an actor imports the module's class from, ``package.file:Class``; for a
    class defined in the running script, its name there (the class itself travels)."""
    cls = type(module)
    return f"{cls.__module__}:{cls.__qualname__}"


def script_class(module: Module) -> type[Module] | None:
    """The module's class when actors cannot import it: defined in the running script
    (``__main__``) or inside a function, as Serket's examples define their VAEs. It goes
    to the actors as Ray ships code (by value, with what it refers to); messages and
    state still travel as msgpack. None for an importable class: actors import it."""
    cls = type(module)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return cls
    return None


def _rows_of(saved: bytes) -> np.ndarray:
    with np.load(io.BytesIO(saved), allow_pickle=False) as arrays:
        return arrays["rows"]


class ObservationHandle:
    def __init__(self, observation: Observation) -> None:
        self.observation = observation
        self.session = current()
        self.full_name = f"module{self.session.next_number():03d}_{observation.name}"
        self.registered = False
        self.grows = isinstance(observation, GrowingObservation)

    @property
    def output_shape(self) -> Shape:
        return self.observation.shape

    def ensure_registered(self) -> None:
        if not self.registered:
            self.session.register_observation(self)
            self.registered = True


class ModuleHandle:
    def __init__(self, module: Module) -> None:
        self.module = module
        self.session = current()
        self.full_name = f"module{self.session.next_number():03d}_{module.name}"
        self.inputs: list[ModuleHandle | ObservationHandle] = []
        self.peers: list[ModuleHandle] = []
        self.output_shape: Shape | None = None
        self.rounds_done = 0
        self.resources = module.resources
        self.grows = False  # fed, directly or not, by a growing observation

    def place(self, resources: Resources) -> None:
        if self.inputs:
            raise ModuleError(self.full_name, "place() must come before connect()")
        self.resources = resources

    def ensure_registered(self) -> None:
        if self.output_shape is None:
            if not self.module.source:
                raise ModuleError(self.full_name, "is used as an input before its own connect()")
            self.connect(())  # a source has nothing to connect to: as Serket, it needs no call

    def connect(self, inputs: tuple[Any, ...]) -> None:
        if self.output_shape is not None:
            raise ModuleError(
                self.full_name, "connect() was already called; a module connects once"
            )
        if self.module.source and inputs:
            raise ModuleError(
                self.full_name, "makes its data itself and takes no inputs: connect() it to none"
            )
        if not inputs and not self.module.source:
            raise ModuleError(self.full_name, "connect() needs at least one module or observation")
        handles = []
        for position, item in enumerate(inputs):
            if not isinstance(item, (Module, Observation)):
                raise ModuleError(
                    self.full_name,
                    f"connect() argument {position} is a {type(item).__name__}, not a module or "
                    "Observation (wrap data in runtime.Observation(...))",
                )
            if item._handle.session is not self.session:
                raise ModuleError(self.full_name, f"{item.full_name} belongs to another session")
            handles.append(item._handle)
        shapes = []
        for handle in handles:
            handle.ensure_registered()
            shapes.append(handle.output_shape)
        self.grows = any(handle.grows for handle in handles)
        if self.grows and self.module.shards > 1:
            raise ModuleError(
                self.full_name,
                "a sharded module cannot take data that grow (a GrowingObservation below it)",
            )
        try:
            output_shape = tuple(self.module.output_shape(shapes))
        except ValueError as exc:
            raise ModuleError(self.full_name, str(exc)) from None
        learned = read_learned(self.module, self.full_name, shapes)
        self.rounds_done = self.session.register_module(
            self, [h.full_name for h in handles], output_shape, learned
        )
        self.inputs = handles
        self.output_shape = output_shape

    def connect_peers(self, peers: tuple[Any, ...]) -> None:
        if self.output_shape is not None:
            raise ModuleError(
                self.full_name, "connect() was already called; a module connects once"
            )
        if len(peers) < 2:
            raise ModuleError(self.full_name, "connect_peers() needs two modules or more")
        handles = []
        for position, item in enumerate(peers):
            if not isinstance(item, Module):
                raise ModuleError(
                    self.full_name, f"peer {position} is a {type(item).__name__}, not a module"
                )
            if item._handle.session is not self.session:
                raise ModuleError(self.full_name, f"{item.full_name} belongs to another session")
            if item._handle.output_shape is None:
                raise ModuleError(
                    self.full_name, f"{item.full_name} must be connected before it joins as a peer"
                )
            if item.shards > 1:
                raise ModuleError(
                    self.full_name, f"{item.full_name} has shards; a peer must be one actor"
                )
            handles.append(item._handle)
        if len({h.full_name for h in handles}) < len(handles):
            raise ModuleError(self.full_name, "connect_peers() got one module twice")
        try:
            output_shape = tuple(self.module.output_shape([h.output_shape for h in handles]))
        except ValueError as exc:
            raise ModuleError(self.full_name, str(exc)) from None
        self.rounds_done = self.session.register_module(
            self, [], output_shape, peers=[h.full_name for h in handles]
        )
        self.peers = handles
        self.output_shape = output_shape

    def update(self, *, write_behind: bool = False) -> dict[str, Any]:
        if self.module.source:
            self.ensure_registered()
        elif not self.inputs and not self.peers:
            raise ModuleError(
                self.full_name, "update() called before connect(); connect it to its inputs first"
            )
        for handle in self.inputs:  # what arrived joins the data of the round it reads
            if isinstance(handle, ObservationHandle) and handle.grows:
                self.session.grow(handle)
        report = self.session.update(self.full_name, write_behind=write_behind)
        self.rounds_done = report["round"]
        return report


def _new_handle(item: Module | Observation) -> ObservationHandle | ModuleHandle:
    """The handle a module or observation gets when built (`wiring.attach`)."""
    return ObservationHandle(item) if isinstance(item, Observation) else ModuleHandle(item)


wiring.use_driver(_new_handle)

_current: Session | None = None


def current() -> Session:
    """The session new modules join; created with defaults on first use."""
    global _current
    if _current is None:
        _current = Session()
    return _current


def init(output_root: str | Path = ".", *, address: str | None = None, **options: Any) -> Session:
    """Start a new session (numbering from module000) writing results under `output_root`:
    a local folder, a shared file system's path, or an object-storage URI such as
    "s3://bucket/run" (`runtime.storage`; every node must reach it).

    `address` joins an existing Ray cluster; without it $RAY_ADDRESS is used, else an
    embedded local Ray starts. `resume=True` continues the run checkpointed under
    `checkpoint_dir` (default: output_root/checkpoints): modules connected as before pick
    up their state and rounds. Options: num_cpus, update_timeout_s, start_timeout_s,
    max_restarts (per update, for actors lost to crashes or dead nodes), keep_rounds (the
    round folders kept besides the first: the last N; default all).
    """
    global _current
    if _current is not None:
        _current.close()
    _current = Session(output_root, address=address, **options)
    return _current


def recognize(data: Mapping[Observation, Any], **options: Any) -> list[dict[str, Any]]:
    """Recognition in the current session: see `Session.recognize`."""
    return current().recognize(data, **options)


def shutdown() -> None:
    """Close the current session; the next module created starts a fresh one."""
    global _current
    if _current is not None:
        _current.close()
        _current = None
