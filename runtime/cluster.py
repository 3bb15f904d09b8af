"""Ray start-up, joining a cluster, and bounded remote calls that fail with clear errors."""

from __future__ import annotations

import os
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

from runtime.errors import ActorLost, CallTimeout, ModuleError, SerketError


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start an embedded local Ray.

    Returns True when this call started Ray. Ray's token authentication stays on (its
    default for local clusters). The embedded instance binds the machine's address, or
    loopback only where RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set before Ray was imported
    (as `make demo` and the tests do). It is always a new instance (address "local"):
    left alone, ray.init() would join whatever cluster `ray start` last recorded on this
    machine, even one long gone (address "auto" joins a running one on purpose).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level="warning")
    else:
        ray.init(
            address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="warning"
        )
    return True


def cluster_has_gpu() -> bool:
    return ray.cluster_resources().get("GPU", 0) >= 1


def _demand(options: dict[str, Any]) -> dict[str, float]:
    return {"CPU": options["num_cpus"], "GPU": options["num_gpus"], **options.get("resources", {})}


def beyond_capacity(actors: dict[str, dict[str, Any]]) -> str | None:
    """Why these actors (name: Ray options) can never all be up at once on this cluster as
    it is now, or None. Only a cluster that cannot grow (the embedded instance) should
    refuse on this: elsewhere an autoscaler may still add the nodes.
    """
    totals = ray.cluster_resources()
    demands = {name: _demand(options) for name, options in actors.items()}
    for resource in sorted({r for demand in demands.values() for r in demand}):
        wanted = sum(demand.get(resource, 0) for demand in demands.values())
        if wanted > totals.get(resource, 0):
            each = ", ".join(
                f"{name} {demand[resource]:g}"
                for name, demand in demands.items()
                if demand.get(resource)
            )
            return (
                f"the modules together ask for {wanted:g} {resource} ({each}); this Ray "
                f"instance has {totals.get(resource, 0):g} and cannot grow"
            )
    return None


def unmet(options: dict[str, Any]) -> str:
    """Why no alive node can host an actor with these options, in words."""
    wanted = _demand(options)
    labels = options.get("label_selector", {})
    nodes = [n for n in ray.nodes() if n["Alive"]]
    for name, amount in wanted.items():
        if amount and not any(n["Resources"].get(name, 0) >= amount for n in nodes):
            most = max((n["Resources"].get(name, 0) for n in nodes), default=0)
            return f"it needs {amount:g} {name} on one node; the most any node has is {most:g}"
    for key, value in labels.items():
        if not any(n.get("Labels", {}).get(key) == value for n in nodes):
            return f"it needs a node labelled {key}={value}; no alive node has that label"
    return f"it asks for {wanted} (labels {labels}); nodes that have them are busy"


def wait(ref: Any, *, who: str, what: str, timeout_s: float | None) -> Any:
    """ray.get with a deadline; errors come back as SerketErrors naming `who`.

    A SerketError raised inside an actor is re-raised as itself, so the caller sees the
    module's own message rather than Ray's wrapper around it. A dead actor or a lost
    object raises ActorLost (the coordinator recovers from it), a deadline CallTimeout.
    """
    try:
        return ray.get(ref, timeout=timeout_s)
    except RayTaskError as exc:
        if isinstance(exc.cause, SerketError):
            raise exc.cause.with_traceback(None) from None
        if isinstance(exc.cause, ObjectLostError):
            raise ActorLost(who, f"a message for {what} was lost: {exc.cause}") from None
        raise ModuleError(who, f"{what} failed: {type(exc.cause).__name__}: {exc.cause}") from None
    except GetTimeoutError:
        raise CallTimeout(who, f"{what} did not finish within {timeout_s:g} s") from None
    except (RayActorError, ObjectLostError) as exc:
        raise ActorLost(
            who, f"its actor or a message it held was lost during {what}: {exc}"
        ) from None
