"""Ray start-up, joining a cluster, and bounded remote calls that fail with clear errors."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import ray
from ray._private import ray_constants
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

from runtime.errors import ActorLost, CallTimeout, ModuleError, SerketError

WATCH_EVERY_S = 0.5  # how often a waiting caller's display is refreshed


def connect(
    address: str | None = None, *, num_cpus: int | None = None, verbose: bool = False
) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start an embedded local Ray.

    Returns True when this call started Ray. Ray's token authentication stays on (its
    default for local clusters). The embedded instance listens on loopback only, however
    the process was started (`_loopback_only`). It is always a new instance (address
    "local"): left alone, ray.init() would join whatever cluster `ray start` last
    recorded on this machine, even one long gone (address "auto" joins a running one on
    purpose). verbose: Ray's own start-up messages (its token notice among them) are
    shown; otherwise only its errors during start-up and its warnings after it.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    logging_level = "info" if verbose else "error"
    if address:
        ray.init(address=address, logging_level=logging_level)
    else:
        with _loopback_only():
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging_level,
            )
    if not verbose:
        logging.getLogger("ray").setLevel(logging.WARNING)
    return True


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Ray's single-machine mode while an embedded instance starts: GCS, raylet, agents
    and workers bind 127.0.0.1 instead of every interface.

    Ray has no public switch for it: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 works only when
    set before `ray` is imported (Ray reads it into a constant then), and
    ray.init(_node_ip_address="127.0.0.1") is turned back into the outward address. So
    both the variable (read by the processes Ray starts) and the constant (read by this
    one) are set for the start-up, then restored: a later session in this process may
    join a real cluster.
    """
    saved_variable = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    saved_constant = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_variable is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved_variable


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


def wait(
    ref: Any,
    *,
    who: str,
    what: str,
    timeout_s: float | None,
    while_waiting: Callable[[], None] | None = None,
) -> Any:
    """ray.get with a deadline; errors come back as SerketErrors naming `who`.

    A SerketError raised inside an actor is re-raised as itself, so the caller sees the
    module's own message rather than Ray's wrapper around it. A dead actor or a lost
    object raises ActorLost (the coordinator recovers from it), a deadline CallTimeout.
    while_waiting: called about twice a second until the result is ready (a display).
    """
    left = timeout_s if while_waiting is None else _watch(ref, timeout_s, while_waiting)
    try:
        return ray.get(ref, timeout=left)
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


def _watch(ref: Any, timeout_s: float | None, watch: Callable[[], None]) -> float | None:
    """Wait until `ref` (or every ref of a list) is ready, calling watch() between checks;
    returns what is left of timeout_s."""
    refs = ref if isinstance(ref, list) else [ref]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, pending = ray.wait(
            refs,
            num_returns=len(refs),
            timeout=WATCH_EVERY_S if left is None else min(WATCH_EVERY_S, left),
        )
        if not pending or left == 0.0:
            return left
        watch()
