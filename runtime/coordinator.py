"""The coordinator actor: owns the module graph, runs updates, routes messages, recovers.

Messages move by object reference: a module's update returns its forward and backward
messages as separate Ray objects, and the coordinator hands the references to the next
module's update, which reads them from Ray's object store. The coordinator is pinned to
the driver's node: it writes the result files there and, after every update, a
checkpoint (module state, a copy of its messages, position), so it does fetch each
message once, to save it. Those writes go through a `WriteQueue`: an update called with
write_behind=True returns once its messages are routed, and its files are written while
the next update runs.

A module actor that dies (killed, out of memory, node lost) is started again from the
last checkpoint and its interrupted update runs again, up to `max_restarts` times.

A sharded module runs as a `ShardGroup`. Its messages are parts (`runtime.parts`), one
per shard, routed by reference: the coordinator never fetches them. Its shards write
their own results and checkpoint parts; the coordinator links the round's files and
commits the manifest that names the parts.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import ray

from runtime import cluster, codec
from runtime.checkpoint import (
    CheckpointStore,
    Manifest,
    digest,
    file_name,
    rows_file,
    state_bytes,
)
from runtime.errors import ActorLost, CallTimeout, CheckpointError, ModuleError
from runtime.host import ModuleHost
from runtime.output import PLACEMENTS, RECOGNITION, ResultWriter
from runtime.shard_files import Storage
from runtime.shard_group import ShardGroup
from runtime.storage import Folder
from runtime.write_queue import WriteQueue

T = TypeVar("T")


@dataclass
class _Entry:
    name: str
    spec: dict[str, Any]
    config: str  # digest of class, parameters, inputs and shape
    rounds: int = 0
    actor: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    ready: list[Any] = field(default_factory=list)  # start-up calls: resolve once it is up
    placement: dict[str, Any] | None = None
    group: ShardGroup | None = None  # a sharded module's actors (then `actor` is None)
    dataset_params: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    learned: bytes | None = None  # the encoded state it starts from (Serket's load_dir)
    script_class: Any = None  # its class, when the actors cannot import it

    @property
    def shards(self) -> int:
        return int(self.spec.get("shards", 1))


def _ray_options(resources: dict[str, Any]) -> dict[str, Any]:
    num_gpus = resources["num_gpus"]
    if num_gpus == "auto":  # re-read at every start: a restarted actor fits what is left
        num_gpus = 1 if cluster.cluster_has_gpu() else 0
    options = {"num_cpus": resources["num_cpus"], "num_gpus": num_gpus}
    if resources["custom"]:
        options["resources"] = resources["custom"]
    if resources["labels"]:
        options["label_selector"] = resources["labels"]
    return options


class Coordinator:
    def __init__(
        self,
        output_root: str,
        checkpoint_dir: str,
        *,
        resume: bool,
        update_timeout_s: float,
        start_timeout_s: float,
        max_restarts: int,
        keep_rounds: int | None = None,
        fixed_cluster: bool = False,
        board: Any = None,
    ) -> None:
        """board: the session's `ProgressBoard` actor, handed to every module actor."""
        self._writer = ResultWriter(Folder(output_root), keep_rounds)
        self._writes = WriteQueue()
        self._store = CheckpointStore(Folder(checkpoint_dir))
        self._storage = Storage(output_root, checkpoint_dir)
        self._resuming = resume
        self._manifest = self._store.load() if resume else Manifest()
        self._update_timeout_s = update_timeout_s
        self._start_timeout_s = start_timeout_s
        self._max_restarts = max_restarts
        self._fixed_cluster = fixed_cluster  # the embedded instance: no node will join
        self._board = board
        self._shapes: dict[str, list[int]] = {}  # forward-message shape of every node
        self._observations: set[str] = set()
        self._modules: dict[str, _Entry] = {}
        self._forward: dict[str, Any] = {}  # latest forward message of each node
        self._backward: dict[str, Any] = {}  # latest backward message to each module
        self.restarts = 0

    # ---- graph ----------------------------------------------------------------------
    def add_observation(
        self, name: str, message: list[Any], shape: list[int], digests: list[str]
    ) -> None:
        """message: [a reference to the encoded data], or the data's parts (files);
        digests: the data's digest, then any older form a checkpoint may hold instead."""
        self._check_new(name)
        if self._resuming and self._manifest.observations.get(name) not in digests:
            raise CheckpointError(
                name,
                "its data differs from the checkpointed run's; resume with the same data"
                if name in self._manifest.observations
                else "the checkpointed run has no observation of this name",
            )
        self._manifest.observations[name] = digests[0]
        self._observations.add(name)
        self._shapes[name] = shape
        self._forward[name] = message if isinstance(message[0], dict) else message[0]

    def grow(self, name: str, message: list[Any], shape: list[int], digest_: str,
             rows: bytes) -> None:  # fmt: skip
        """A growing observation took in `rows` (.npz bytes; on its registration, its
        first): `message` now refers to all its data. The rows join the checkpoint, which
        so covers the data seen so far (`grown` reads them back on resume)."""
        intakes = self._manifest.growing.setdefault(name, [])
        file = rows_file(name, len(intakes))
        intakes.append(file)
        self._manifest.observations[name] = digest_
        self._shapes[name] = shape
        self._forward[name] = message[0]
        # On the write queue: after the commits of earlier updates, whose manifests do
        # not name the file yet (they would delete it as stale).
        self._writes.submit(lambda: self._store.write_part(file, rows))

    def grown(self, name: str) -> bytes | None:
        """On resume: a growing observation's rows taken in so far (.npz bytes, one array
        "rows"), or None if the checkpoint has none."""
        files = self._manifest.growing.get(name) if self._resuming else None
        if not files:
            return None
        rows = [self._store.read_state(file)["rows"] for file in files]
        return state_bytes({"rows": np.concatenate(rows)})

    def add_module(
        self,
        spec_bytes: bytes,
        dataset_params: dict[str, list[dict[str, Any]]] | None = None,
        learned: bytes | None = None,
        script_class: Any = None,
    ) -> int:
        """Start the module's actor; returns its rounds already done (from a checkpoint).
        dataset_params: parameters given as datasets, as parts (block references), which
        replace their digests in the parameters the actors are built with. learned: the
        encoded state every actor of it starts from (a checkpoint, if any, replaces it).
        script_class: its class, shipped by Ray, when the actors cannot import it."""
        spec = codec.unpack(spec_bytes)
        name = spec["name"]
        self._check_new(name)
        unknown = [i for i in spec["inputs"] if i not in self._shapes]
        unknown += [p for p in spec.get("peers", []) if p not in self._modules]
        if unknown:
            raise ModuleError(
                name, f"connects to {unknown[0]}, which the coordinator does not know"
            )
        # Without the element count: data that grow (`runtime.growing`) keep the config.
        config = digest(
            {
                **{k: spec[k] for k in ("class_path", "params", "inputs")},
                **({"peers": spec["peers"]} if "peers" in spec else {}),
                "output_shape": spec["output_shape"][1:],
            }
        )
        entry = _Entry(
            name, spec, config, dataset_params=dataset_params or {}, learned=learned,
            script_class=script_class,
        )  # fmt: skip
        saved = self._manifest.modules.get(name)
        if self._resuming:
            if saved is None or saved["config"] != config:
                raise CheckpointError(
                    name,
                    "its configuration (class, parameters, inputs) differs from the "
                    "checkpointed run's; resume with the same settings, or start a new run",
                )
            entry.rounds = saved["rounds"]
            self._forward[name] = self._put_saved(saved["forward"])
            if name in self._manifest.backward:
                self._backward[name] = self._put_saved(self._manifest.backward[name])
        if self._fixed_cluster:
            options = _ray_options(spec["resources"])
            self._check_capacity(name, {**options, "num_cpus": options["num_cpus"] * entry.shards})
        if entry.shards > 1:
            entry.group = self._new_group(entry)
        self._start_actor(entry)
        self._modules[name] = entry
        self._shapes[name] = spec["output_shape"]
        return entry.rounds

    def _check_new(self, name: str) -> None:
        if name in self._shapes:
            raise ModuleError(name, "a module or observation of this name is already registered")

    def _check_capacity(self, name: str, options: dict[str, Any]) -> None:
        """Refuse at once an actor that could only wait for its start-up timeout."""
        actors = {other: entry.options for other, entry in self._modules.items()}
        problem = cluster.beyond_capacity({**actors, name: options})
        if problem:
            raise ModuleError(
                name,
                f"its actor can never start: {problem}. Ask for less (a module's num_threads "
                f"or resources), or start Ray with more (srk.init(num_cpus=...), --num-cpus)",
            )

    def _host_arguments(self, entry: _Entry) -> dict[str, Any]:
        spec = entry.spec
        inputs = [
            {"name": i, "is_module": i in self._modules, "shape": self._shapes[i]}
            for i in spec["inputs"]
        ]
        return {
            "name": entry.name,
            "class_path": spec["class_path"],
            "params": codec.pack(spec["params"]),
            "inputs": inputs,
            "output_shape": spec["output_shape"],
            "board": self._board,
            "storage": self._storage.__dict__,
            "dataset_params": entry.dataset_params,
            "learned": entry.learned,
            "script_class": entry.script_class,
            "peers": spec.get("peers"),
        }

    def _new_group(self, entry: _Entry) -> ShardGroup:
        """A sharded module's group, its shard i beside shard i of an input module with
        as many shards (element-wise messages between them then stay within a node)."""
        companion = next(
            (
                self._modules[i].group
                for i in entry.spec["inputs"]
                if i in self._modules and self._modules[i].shards == entry.shards
            ),
            None,
        )
        entry.options = _ray_options(entry.spec["resources"])
        return ShardGroup(
            entry.name,
            entry.shards,
            self._host_arguments(entry),
            entry.options,
            self._update_timeout_s,
            companion_nodes=None if companion is None else companion.node_ids(),
        )

    def _start_actor(self, entry: _Entry) -> None:
        """A fresh actor for the module, restored from its last checkpoint if it has one."""
        saved = self._manifest.modules.get(entry.name)
        if entry.group is not None:
            entry.group.start(None if saved is None else saved["state"], self._start_timeout_s)
            return
        entry.options = _ray_options(entry.spec["resources"])
        entry.actor = (
            ray.remote(ModuleHost)
            .options(max_restarts=0, **entry.options)
            .remote(**self._host_arguments(entry))
        )
        entry.ready = []
        if saved is not None:
            state = codec.pack(self._store.read_state(saved["state"]))
            entry.ready.append(entry.actor.load_state.remote(state))
        entry.ready.append(entry.actor.describe.remote())
        entry.placement = None

    def _placement(self, entry: _Entry) -> dict[str, Any]:
        """Where the actor (a sharded module's first) runs; waits (bounded) for it to start."""
        if entry.group is not None:
            if not entry.group.actors:  # not started yet, or stopped by a failed call
                self._start_actor(entry)
            assert entry.group.placements is not None
            return entry.group.placements[0]
        if entry.placement is None:
            try:
                started = cluster.wait(
                    entry.ready, who=entry.name, what="start-up", timeout_s=self._start_timeout_s
                )
            except CallTimeout:
                ray.kill(entry.actor)
                raise ModuleError(
                    entry.name,
                    f"no node could host its actor within {self._start_timeout_s:g} s: "
                    f"{cluster.unmet(entry.options)}",
                ) from None
            entry.placement = codec.unpack(started[-1])
        return entry.placement

    # ---- updates --------------------------------------------------------------------
    def update(self, name: str, write_behind: bool = False) -> bytes:
        """One update of module `name`; returns its report.

        write_behind: return once the update's messages are routed, its result files and
        checkpoint still being written (in order, while the next update runs). A failed
        write is raised by the next call. Otherwise they are on disk on return.
        """
        self._writes.raise_failed()
        entry = self._entry(name)
        report = self._with_restarts(entry, lambda: self._update_once(entry))
        if not write_behind:
            self._writes.wait()
        return report

    def flush(self) -> None:
        """Return once every update's files and checkpoint are written."""
        self._writes.wait()

    def _entry(self, name: str) -> _Entry:
        entry = self._modules.get(name)
        if entry is None:
            raise ModuleError(name, "is not registered with the coordinator (call connect() first)")
        return entry

    def _with_restarts(self, entry: _Entry, call: Callable[[], T]) -> T:
        """`call()`, run again on a fresh actor (restored from the checkpoint) if the
        module's actor is lost, up to max_restarts times."""
        losses = 0
        while True:
            try:
                return call()
            except ActorLost as lost:
                losses += 1
                if losses > self._max_restarts:
                    raise ModuleError(
                        entry.name, f"its actor was lost {losses} times; giving up: {lost.problem}"
                    ) from None
                self.restarts += 1
                self._writes.wait()  # the restart reads the last checkpoint
                # The module's own actor, or that of a peer it was talking to.
                lost_entry = self._modules.get(lost.module, entry)
                self._start_actor(lost_entry)
                self._reload_messages()
                self._restore_peers(entry, lost_entry)

    def _restore_peers(self, entry: _Entry, restarted: _Entry) -> None:
        """The peers of `entry` (but the one restarted) back to their checkpointed state:
        the interrupted update runs again from where they all were before it."""
        for name in entry.spec.get("peers", []):
            if name != restarted.name:
                peer = self._modules[name]
                state = codec.pack(self._store.read_state(self._manifest.modules[name]["state"]))
                peer.actor.load_state.remote(state)  # before its next call: actor order

    def _reload_messages(self) -> None:
        """Messages from the checkpoint: those held on a lost node are gone."""
        for name, saved in self._manifest.modules.items():
            self._forward[name] = self._put_saved(saved["forward"])
        for receiver, file in self._manifest.backward.items():
            self._backward[receiver] = self._put_saved(file)

    def _put_saved(self, saved: str | list[dict[str, Any]]) -> Any:
        """A checkpointed message: back in the object store, its reference returned; a
        sharded module's, as parts its receivers read from the storage themselves."""
        if isinstance(saved, list):
            return [{"start": p["start"], "stop": p["stop"], "message": p["file"]} for p in saved]
        return ray.put(codec.to_wire(self._store.read(saved)))

    def _update_once(self, entry: _Entry) -> bytes:
        name = entry.name
        placement = self._placement(entry)
        for source in self._sources_unread(entry):
            self._with_restarts(source, lambda source=source: self._update_once(source))
        missing = [i for i in entry.spec["inputs"] if i not in self._forward]
        if missing:
            raise ModuleError(
                name, f"its input {missing[0]} has sent no forward message yet: update it first"
            )
        if entry.group is not None:
            return self._update_sharded(entry)
        if entry.spec.get("peers"):
            return self._update_with_peers(entry)
        round_ = entry.rounds + 1
        began = time.perf_counter()
        inputs = entry.spec["inputs"]
        refs = entry.actor.update.options(num_returns=4 + len(inputs)).remote(
            round_, self._backward.get(name), *(self._forward[i] for i in inputs)
        )
        report, files, state, forward, *backward = self._wait_update(entry, refs, round_)
        results = codec.unpack(files)
        self._writer.check_names(name, results)
        record = codec.unpack(report)
        record["wall_seconds"] = time.perf_counter() - began
        record["node_ip"] = placement["node_ip"]
        commit = self._record(
            entry, round_, record, state, forward, dict(zip(inputs, backward, strict=True))
        )
        self._writes.submit(lambda: self._write_update(name, round_, results, commit))
        entry.rounds = round_
        self._forward[name] = refs[3]
        for receiver, ref, message in zip(inputs, refs[4:], backward, strict=True):
            if receiver in self._modules:
                if message is None:
                    self._backward.pop(receiver, None)
                else:
                    self._backward[receiver] = ref
        return codec.pack(record)

    def _wait_update(self, entry: _Entry, refs: list[Any], round_: int) -> list[Any]:
        """The results of an update; past its deadline, its actor is stopped."""
        try:
            return cluster.wait(
                refs, who=entry.name, what=f"update {round_}", timeout_s=self._update_timeout_s
            )
        except CallTimeout as timeout:
            ray.kill(entry.actor)
            entry.placement = None
            raise ModuleError(entry.name, f"{timeout.problem}; its actor was stopped") from None

    def _update_with_peers(self, entry: _Entry) -> bytes:
        """One update of a module that talks to peers (`runtime.peers`): each peer joins
        (handed its last inputs by reference), the update asks them its questions, and
        each peer settles. What the peers settled on replaces their last round's state
        and messages, in the same checkpoint as this update, so a resumed run or a
        restarted actor goes on exactly from it."""
        name, round_ = entry.name, entry.rounds + 1
        peers = [self._modules[p] for p in entry.spec["peers"]]
        for peer in peers:
            if peer.rounds == 0:
                raise ModuleError(
                    name, f"its peer {peer.name} has learned nothing yet: update it first"
                )
            self._placement(peer)
        joined = [
            peer.actor.join.remote(peer.rounds, *(self._forward[i] for i in peer.spec["inputs"]))
            for peer in peers
        ]
        for peer, ref in zip(peers, joined, strict=True):
            cluster.wait(ref, who=peer.name, what=f"joining {name}",
                         timeout_s=self._update_timeout_s)  # fmt: skip
        placement = self._placement(entry)
        began = time.perf_counter()
        refs = entry.actor.update.options(num_returns=4).remote(
            round_, None, peers=[peer.actor for peer in peers]
        )
        report, files, state, forward = self._wait_update(entry, refs, round_)
        settling = [
            peer.actor.settle.options(num_returns=4 + len(peer.spec["inputs"])).remote(peer.rounds)
            for peer in peers
        ]
        settled = [
            cluster.wait(
                refs_,
                who=peer.name,
                what=f"settling after {name}",
                timeout_s=self._update_timeout_s,
            )
            for peer, refs_ in zip(peers, settling, strict=True)
        ]
        results = codec.unpack(files)
        self._writer.check_names(name, results)
        peer_results, checkpoint = {}, {}
        for peer, refs_, (_report, peer_files, peer_state, *messages) in zip(
            peers, settling, settled, strict=True
        ):
            peer_results[peer.name] = codec.unpack(peer_files)
            self._writer.check_names(peer.name, peer_results[peer.name])
            checkpoint |= self._amend(peer, peer_state, messages)
            self._forward[peer.name] = refs_[3]
            for receiver, ref, message in zip(peer.spec["inputs"], refs_[4:], messages[1:],
                                              strict=True):  # fmt: skip
                if receiver in self._modules and message is not None:
                    self._backward[receiver] = ref
        record = codec.unpack(report)
        record["wall_seconds"] = time.perf_counter() - began
        record["node_ip"] = placement["node_ip"]
        commit = self._record(entry, round_, record, state, forward, {}, checkpoint)

        def write() -> None:
            for peer in peers:
                self._writer.write_round(peer.name, peer.rounds, peer_results[peer.name])
            self._write_update(name, round_, results, commit)

        self._writes.submit(write)
        entry.rounds = round_
        self._forward[name] = refs[3]
        return codec.pack(record)

    def _amend(self, peer: _Entry, state: codec.Wire, messages: list[Any]) -> dict[str, Any]:
        """A settled peer's state and messages (forward, then one backward per input) in
        the manifest, in place of its last round's; returns the checkpoint files."""

        def settled(what: str) -> str:
            return file_name(peer.name, peer.rounds, f"settled.{what}")

        saved = self._manifest.modules[peer.name]
        saved["state"], saved["forward"] = settled("state.npz"), settled("forward.msgpack")
        files = {saved["state"]: state_bytes(codec.unpack(state)), saved["forward"]: messages[0]}
        for receiver, message in zip(peer.spec["inputs"], messages[1:], strict=True):
            if receiver in self._modules and message is not None:
                files[settled(f"to.{receiver}.msgpack")] = message
                self._manifest.backward[receiver] = settled(f"to.{receiver}.msgpack")
        return files

    def _sources_unread(self, entry: _Entry) -> list[_Entry]:
        """The inputs of `entry` that are sources (modules of no inputs, which make their
        data themselves) and have not sent their forward message yet: they update first."""
        return [
            self._modules[i]
            for i in entry.spec["inputs"]
            if i not in self._forward and i in self._modules and not self._modules[i].spec["inputs"]
        ]

    def _update_sharded(self, entry: _Entry) -> bytes:
        """One update of a sharded module: its shards write their results and checkpoint
        parts; the manifest naming them is committed here (write-behind as any update)."""
        assert entry.group is not None
        name, inputs, round_ = entry.name, entry.spec["inputs"], entry.rounds + 1
        rows = int(self._shapes[inputs[0]][0])
        try:
            outcome = entry.group.run(
                "update", round_, self._backward.get(name), [self._forward[i] for i in inputs],
                rows, self._update_timeout_s,
            )  # fmt: skip
        except CallTimeout as timeout:
            raise ModuleError(name, f"{timeout.problem}; its shard actors were stopped") from None

        def saved(files: list[str]) -> list[dict[str, Any]]:
            """Message parts as the manifest names them: rows and file."""
            return [
                {"start": part["start"], "stop": part["stop"], "file": file}
                for part, file in zip(outcome.forward, files, strict=True)
            ]

        self._forward[name] = outcome.forward
        self._manifest.modules[name] = {
            "config": entry.config,
            "rounds": round_,
            "shards": entry.shards,
            "state": [c["state"] for c in outcome.checkpoints],
            "forward": saved([c["forward"] for c in outcome.checkpoints]),
        }
        for position, receiver in enumerate(inputs):
            if receiver not in self._modules:
                continue
            if position in outcome.backward:
                self._backward[receiver] = outcome.backward[position]
                files = [c["backward"][receiver] for c in outcome.checkpoints]
                self._manifest.backward[receiver] = saved(files)
            else:
                self._backward.pop(receiver, None)
                self._manifest.backward.pop(receiver, None)
        self._manifest.history.append(outcome.report)
        snapshot = copy.deepcopy(self._manifest)

        def commit() -> None:
            try:
                self._writer.link_round(name, round_, outcome.files)
                self._store.commit(snapshot, {})
                self._writer.write_history(snapshot.history)
            except OSError as exc:
                raise ModuleError(
                    name, f"the results of update {round_} could not be committed: {exc}"
                ) from None

        self._writes.submit(commit)
        entry.rounds = round_
        return codec.pack(outcome.report)

    def _write_update(
        self, name: str, round_: int, results: dict[str, Any], commit: Callable[[], None]
    ) -> None:
        """An update's result files, then its checkpoint (on the write queue's thread)."""
        try:
            self._writer.write_round(name, round_, results)
            commit()
        except OSError as exc:
            raise ModuleError(
                name, f"the results of update {round_} could not be written: {exc}"
            ) from None

    def _record(
        self,
        entry: _Entry,
        round_: int,
        record: dict[str, Any],
        state: codec.Wire,
        forward: codec.Wire,
        backward: dict[str, codec.Wire | None],
        other_files: dict[str, Any] | None = None,
    ) -> Callable[[], None]:
        """Record the update in the manifest; returns the job that writes the checkpoint
        (of the manifest as it is now: later updates change it). other_files: checkpoint
        files the manifest names already (settled peers'), written with it."""
        manifest = self._manifest
        state_file = file_name(entry.name, round_, "state.npz")
        forward_file = file_name(entry.name, round_, "forward.msgpack")
        files = {**(other_files or {}), forward_file: forward}
        manifest.modules[entry.name] = {
            "config": entry.config,
            "rounds": round_,
            "state": state_file,
            "forward": forward_file,
        }
        for receiver, message in backward.items():
            if receiver not in self._modules:
                continue
            if message is None:
                manifest.backward.pop(receiver, None)
            else:
                message_file = file_name(entry.name, round_, f"to.{receiver}.msgpack")
                files[message_file] = message
                manifest.backward[receiver] = message_file
        manifest.history.append(record)
        snapshot = copy.deepcopy(manifest)
        arrays = codec.unpack(state)

        def write() -> None:
            files[state_file] = state_bytes(arrays)
            self._store.commit(snapshot, files)
            self._writer.write_history(snapshot.history)

        return write

    # ---- recognition ----------------------------------------------------------------
    def recognize(
        self,
        observations: dict[str, list[Any]],
        shapes: dict[str, list[int]],
        order: list[str],
        categories: bytes,
        passes: int,
    ) -> bytes:
        """Novel data through the learned modules, in `order`, `passes` times; nothing is
        learned or checkpointed. Returns the reports; files go beside the learned ones."""
        self._writes.wait()
        forward: dict[str, Any] = {}
        for name, message in observations.items():
            if name not in self._observations:
                raise ModuleError(name, "is not an observation of this model")
            if shapes[name][1:] != self._shapes[name][1:]:
                raise ModuleError(
                    name,
                    f"novel data has {shapes[name][1:]} features per element; the model "
                    f"learned from {self._shapes[name][1:]}",
                )
            forward[name] = message[0]
        available = set(forward)
        for name in order:
            entry = self._entry(name)
            if entry.rounds == 0:
                raise ModuleError(name, "has learned nothing yet: update it before recognition")
            missing = [i for i in entry.spec["inputs"] if i not in available]
            if missing:
                raise ModuleError(
                    name,
                    f"recognition needs novel data for its input {missing[0]}, or that input "
                    "recognized before it",
                )
            available.add(name)
        labels = codec.unpack(categories)
        rows = int(next(iter(shapes.values()))[0])  # the novel data's element count
        backward: dict[str, Any] = {}
        reports = []
        for pass_ in range(1, passes + 1):
            for name in order:
                entry = self._modules[name]
                reports.append(
                    self._with_restarts(
                        entry,
                        lambda e=entry, p=pass_: self._recognize_once(
                            e, p, forward, backward, labels.get(e.name), rows
                        ),
                    )
                )
        self._writer.write_json(RECOGNITION, reports)
        return codec.pack(reports)

    def _recognize_once(
        self,
        entry: _Entry,
        pass_: int,
        forward: dict[str, Any],
        backward: dict[str, Any],
        category: Any,
        rows: int,
    ) -> dict[str, Any]:
        placement = self._placement(entry)
        inputs = entry.spec["inputs"]
        began = time.perf_counter()
        if entry.group is not None:
            outcome = entry.group.run(
                "recognize", pass_, backward.get(entry.name), [forward[i] for i in inputs],
                rows, self._update_timeout_s, category,
            )  # fmt: skip
            forward[entry.name] = outcome.forward
            for position, message in outcome.backward.items():
                backward[inputs[position]] = message
            return outcome.report
        refs = entry.actor.recognize.options(num_returns=4 + len(inputs)).remote(
            pass_, backward.get(entry.name), codec.pack(category), *(forward[i] for i in inputs)
        )
        report, files, _state, _forward, *messages = cluster.wait(
            refs, who=entry.name, what="recognition", timeout_s=self._update_timeout_s
        )
        self._writer.write_files(entry.name, codec.unpack(files))
        record = codec.unpack(report)
        record["wall_seconds"] = time.perf_counter() - began
        record["node_ip"] = placement["node_ip"]
        forward[entry.name] = refs[3]
        for receiver, ref, message in zip(inputs, refs[4:], messages, strict=True):
            if receiver in self._modules and message is not None:
                backward[receiver] = ref
        return record

    def placements(self) -> bytes:
        described = []
        for entry in self._modules.values():
            first = self._placement(entry)
            described += [first] if entry.group is None else entry.group.placements or []
        self._writer.write_json(PLACEMENTS, described)
        return codec.pack(described)

    def close(self) -> None:
        """Stop the module actors and release the shard groups' placement groups."""
        for entry in self._modules.values():
            if entry.group is not None:
                entry.group.close()

    def status(self) -> bytes:
        """Rounds done per module, actor restarts so far, and this coordinator's process."""
        return codec.pack(
            {
                "rounds": {n: e.rounds for n, e in self._modules.items()},
                "restarts": self.restarts,
                "coordinator": {"pid": os.getpid(), "node_ip": ray.util.get_node_ip_address()},
            }
        )
