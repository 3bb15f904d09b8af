"""Faults survived: module actors killed mid-update, stuck updates, a dead driver resumed.

Actors are killed the way the operating system kills them (SIGKILL to the worker
process, as the out-of-memory killer does), at a moment when their update is running.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import runtime as srk
from actors import gmm, vae
from tests.slow_modules import SlowGMM

pytestmark = pytest.mark.usefixtures("local_ray")


def _kill_during(module_name: str, session, after_s: float) -> threading.Thread:
    """SIGKILL the module's actor process `after_s` seconds from now."""
    pid = {p["module"]: p["pid"] for p in session.placements()}[module_name]

    def kill():
        time.sleep(after_s)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def _history(root):
    return [json.loads(line) for line in (root / "history.jsonl").read_text().splitlines()]


def test_gmm_actor_killed_during_its_update_is_restarted_and_the_update_rerun(tmp_path, digits):
    session = srk.init(tmp_path)
    try:
        obs = srk.Observation(digits.images)
        vae1, gmm1 = vae.VAE(4, itr=2, batch_size=100), SlowGMM(10, delay=3.0)
        vae1.connect(obs)
        gmm1.connect(vae1)
        vae1.update()
        killer = _kill_during("module002_gmm", session, after_s=1.0)
        report = gmm1.update()
        killer.join()
        assert report["round"] == 1
        assert session.status()["restarts"] == 1
        vae1.update()  # the VAE gets the class means from the restarted GMM's update
        gmm1.update()
    finally:
        srk.shutdown()
    assert [(h["module"], h["round"]) for h in _history(tmp_path)] == [
        ("module001_vae", 1), ("module002_gmm", 1), ("module001_vae", 2), ("module002_gmm", 2),
    ]  # fmt: skip
    assert np.loadtxt(tmp_path / "module002_gmm" / "class_learn.txt").shape == (200,)


def _vae_two_rounds(root, digits, kill_in_round_2: bool) -> np.ndarray:
    session = srk.init(root)
    try:
        obs = srk.Observation(digits.images)
        vae1, gmm1 = vae.VAE(4, itr=400, batch_size=50, hidden=(64,)), gmm.GMM(10)
        vae1.connect(obs)
        gmm1.connect(vae1)
        vae1.update()
        gmm1.update()
        killer = _kill_during("module001_vae", session, after_s=1.0) if kill_in_round_2 else None
        report = vae1.update()
        if killer:
            killer.join()
            assert session.status()["restarts"] == 1
        assert report["round"] == 2
    finally:
        srk.shutdown()
    return np.loadtxt(root / "module001_vae" / "z_learn.txt")


def test_vae_killed_during_training_resumes_from_its_checkpoint_and_matches(tmp_path, digits):
    disturbed = _vae_two_rounds(tmp_path / "killed", digits, kill_in_round_2=True)
    undisturbed = _vae_two_rounds(tmp_path / "calm", digits, kill_in_round_2=False)
    # Round 2 re-ran from round 1's checkpoint (weights and Adam state) with the same
    # seed: the result matches the undisturbed run up to floating-point noise.
    np.testing.assert_allclose(disturbed, undisturbed, atol=1e-3)


def test_an_update_past_its_deadline_fails_clearly_instead_of_hanging(tmp_path, digits):
    srk.init(tmp_path, update_timeout_s=8.0)
    try:
        obs = srk.Observation(digits.images)
        vae1, gmm1 = vae.VAE(4, itr=1, batch_size=100), SlowGMM(10, delay=30.0)
        vae1.connect(obs)
        gmm1.connect(vae1)
        vae1.update()
        began = time.monotonic()
        with pytest.raises(
            srk.ModuleError,
            match=r"module002_gmm: update 1 did not finish within 8 s; its actor was stopped",
        ):
            gmm1.update()
        assert time.monotonic() - began < 25
    finally:
        srk.shutdown()


def test_killed_driver_resumes_from_the_last_completed_update_and_can_run_on(tmp_path, digits):
    np.save(tmp_path / "data.npy", digits.images)
    np.savetxt(tmp_path / "labels.txt", digits.labels, fmt="%d")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "launch.cli", "tutorial"]
    first = subprocess.Popen(
        [*command, "--data", "data.npy", "--labels", "labels.txt", "--rounds", "3",
         "--epochs", "150", "--batch-size", "50", "--out", str(out)],
        cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 400  # generous: a loaded machine is slow, not wrong
    while time.monotonic() < deadline and first.poll() is None:
        history = out / "history.jsonl"
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started
    first.wait()
    done_before = len(_history(out))
    assert 3 <= done_before < 6, "the driver should die mid-run"

    resumed = subprocess.run(
        [*command, "--resume", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming: module001_vae has done" in resumed.stdout
    assert [(h["module"], h["round"]) for h in _history(out)] == [
        (m, r) for r in range(1, 4) for m in ("module001_vae", "module002_gmm")
    ]
    for name in ("z_learn.txt", "loss.txt"):
        assert (out / "module001_vae" / "round_003" / name).exists()
    assert np.loadtxt(out / "module002_gmm" / "class_learn.txt").shape == (200,)

    # The finished run goes on for a fourth round, and records it for the next resume.
    extended = subprocess.run(
        [*command, "--resume", str(out), "--rounds", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert [(h["module"], h["round"]) for h in _history(out)] == [
        (m, r) for r in range(1, 5) for m in ("module001_vae", "module002_gmm")
    ]
    assert json.loads((out / "run.json").read_text())["rounds"] == 4
    shrunk = subprocess.run(
        [*command, "--resume", str(out), "--rounds", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert shrunk.returncode != 0
    assert "has done 4 rounds already; --rounds 2 cannot undo them" in shrunk.stderr
    assert len(_history(out)) == 8
    assert json.loads((out / "run.json").read_text())["rounds"] == 4
