"""Progress of long updates, from the module actors to the driver, wherever they run.

A module reports progress through `ctx.progress(total, description)` in its actor. The
reports go to one small `ProgressBoard` actor beside the driver, which keeps only the
latest one; the driver reads the board while it waits for an update and draws one
display (`runtime.display`). The driver decides how progress is shown (a
live bar in a terminal, sparse lines in a log), which a progress bar drawn by each
actor and forwarded by Ray's log monitor cannot: it redraws with carriage returns.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from runtime import codec

# At most this often an actor sends a report (besides its first and its last): a VAE's
# epochs can come at 50 a second, a display needs a few.
REPORT_EVERY_S = 0.5


@dataclass(frozen=True)
class Step:
    """How far one module's current long step is."""

    module: str
    round: int
    done: int
    total: int
    description: str
    seconds: float  # since the step began


class ProgressBoard:
    """Runs as a Ray actor: the latest `Step` reported (msgpack-encoded), by any module.

    Modules update one at a time, so the latest step is the running update's; the driver
    clears the board before each call so that an earlier call's step is not shown.
    """

    def __init__(self) -> None:
        self._latest: bytes | None = None

    def report(self, step: bytes) -> None:
        self._latest = step

    def clear(self) -> None:
        self._latest = None

    def latest(self) -> bytes | None:
        return self._latest


def decoded(step: bytes | None) -> Step | None:
    """A board's answer as a `Step` (None: the module has reported nothing yet)."""
    return None if step is None else Step(**codec.unpack(step))


class BoardProgress:
    """`Progress` for a module running in an actor: reports to the board, throttled.

    The reports are fire-and-forget actor calls: a slow or lost board never slows or
    fails an update.
    """

    def __init__(self, board: Any, module: str, round_: int, total: int, description: str):
        self._board = board
        self._module = module
        self._round = round_
        self._total = total
        self._description = description
        self._done = 0
        self._began = time.monotonic()
        self._sent_at = -REPORT_EVERY_S
        self._send()

    def update(self, n: int = 1) -> None:
        self._done += n
        if time.monotonic() - self._sent_at >= REPORT_EVERY_S or self._done >= self._total:
            self._send()

    def close(self) -> None:
        self._send()

    def _send(self) -> None:
        now = time.monotonic()
        self._sent_at = now
        step = Step(
            self._module, self._round, self._done, self._total, self._description,
            now - self._began,
        )  # fmt: skip
        self._board.report.remote(codec.pack(asdict(step)))
