"""How a module or observation built in a script reaches the session that runs it.

Serket's API puts the driver's verbs on the module itself (`vae1.connect(obs)`,
`vae1.update()`), yet the module API sits at the bottom of the runtime and the session
(Ray, the coordinator) at the top. So the bottom states what it needs from a driver (a
`Handle`, a `ModuleHandle`), and the session registers the factory that makes them
(`use_driver`) when it is imported: each file imports only files below it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from runtime.errors import SerketError


class Handle(Protocol):
    """An observation's place in a session: its Serket name (module000_obs)."""

    full_name: str


class ModuleHandle(Handle, Protocol):
    """A module's place in a session: its name, rounds done, and the driver's verbs."""

    rounds_done: int

    def connect(self, inputs: Sequence[Any]) -> None: ...
    def connect_peers(self, peers: Sequence[Any]) -> None: ...
    def update(self, *, write_behind: bool = False) -> Mapping[str, Any]: ...
    def place(self, resources: Any) -> None: ...


HandleFactory = Callable[[Any], Any]  # a module gets a ModuleHandle, an observation a Handle
_factory: HandleFactory | None = None


def use_driver(factory: HandleFactory) -> None:
    """Register the session's handle factory (done once, by `runtime.session`)."""
    global _factory
    _factory = factory


def attach(item: Any) -> Any:
    """The handle of a newly built module (a `ModuleHandle`) or observation (a `Handle`),
    numbered in creation order."""
    if _factory is None:
        raise SerketError(
            f"{type(item).__name__}: no driver session to attach to; import runtime first"
        )
    return _factory(item)
