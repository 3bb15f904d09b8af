"""Result files and checkpoints written behind the run, in order, on one thread.

A module's update ends with writing its result files and a checkpoint. On the critical
path of a round that costs text formatting and disk time for every element, every round:
about 0.1 s a round for the 3,000 tutorial digits and seconds for millions of elements.
Written behind, it overlaps the next module's update instead. One thread keeps the
writes in update order, so every checkpoint on disk is one that was committed in
sequence. After a failed write nothing more is written (a later checkpoint could name
files the failed one never wrote); the failure is raised at the next `raise_failed` or
`wait`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class WriteQueue:
    def __init__(self) -> None:
        # Written by hand around a one-thread pool: no library stops the queue at the first
        # failed job and keeps that failure for the caller.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serket-writes")
        self._pending: deque[Future[None]] = deque()
        self._failure: Exception | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` after every job submitted before it (raises an earlier failure)."""
        self.raise_failed()
        self._pending.append(self._pool.submit(self._unless_failed, job))

    def _unless_failed(self, job: Callable[[], None]) -> None:
        if self._failure is None:
            try:
                job()
            except Exception as exc:  # kept for the caller, raised in its thread
                self._failure = exc

    def raise_failed(self) -> None:
        """Raise the first failure of a finished job, if any; does not wait."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        if self._failure is not None:
            raise self._failure

    def wait(self) -> None:
        """Return once every job submitted so far has run; raise the first failure."""
        while self._pending:
            self._pending.popleft().result()
        self.raise_failed()
