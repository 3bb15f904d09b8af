"""A real two-node Ray cluster of separate `ray start` processes, and the command line run
against it with --address.

The head listens on 127.0.0.2 and the second node on 127.0.0.3: Ray rewrites only
127.0.0.1 and "localhost" to the machine's outward address, so other loopback addresses
keep all traffic on this machine's loopback. Token authentication stays on
(RAY_AUTH_MODE=token; the token lives in ~/.ray/auth_token). Every process the cluster
started is killed by process id afterwards.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

HEAD, WORKER = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HEAD, 0))
        return probe.getsockname()[1]


def _ray_processes() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ray" in command:
                found.add(int(entry.name))
    return found


@pytest.fixture(scope="module")
def real_cluster():
    before = _ray_processes()
    temp = tempfile.mkdtemp(prefix="sr", dir="/tmp")  # short: Ray's socket paths must fit
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    address = f"{HEAD}:{port}"
    start = {"env": env, "check": True, "timeout": 180, "capture_output": True}
    try:
        subprocess.run(
            [ray_cli, "start", "--head", f"--node-ip-address={HEAD}", f"--port={port}",
             "--num-cpus=1", "--num-gpus=0", '--resources={"cpu_node": 1}', f"--temp-dir={temp}",
             "--include-dashboard=false", "--disable-usage-stats"],
            **start,
        )  # fmt: skip
        subprocess.run(
            [ray_cli, "start", f"--address={address}", f"--node-ip-address={WORKER}",
             "--num-cpus=2", "--num-gpus=1", '--resources={"gpu_node": 1}',
             "--dashboard-agent-listen-port=0", "--metrics-export-port=0", "--disable-usage-stats"],
            **start,
        )  # fmt: skip
        yield address, env
    finally:
        started = _ray_processes() - before - {os.getpid()}
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and started & _ray_processes():
            time.sleep(0.2)
        assert not started & _ray_processes(), "cluster processes left running"


def test_command_line_runs_on_a_real_two_node_cluster(real_cluster, tmp_path, digits):
    address, env = real_cluster
    np.save(tmp_path / "data.npy", digits.images)
    np.savetxt(tmp_path / "labels.txt", digits.labels, fmt="%d")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "launch.cli", "tutorial", "--address", address,
         "--data", "data.npy", "--labels", "labels.txt", "--rounds", "2", "--epochs", "2",
         "--batch-size", "100", "--place", "gmm:cpu_node=1", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    placed = {p["module"]: p for p in json.loads((out / "placements.json").read_text())}
    assert placed["module001_vae"]["node_ip"] == WORKER  # the node with the GPU
    assert placed["module001_vae"]["gpu_ids"] == [0]
    assert placed["module002_gmm"]["node_ip"] == HEAD  # pinned by its custom resource
    # Results land with the driver, whichever node computed them.
    assert np.loadtxt(out / "module001_vae" / "round_002" / "z_learn.txt").shape == (200, 18)
    assert np.loadtxt(out / "module002_gmm" / "class_learn.txt").shape == (200,)
