"""serket-ray's message-passing core: modules as Ray actors exchanging msgpack messages.

The tutorial's ``import serket as srk`` becomes ``import runtime as srk``.
"""

from runtime.errors import (
    ActorLost,
    CallTimeout,
    CheckpointError,
    DataError,
    MessageError,
    ModuleError,
    SerketError,
)
from runtime.growing import GrowingObservation
from runtime.module import Module, Resources, Update, UpdateContext
from runtime.observation import Observation
from runtime.session import Session, current, init, recognize, shutdown

__all__ = [
    "ActorLost",
    "CallTimeout",
    "CheckpointError",
    "DataError",
    "GrowingObservation",
    "MessageError",
    "Module",
    "ModuleError",
    "Observation",
    "Resources",
    "SerketError",
    "Session",
    "Update",
    "UpdateContext",
    "current",
    "init",
    "recognize",
    "shutdown",
]
