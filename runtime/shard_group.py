"""A sharded module's group of shard actors: start, placement, rendezvous, calls, loss.

Kept apart from the coordinator, as RLlib keeps its FaultTolerantActorManager apart from
the algorithm that drives it: the coordinator routes a module's message parts and
commits its checkpoints; this group runs the S actors that own the module's elements.

Placement: one placement group per module, one bundle per shard, spread over nodes where
the cluster has them and packed otherwise (Ray's SPREAD; shards that reserve no CPU are
spread the same way without a placement group, which cannot hold empty bundles). A
module connected to another of the same shard count places its shard i on the node of
that module's shard i where that node has room (elsewhere otherwise), so the
element-wise messages between them stay within a node.

Loss: the shards of an update wait for each other in collectives, so when one is lost
the others cannot finish that update. The group then stops them all and starts every
shard again from its part of the last checkpoint, with a fresh rendezvous.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from runtime import codec, parts
from runtime.errors import ActorLost, CallTimeout, ModuleError, SerketError
from runtime.host import ModuleHost

SETTLE_S = 10.0  # after one shard failed, how long the others get to fail or finish


@dataclass
class Outcome:
    """A sharded call's result, by reference: nothing element-wise is fetched.

    report: shard 0's (metrics agree on every shard), with the slowest shard's seconds.
    forward: the forward message, one part per shard. backward: per input position, the
    backward message in parts (absent: the module sent none). checkpoints: per shard,
    the names of its checkpoint part's files (learning). files: the result files the
    shards wrote.
    """

    report: dict[str, Any]
    forward: list[parts.Part]
    backward: dict[int, list[parts.Part]] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def as_parts(message: Any, rows: int) -> list[parts.Part]:
    """A message as parts (a whole message is one part), for a sharded receiver."""
    return message if isinstance(message, list) else parts.whole(message, rows)


class ShardGroup:
    """S actors of one module; `hosts` takes the ModuleHost arguments shared by all."""

    def __init__(
        self,
        name: str,
        count: int,
        hosts: dict[str, Any],
        options: dict[str, Any],
        collective_timeout_s: float,
        companion_nodes: Sequence[str] | None = None,
    ) -> None:
        """collective_timeout_s: how long a shard's collective waits for the others (the
        update deadline)."""
        self.name = name
        self._collective_timeout_s = collective_timeout_s
        self.count = count
        self._hosts = hosts
        self._options = options
        self._companion_nodes = companion_nodes  # node ids to place shard i on, if any
        self._group: Any = None
        self.actors: list[Any] = []
        self.placements: list[dict[str, Any]] | None = None

    # ---- start-up -------------------------------------------------------------------
    def start(self, state_files: Sequence[str] | None, timeout_s: float) -> None:
        """Fresh shard actors (restored from `state_files`, one per shard, if given)."""
        self.stop()
        wanted = (("CPU", self._options["num_cpus"]), ("GPU", self._options["num_gpus"]))
        bundle = {name: amount for name, amount in wanted if amount}
        if self._companion_nodes is None and self._group is None and bundle:
            self._group = placement_group([bundle] * self.count, strategy="SPREAD")
        self.actors = [self._actor(index) for index in range(self.count)]
        ready = [actor.describe.remote() for actor in self.actors]
        if state_files is not None:
            ready += [actor.load_state_file.remote(list(state_files)) for actor in self.actors]
        try:
            described = self._wait(ready, "start-up", timeout_s)[: self.count]
        except CallTimeout:
            self.stop()
            raise ModuleError(
                self.name,
                f"its {self.count} shard actors could not all start within {timeout_s:g} s "
                f"(each asks for {self._options['num_cpus']:g} CPU)",
            ) from None
        self.placements = [{**codec.unpack(d), "shard": i} for i, d in enumerate(described)]
        self._rendezvous(timeout_s)

    def _actor(self, index: int) -> Any:
        options = {key: self._options[key] for key in ("num_cpus", "num_gpus")}
        if self._companion_nodes is not None:
            # Soft, and spilled when that node is busy (a private flag, used by Ray Data
            # itself): plain soft affinity waits for a busy node, which may never free up.
            strategy: Any = NodeAffinitySchedulingStrategy(
                self._companion_nodes[index], soft=True, _spill_on_unavailable=True
            )
        elif self._group is None:  # an actor that reserves nothing needs no bundle
            strategy = "SPREAD"
        else:
            strategy = PlacementGroupSchedulingStrategy(
                self._group, placement_group_bundle_index=index
            )
        return (
            ray.remote(ModuleHost)
            .options(max_restarts=0, scheduling_strategy=strategy, **options)
            .remote(
                **self._hosts,
                shard={"index": index, "count": self.count},
            )
        )

    def _rendezvous(self, timeout_s: float) -> None:
        """Form the shards' process group through a fresh store opened by shard 0."""
        host, port = self._wait([self.actors[0].open_group.remote(timeout_s)], "rendezvous",
                                timeout_s)[0]  # fmt: skip
        joined = [
            actor.join_group.remote(host, port, timeout_s, self._collective_timeout_s)
            for actor in self.actors
        ]
        self._wait(joined, "rendezvous", timeout_s)

    def node_ids(self) -> list[str]:
        assert self.placements is not None
        return [p["node_id"] for p in self.placements]

    # ---- calls ----------------------------------------------------------------------
    def run(
        self,
        mode: Literal["update", "recognize"],
        number: int,
        backward: Any,
        inputs: Sequence[Any],
        rows: int,
        timeout_s: float,
        category: Any = None,
    ) -> Outcome:
        """One update (or recognition pass) on every shard over `rows` elements, each
        shard its range; messages given whole or in parts."""
        extra = [] if mode == "update" else [codec.pack(category)]
        args = [
            number,
            None if backward is None else as_parts(backward, rows),
            *extra,
            *(as_parts(message, rows) for message in inputs),
        ]
        began = time.perf_counter()
        what = f"update {number}" if mode == "update" else "recognition"
        reports, messages = self.call(mode, args, 2 + len(inputs), what, timeout_s)
        assert self.placements is not None
        report = {k: v for k, v in reports[0].items() if k not in ("files", "checkpoint")}
        report.update(
            seconds=max(r["seconds"] for r in reports),
            wall_seconds=time.perf_counter() - began,
            shards=self.count,
            node_ip=self.placements[0]["node_ip"],
        )
        ranges = parts.ranges(rows, self.count)

        def by_reference(position: int) -> list[parts.Part]:
            return [
                {"start": a, "stop": b, "ref": refs[position]}
                for (a, b), refs in zip(ranges, messages, strict=True)
            ]

        checkpoints = [r["checkpoint"] for r in reports] if mode == "update" else []
        sent = set(checkpoints[0]["backward"]) if checkpoints else None
        return Outcome(
            report,
            by_reference(0),
            {
                position: by_reference(1 + position)
                for position, spec in enumerate(self._hosts["inputs"])
                if spec["is_module"] and (sent is None or spec["name"] in sent)
            },
            checkpoints,
            [name for r in reports for name in r["files"]],
        )

    def call(
        self, method: str, args: Sequence[Any], returns: int, what: str, timeout_s: float
    ) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """`method(*args)` on every shard; returns their reports and, per shard, the
        references of its other returns (messages), once every shard has answered."""
        refs = [
            getattr(actor, method).options(num_returns=returns).remote(*args)
            for actor in self.actors
        ]
        reports = self._wait([r[0] for r in refs], what, timeout_s)
        return [codec.unpack(report) for report in reports], [r[1:] for r in refs]

    def _wait(self, refs: list[Any], what: str, timeout_s: float) -> list[Any]:
        """Every ref's value, in order. One failed shard fails the call: a lost actor
        raises ActorLost (the coordinator starts the group again), a module's error
        itself. The others are given `SETTLE_S` to fail too (a lost peer breaks their
        collective), then the group is stopped: none is left waiting in a collective."""
        deadline = time.monotonic() + timeout_s
        pending = list(refs)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise CallTimeout(self.name, f"{what} did not finish within {timeout_s:g} s")
            ready, pending = ray.wait(pending, num_returns=1, timeout=left)
            for ref in ready:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    self._fail(refs, what)
        return ray.get(refs)

    def _fail(self, refs: list[Any], what: str) -> None:
        """Raise the failure of the call, lost actors first; the group is stopped."""
        ray.wait(refs, num_returns=len(refs), timeout=SETTLE_S)
        errors: list[SerketError] = []
        for ref in refs:
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                errors.append(
                    cause if isinstance(cause, SerketError)
                    else ModuleError(self.name, f"{what} failed: {type(cause).__name__}: {cause}")
                )  # fmt: skip
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                lost = ActorLost(self.name, f"a shard actor was lost during {what}: {exc}")
                errors.insert(0, lost)
        self.stop()
        lost = [e for e in errors if isinstance(e, ActorLost)]
        raise (lost or errors)[0].with_traceback(None)

    # ---- end ------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the shard actors (the placement group stays, for the next start)."""
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self.placements = None

    def close(self) -> None:
        self.stop()
        if self._group is not None:
            remove_placement_group(self._group)
            self._group = None
