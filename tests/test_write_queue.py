"""The write queue: jobs in order, and the first failure stops it and reaches the caller."""

import threading

import pytest

from runtime.errors import ModuleError
from runtime.write_queue import WriteQueue


def test_jobs_run_in_the_order_submitted_and_wait_returns_after_all():
    queue, done = WriteQueue(), []
    gate = threading.Event()
    queue.submit(lambda: (gate.wait(5), done.append(1)))
    queue.submit(lambda: done.append(2))
    queue.raise_failed()  # nothing has failed; does not wait for the gated job
    assert done == []
    gate.set()
    queue.wait()
    assert done == [1, 2]


def test_after_a_failed_job_nothing_more_is_written_and_every_call_raises_it():
    queue, done = WriteQueue(), []
    gate = threading.Event()

    def failing():
        gate.wait(5)
        raise ModuleError("module002_gmm", "the results of update 2 could not be written")

    queue.submit(failing)
    queue.submit(lambda: done.append("after"))  # queued behind the failing job
    gate.set()
    with pytest.raises(ModuleError, match="module002_gmm: the results of update 2"):
        queue.wait()
    with pytest.raises(ModuleError, match="module002_gmm"):
        queue.submit(lambda: done.append("later"))
    with pytest.raises(ModuleError, match="module002_gmm"):
        queue.raise_failed()
    assert done == []
