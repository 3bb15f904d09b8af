"""The errors serket-ray raises to its users.

Every error names where it happened (a module, a file, a message) and what was wrong, so
a user can act on it without reading a traceback from inside Ray or torch. Arguments are
plain strings, so Ray can carry the errors from an actor to the caller.
"""


class SerketError(Exception):
    """Base class of every error serket-ray raises on purpose."""


class LocatedError(SerketError):
    """An error at a named place: ``<where>: <problem>``."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where = where
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


class ModuleError(LocatedError):
    """A module was misused or failed; `where` is the module's name."""

    @property
    def module(self) -> str:
        return self.where


class DataError(LocatedError):
    """Input data (an array or a file) is unusable; `where` names the source."""


class CheckpointError(LocatedError):
    """A checkpoint is missing, unreadable or from another configuration."""


class MessageError(SerketError):
    """A message could not be encoded or decoded: names the problem found."""


class ActorLost(ModuleError):
    """A module's actor, or a message it held, is gone (process killed, node lost)."""


class CallTimeout(ModuleError):
    """A call to an actor did not finish within its deadline."""
