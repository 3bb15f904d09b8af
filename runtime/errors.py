"""The errors serket-ray raises to its users.

Every error names where it happened (a module, a message, a file) and what was wrong, so a
user can act on it without reading a traceback from inside Ray or torch. They are plain
exceptions whose arguments are strings, so Ray can carry them from an actor to the caller.
"""


class SerketError(Exception):
    """Base class of every error serket-ray raises on purpose."""


class ModuleError(SerketError):
    """A module was misused or failed: names the module and the problem."""

    def __init__(self, module: str, problem: str) -> None:
        super().__init__(module, problem)
        self.module = module
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.module}: {self.problem}"


class MessageError(SerketError):
    """A message could not be encoded or decoded: names the problem found."""


class DataError(SerketError):
    """Input data (an array or a file) is unusable: names the source and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(source, problem)
        self.source = source
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"
