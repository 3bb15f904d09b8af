"""The coordinator actor: owns the module graph, runs updates and routes their messages.

Messages move by object reference: a module's update returns its forward and backward
messages as separate Ray objects; the coordinator keeps only the references and hands
them to the next module's update, so message bytes go from node to node through Ray's
object store without passing through this process. The coordinator fetches only each
update's small report and its result files, which it writes on the driver's machine
(it is pinned to the driver's node).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from runtime import cluster, codec
from runtime.errors import ModuleError
from runtime.host import ModuleHost
from runtime.output import ResultWriter


@dataclass
class _Entry:
    name: str
    actor: Any
    inputs: list[str]
    resources: dict[str, Any]
    ready: Any  # reference to the actor's describe(): resolves once it has started
    placement: dict[str, Any] | None = None
    rounds: int = 0


def _ray_options(name: str, resources: dict[str, Any]) -> dict[str, Any]:
    num_gpus = resources["num_gpus"]
    if num_gpus == "auto":
        num_gpus = 1 if cluster.cluster_has_gpu() else 0
    return {
        "num_cpus": resources["num_cpus"],
        "num_gpus": num_gpus,
        "resources": resources["custom"] or None,
        "max_restarts": 0,
    }


class Coordinator:
    def __init__(self, output_root: str, update_timeout_s: float, start_timeout_s: float) -> None:
        self._writer = ResultWriter(Path(output_root))
        self._update_timeout_s = update_timeout_s
        self._start_timeout_s = start_timeout_s
        self._observations: set[str] = set()
        self._modules: dict[str, _Entry] = {}
        self._forward: dict[str, Any] = {}  # latest forward message of each node
        self._backward: dict[str, Any] = {}  # latest backward message to each module

    def add_observation(self, name: str, message: list[Any]) -> None:
        self._check_new(name)
        self._observations.add(name)
        self._forward[name] = message[0]

    def add_module(self, spec_bytes: bytes) -> None:
        spec = codec.unpack(spec_bytes)
        name = spec["name"]
        self._check_new(name)
        unknown = [
            i for i in spec["inputs"] if i not in self._modules and i not in self._observations
        ]
        if unknown:
            raise ModuleError(
                name, f"connects to {unknown[0]}, which the coordinator does not know"
            )
        options = _ray_options(name, spec["resources"])
        inputs = [(i, i in self._modules) for i in spec["inputs"]]
        actor = (
            ray.remote(ModuleHost)
            .options(**options)
            .remote(name, spec["class_path"], codec.pack(spec["params"]), inputs)
        )
        # The actor starts in the background; its first update waits for it (bounded).
        self._modules[name] = _Entry(name, actor, spec["inputs"], options, actor.describe.remote())

    def _check_new(self, name: str) -> None:
        if name in self._modules or name in self._observations:
            raise ModuleError(name, "a module or observation of this name is already registered")

    def _placement(self, entry: _Entry) -> dict[str, Any]:
        if entry.placement is None:
            try:
                described = cluster.wait(
                    entry.ready, who=entry.name, what="start-up", timeout_s=self._start_timeout_s
                )
            except ModuleError as exc:
                if "did not finish" not in exc.problem:
                    raise
                ray.kill(entry.actor)
                wanted = {k: v for k, v in entry.resources.items() if k != "max_restarts"}
                raise ModuleError(
                    entry.name,
                    f"no node could host its actor within {self._start_timeout_s:g} s: it asks for "
                    f"{wanted}; the cluster has {ray.cluster_resources()}",
                ) from None
            entry.placement = codec.unpack(described)
        return entry.placement

    def update(self, name: str) -> bytes:
        entry = self._modules.get(name)
        if entry is None:
            raise ModuleError(name, "is not registered with the coordinator (call connect() first)")
        placement = self._placement(entry)
        missing = [i for i in entry.inputs if i not in self._forward]
        if missing:
            raise ModuleError(
                name, f"its input {missing[0]} has sent no forward message yet: update it first"
            )
        round_ = entry.rounds + 1
        began = time.perf_counter()
        report_ref, files_ref, forward_ref, *backward_refs = entry.actor.update.options(
            num_returns=3 + len(entry.inputs)
        ).remote(round_, self._backward.get(name), *(self._forward[i] for i in entry.inputs))
        report, files = cluster.wait(
            [report_ref, files_ref], who=name, what=f"update {round_}",
            timeout_s=self._update_timeout_s,
        )  # fmt: skip
        self._writer.write_round(name, round_, codec.unpack(files))
        entry.rounds = round_
        self._forward[name] = forward_ref
        for input_name, backward_ref in zip(entry.inputs, backward_refs, strict=True):
            if input_name in self._modules:
                self._backward[input_name] = backward_ref
        record = codec.unpack(report)
        record["wall_seconds"] = time.perf_counter() - began
        record["node_ip"] = placement["node_ip"]
        self._writer.append_history(record)
        return codec.pack(record)

    def placements(self) -> bytes:
        described = [self._placement(entry) for entry in self._modules.values()]
        self._writer.write_json("placements.json", described)
        return codec.pack(described)
