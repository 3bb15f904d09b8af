"""Recognition mode through Ray: novel data through learned modules, nothing learned."""

import json

import numpy as np
import pytest

import runtime as srk
from actors import gmm, vae

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture
def learned(session, digits):
    """obs -> VAE -> GMM after one round on the 200 small digits."""
    obs = srk.Observation(digits.images)
    vae1 = vae.VAE(4, itr=3, batch_size=100)
    gmm1 = gmm.GMM(10, category=digits.labels)
    vae1.connect(obs)
    gmm1.connect(vae1)
    vae1.update()
    gmm1.update()
    return session, obs, vae1, gmm1


def test_novel_data_is_encoded_and_classified_without_learning(learned, digits):
    session, obs, _, gmm1 = learned
    learned_z = np.loadtxt(session.output_root / "module001_vae" / "z_learn.txt")
    novel, labels = digits.images[:70], digits.labels[:70]
    reports = srk.recognize({obs: novel}, category={gmm1: labels})
    assert [(r["module"], r["mode"]) for r in reports] == [
        ("module001_vae", "recognize"),
        ("module002_gmm", "recognize"),
    ]
    vae_dir, gmm_dir = session.output_root / "module001_vae", session.output_root / "module002_gmm"
    z = np.loadtxt(vae_dir / "z_recog.txt")
    assert z.shape == (70, 4)
    # The same digits recognised give the z they were given when learning: no training ran.
    np.testing.assert_allclose(z, learned_z[:70], atol=1e-5)
    classes = np.loadtxt(gmm_dir / "class_recog.txt")
    np.testing.assert_array_equal(classes, np.loadtxt(gmm_dir / "class_learn.txt")[:70])
    assert np.loadtxt(gmm_dir / "Pdz_recog.txt").shape == (70, 10)
    accuracy = float(np.loadtxt(gmm_dir / "acc_recog.txt"))
    assert 0 <= accuracy <= 1
    assert reports[1]["metrics"]["acc"] == pytest.approx(accuracy)
    assert len(json.loads((session.output_root / "recognition.json").read_text())) == 2
    assert session.status()["rounds"] == {"module001_vae": 1, "module002_gmm": 1}


def test_recognition_refuses_data_of_other_width(learned):
    _, obs, _, _ = learned
    with pytest.raises(srk.ModuleError, match="novel data has \\[5\\] features per element"):
        srk.recognize({obs: np.zeros((3, 5))})


def test_recognition_needs_data_for_every_observation(learned):
    _, _, vae1, _ = learned
    with pytest.raises(srk.ModuleError, match="module001_vae: recognition needs novel data"):
        srk.recognize({}, order=[vae1])


def test_recognition_before_learning_names_the_module(session, digits):
    obs = srk.Observation(digits.images)
    vae1 = vae.VAE(4, itr=1)
    vae1.connect(obs)
    with pytest.raises(srk.ModuleError, match="module001_vae: has learned nothing yet"):
        srk.recognize({obs: digits.images})


def test_recognition_labels_of_wrong_length_name_the_module(learned, digits):
    _, obs, _, gmm1 = learned
    with pytest.raises(srk.ModuleError, match=r"module002_gmm: recognition failed.*category has 3"):
        srk.recognize({obs: digits.images[:10]}, category={gmm1: [0, 1, 2]})


def test_serket_recognition_mode_loads_what_was_learned_and_learns_nothing(learned, digits):
    session = learned[0]
    root = session.output_root
    novel, labels = digits.images[100:170], digits.labels[100:170]
    obs2 = srk.Observation(novel)
    # No CPU reserved: the learning model's actors hold this Ray's 2.
    vae2 = vae.VAE(4, mode="recog", load_dir=str(root / "module001_vae")).place(num_cpus=0)
    gmm2 = gmm.GMM(10, category=labels, mode="recog", load_dir=str(root / "module002_gmm"))
    gmm2.place(num_cpus=0)
    vae2.connect(obs2)
    gmm2.connect(vae2)
    vae2.update()
    report = gmm2.update()
    vae_dir, gmm_dir = root / vae2.full_name, root / gmm2.full_name
    assert (vae2.full_name, gmm2.full_name) == ("module004_vae", "module005_gmm")
    z = np.loadtxt(vae_dir / "z_recog.txt")
    assert z.shape == (70, 4) and not (vae_dir / "z_learn.txt").exists()
    # The learned model encodes and classifies these digits as it did while learning.
    learned_z = np.loadtxt(root / "module001_vae" / "z_learn.txt")[100:170]
    np.testing.assert_allclose(z, learned_z, atol=1e-4)
    np.testing.assert_array_equal(
        np.loadtxt(gmm_dir / "class_recog.txt"),
        np.loadtxt(root / "module002_gmm" / "class_learn.txt")[100:170],
    )
    assert float(np.loadtxt(gmm_dir / "acc_recog.txt")) == pytest.approx(report["metrics"]["acc"])
    assert not (gmm_dir / "model.npz").exists()  # nothing learned, no model written


def test_serket_recognition_mode_refuses_a_folder_that_cannot_serve(learned, tmp_path, digits):
    session, _, _, _ = learned
    root = session.output_root
    obs2 = srk.Observation(digits.images[:50])
    with pytest.raises(srk.ModuleError, match=r"module004_vae: load_dir '.*nothing' holds no "
                       r"learned model \(model.npz is missing\)"):  # fmt: skip
        vae.VAE(4, mode="recog", load_dir=str(tmp_path / "nothing")).connect(obs2)
    with pytest.raises(srk.ModuleError, match=r"module005_vae: the model learned in .* does not "
                       r"fit: .*for 784 features and latent_dim=6"):  # fmt: skip
        vae.VAE(6, mode="recog", load_dir=str(root / "module001_vae")).connect(obs2)
    vae3 = vae.VAE(4, load_dir=str(root / "module001_vae")).place(num_cpus=0)
    vae3.connect(obs2)
    with pytest.raises(srk.ModuleError, match=r"module007_gmm: the model learned in .* does not "
                       r"fit: it has 10 classes of 4 dimensions; this GMM has K=3"):  # fmt: skip
        gmm.GMM(3, mode="recog", load_dir=str(root / "module002_gmm")).connect(vae3)
