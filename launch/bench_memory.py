"""Benchmark: peak memory of each process while the VAE learns from a large observation.

The embedded digits tiled `copies` times (3,000 x 784 float32 each, 9 MB), one VAE with
deskewing updated `updates` times through Ray, an epoch each (training does not change
what is held). A thread reads /proc/<pid>/smaps_rollup of the VAE's actor, the
coordinator and this driver every 20 ms. Private memory is what a process alone holds;
RSS also counts the pages of Ray's object store it has read, which are shared. Linux.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

import runtime as srk
from actors import vae
from launch import data

_SAMPLE_S = 0.02


def memory_mb(pid: int) -> tuple[int, int]:
    """(RSS, private) in MB, from the kernel's per-process summary."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    return fields["Rss"] // 1024, private // 1024


class PeakSampler(threading.Thread):
    """Peak (RSS, private) MB of each named process, sampled every `every_s` until `done`.

    Reading a process's smaps takes its memory map's lock: sampled often, a process that
    allocates much (a shard of a large update) is slowed down by the sampling itself.
    """

    def __init__(self, pids: dict[str, int], every_s: float = _SAMPLE_S) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.pids = pids
        self.peaks = {name: (0, 0) for name in pids}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, pid in self.pids.items():
                try:
                    rss, private = memory_mb(pid)
                except OSError:  # the process is gone or between states
                    continue
                peak = self.peaks[name]
                self.peaks[name] = (max(peak[0], rss), max(peak[1], private))
            time.sleep(self.every_s)


def run(
    copies: int, updates: int, out: Path, num_cpus: int | None = None
) -> dict[str, tuple[int, int]]:
    """Prints and returns the peaks per process: {name: (RSS MB, private MB)}."""
    digits, _ = data.tutorial_digits()
    images = np.tile(digits.images, (copies, 1)).astype(np.float32)
    megabytes = images.nbytes / 2**20
    print(f"observations: {images.shape[0]} x {images.shape[1]} float32, {megabytes:.0f} MB")
    session = srk.init(out, num_cpus=num_cpus)
    try:
        observation = srk.Observation(images)
        model = vae.VAE(18, itr=1, batch_size=500, preprocess="actors.images:deskew")
        model.connect(observation)
        pids = {p["module"]: p["pid"] for p in session.placements()}
        pids |= {"coordinator": session.status()["coordinator"]["pid"], "driver": os.getpid()}
        sampler = PeakSampler(pids)
        sampler.start()
        for _ in range(updates):
            model.update()
        sampler.done.set()
        sampler.join()
    finally:
        srk.shutdown()
    print(f"{'process':16}{'peak RSS (MB)':>15}{'peak private (MB)':>19}{'private / data':>16}")
    for name, (rss, private) in sampler.peaks.items():
        print(f"{name:16}{rss:>15}{private:>19}{private / megabytes:>16.1f}")
    return sampler.peaks
