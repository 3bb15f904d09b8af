"""Serket's tutorial and example scripts, only their imports changed, each run as a user
runs it: in its own process, which starts its own embedded Ray, on small data (20
digits of each class; Serket's own settings: 200 epochs, 5 rounds). The recordings are
espeak-ng's, spoken here. Checked: Serket's directory numbering (every Observation takes
a number), file names and shapes. The VAE+GMM tutorial itself: test_tutorial_script.py."""

import subprocess
import sys

import numpy as np
import pytest

from launch.serket_scripts import SCRIPTS, script_text, write_data

PER_CLASS = 20
N = 10 * PER_CLASS


def _shape(path):
    """The file's array shape; None for an .npz (checked to exist)."""
    if path.suffix == ".npz":
        return None if path.exists() else "missing"
    return np.load(path).shape if path.suffix == ".npy" else np.loadtxt(path, ndmin=1).shape


EXPECTED = {
    "vae_gmm_mm": {
        "module001_vae/z_learn.txt": (N, 18),
        "module001_vae/loss.txt": (200,),
        "module002_gmm/class_learn.txt": (N,),
        "module002_gmm/mu_learn.txt": (N, 18),
        "module003_mm/msg_learn.txt": (N, 10),
        "module003_mm/trans_prob_learn.txt": (10, 10),
    },
    "vae_gmm_mlda": {
        "module002_vae/z_learn.txt": (N, 18),
        "module003_gmm/Pdz_learn.txt": (N, 10),
        "module004_mlda/categories_learn.txt": (N,),
        "module004_mlda/Pdz_learn.txt": (N, 10),
        "module004_mlda/Pmdw[0]_learn.npy": (N, 2400),
        "module004_mlda/Pmdw[1]_learn.npy": (N, 10),
        "module004_mlda/acc_learn.txt": (1,),
    },
    "vae_gmm_mlda_mm": {
        "module002_vae/x_hat_learn.npy": (N, 784),
        "module003_gmm/acc_learn.txt": (1,),
        "module004_mlda/acc_learn.txt": (1,),
        "module005_mm/msg_learn.txt": (N, 10),
    },
    "hmm": {  # two models in one script: the numbering goes on
        "module001_gmm/acc_learn.txt": (1,),
        "module002_gmm/class_learn.txt": (4 * PER_CLASS,),
        "module003_mm/trans_prob_learn.txt": (4, 4),
    },
    "mmlda": {
        "module004_mlda/Pmdw[2]_learn.npy": (N, 150),
        "module005_mlda/acc_learn.txt": (1,),
        "module006_mlda/Pdz_learn.txt": (N, 10),
        "module006_mlda/Pmdw[1]_learn.npy": (N, 10),
    },
    "getting_started": {"module001_mlda/acc_learn.txt": (1,)},
    "hac_lda": {
        "module000_hac/hac.txt": (9, 300),
        "module000_hac/model.npz": None,
        "module001_mlda/categories_learn.txt": (9,),
    },
}
ROUNDS = {
    "hmm": {"module001_gmm": 1, "module002_gmm": 5},
    "getting_started": {},
}


# vae_gmm: test_tutorial_script.py. vae_gmm_nn trains its network 10 x 2,500 steps (a
# minute even on 50 digits): `make bench-serket` runs it; test_serket_modules.py tests the
# NN through Ray.
@pytest.mark.parametrize("name", sorted(set(SCRIPTS) - {"vae_gmm", "vae_gmm_nn"}))
def test_serket_script_runs_with_only_its_imports_changed(name, tmp_path):
    write_data(name, tmp_path, per_class=PER_CLASS)
    (tmp_path / "script.py").write_text(script_text(name))
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for file, shape in EXPECTED[name].items():
        assert _shape(tmp_path / file) == shape, file
    modules = sorted(p.name for p in tmp_path.glob("module*"))
    assert modules == sorted({file.split("/")[0] for file in EXPECTED[name]} | set(
        ROUNDS.get(name, {})))  # fmt: skip
    for module, rounds in ROUNDS.get(name, {}).items():
        assert len(list((tmp_path / module).glob("round_*"))) == rounds
    for accuracy in tmp_path.glob("module*/acc_learn.txt"):
        assert 0.2 < float(np.loadtxt(accuracy)) <= 1.0, accuracy
    if name == "getting_started":  # the model's optimum (docs/modules.md)
        assert float(np.loadtxt(tmp_path / "module001_mlda/acc_learn.txt")) == pytest.approx(5 / 6)
