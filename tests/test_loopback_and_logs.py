"""An embedded Ray started the way a user starts it: loopback only, and a clean log.

Each check runs in a process of its own, without the Makefile's or the tests' Ray
environment (Ray's single-machine mode is not set beforehand), with its output to a pipe
as under `ray job submit` or CI.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}

SCRIPT = """
import json, sys
import numpy as np
import psutil
import runtime as srk
from launch.examples.pca_features import PCAFeatures

srk.init(sys.argv[1], num_cpus=1, verbose=True)
obs = srk.Observation(np.random.default_rng(0).random((50, 4)))
pca = PCAFeatures(2)
pca.connect(obs)
pca.update()
me = psutil.Process()
tree = {me.pid, *(child.pid for child in me.children(recursive=True))}
listening = [
    [c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()]
    for c in psutil.net_connections("tcp")
    if c.status == psutil.CONN_LISTEN and c.pid in tree
]
print(json.dumps(listening))
srk.shutdown()
"""


def _user_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # what the Makefile and tests set
    return env


def test_embedded_ray_listens_on_loopback_only(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "out")],
        env=_user_environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    listening = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for _ip, _port, name in listening}
    assert "gcs_server" in names and "raylet" in names, listening
    assert len(listening) >= 5, listening  # GCS, raylet, agents, the driver, workers
    outward = [entry for entry in listening if entry[0] not in LOOPBACK]
    assert not outward, f"listening beyond loopback: {outward}"
    # verbose=True: Ray's own start-up messages are shown.
    assert "Started a local Ray instance" in done.stderr


def test_a_piped_run_writes_lines_not_redraws(tmp_path, digits):
    np.save(tmp_path / "data.npy", digits.images)
    np.savetxt(tmp_path / "labels.txt", digits.labels, fmt="%d")
    done = subprocess.run(
        [
            sys.executable, "-m", "launch.cli", "tutorial", "--data", str(tmp_path / "data.npy"),
            "--labels", str(tmp_path / "labels.txt"), "--rounds", "2", "--epochs", "3",
            "--batch-size", "100", "--latent-dim", "4", "--out", str(tmp_path / "out"),
            "--num-cpus", "2",
        ],
        env=_user_environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "\r" not in log
    # Ray's start-up chatter (its token notice among it) stays out unless --verbose.
    assert "Started a local Ray instance" not in log and "Token authentication" not in log
    updates = [line for line in done.stdout.splitlines() if re.match(r"round \d", line)]
    assert [line.split()[:3] for line in updates] == [
        ["round", "1/2", "vae"], ["round", "1/2", "gmm"],
        ["round", "2/2", "vae"], ["round", "2/2", "gmm"],
    ]  # fmt: skip
    assert re.search(r"round 2/2  gmm  [\d.]+ s  .*acc \d", done.stdout)
    assert (tmp_path / "out" / "report" / "report.html").exists()
