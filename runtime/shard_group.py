"""A sharded module's group of shard actors: start, placement, rendezvous, calls, loss.

Kept apart from the coordinator, as RLlib keeps its FaultTolerantActorManager apart from
the algorithm that drives it: the coordinator routes a module's message parts and
commits its checkpoints; this group runs the S actors that own the module's elements.

Placement: one placement group per module, one bundle per shard, spread over nodes where
the cluster has them and packed otherwise (Ray's SPREAD; shards that reserve no CPU are
spread the same way without a placement group, which cannot hold empty bundles). A
module connected to another of the same shard count places its shard i on the node of
that module's shard i, so the element-wise messages between them stay within a node.

Loss: the shards of an update wait for each other in collectives, so when one is lost
the others cannot finish that update. The group then stops them all and starts every
shard again from its part of the last checkpoint, with a fresh rendezvous.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from runtime import codec, shard_files
from runtime.errors import ActorLost, CallTimeout, ModuleError, SerketError
from runtime.host import ModuleHost

SETTLE_S = 10.0  # after one shard failed, how long the others get to fail or finish


class ShardGroup:
    """S actors of one module; `hosts` takes the ModuleHost arguments shared by all."""

    def __init__(
        self,
        name: str,
        count: int,
        hosts: dict[str, Any],
        options: dict[str, Any],
        storage: shard_files.Storage,
        companion_nodes: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.count = count
        self._hosts = hosts
        self._options = options
        self._storage = storage
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
            ready += [
                actor.load_state_file.remote(file)
                for actor, file in zip(self.actors, state_files, strict=True)
            ]
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
            strategy: Any = NodeAffinitySchedulingStrategy(self._companion_nodes[index], soft=True)
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
                storage=self._storage.__dict__,
            )
        )

    def _rendezvous(self, timeout_s: float) -> None:
        """Form the shards' process group through a fresh store opened by shard 0."""
        host, port = self._wait([self.actors[0].open_group.remote(timeout_s)], "rendezvous",
                                timeout_s)[0]  # fmt: skip
        joined = [actor.join_group.remote(host, port, timeout_s) for actor in self.actors]
        self._wait(joined, "rendezvous", timeout_s)

    def node_ids(self) -> list[str]:
        assert self.placements is not None
        return [p["node_id"] for p in self.placements]

    # ---- calls ----------------------------------------------------------------------
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
