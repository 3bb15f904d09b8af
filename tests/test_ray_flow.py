"""Through Ray: the command line end to end, and bad input failing clearly in the caller.

One embedded Ray (2 CPUs) serves the whole file.
"""

import functools
import json
import os

import numpy as np
import pytest
from sklearn.decomposition import PCA

import runtime as srk
from actors import gmm, vae
from launch import bench_memory, cli
from launch.examples.pca_features import PCAFeatures
from runtime import codec

pytestmark = pytest.mark.usefixtures("local_ray")


def test_command_line_runs_user_files_and_reports(tmp_path, digits, capsys):
    np.save(tmp_path / "data.npy", digits.images)
    np.savetxt(tmp_path / "labels.txt", digits.labels, fmt="%d")
    out = tmp_path / "out"
    code = cli.main([
        "tutorial", "--data", str(tmp_path / "data.npy"), "--labels", str(tmp_path / "labels.txt"),
        "--rounds", "3", "--epochs", "3", "--batch-size", "100", "--latent-dim", "6",
        "-K", "10", "--seed", "1", "--out", str(out), "--keep-rounds", "1",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "round 1/3" in printed and "round 3/3" in printed
    assert "module001_vae on" in printed and "module002_gmm on" in printed
    table = printed[printed.index("round    acc") :].splitlines()
    assert [row.split()[0] for row in table[2:5]] == ["1", "2", "3"]
    assert np.loadtxt(out / "module001_vae" / "z_learn.txt").shape == (200, 6)
    assert np.loadtxt(out / "module002_gmm" / "class_learn.txt").shape == (200,)
    for module in ("module001_vae", "module002_gmm"):  # --keep-rounds 1: round 2 is gone
        rounds = sorted(p.name for p in (out / module).iterdir() if p.is_dir())
        assert rounds == ["round_001", "round_003"]
    latest = np.load(out / "module001_vae" / "x_hat_learn.npy")
    assert np.array_equal(latest, np.load(out / "module001_vae" / "round_003" / "x_hat_learn.npy"))
    assert (out / "latent_pca.png").stat().st_size > 10_000  # round 1 against round 3
    placements = json.loads((out / "placements.json").read_text())
    assert [p["module"] for p in placements] == ["module001_vae", "module002_gmm"]
    assert len((out / "history.jsonl").read_text().splitlines()) == 6
    assert json.loads((out / "run.json").read_text())["keep_rounds"] == 1


def test_command_line_reports_bad_files_without_a_traceback(tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("1 2\n3 oops\n")
    code = cli.main(["tutorial", "--data", str(tmp_path / "bad.txt"), "--out", str(tmp_path)])
    assert code == 2
    error = capsys.readouterr().err
    assert "bad.txt" in error and "cannot be read as a numeric matrix" in error
    assert "Traceback" not in error


def test_update_before_connect_names_the_module(session):
    vae1 = vae.VAE(4)
    with pytest.raises(srk.ModuleError, match=r"module000_vae: update\(\) called before connect"):
        vae1.update()


def test_connecting_to_something_that_is_not_a_module(session, digits):
    vae1 = vae.VAE(4)
    with pytest.raises(
        srk.ModuleError, match="argument 0 is a ndarray, not a module or Observation"
    ):
        vae1.connect(digits.images)


def test_fewer_elements_than_classes_fails_at_connect(session, digits):
    obs = srk.Observation(digits.images[:5])
    vae1, gmm1 = vae.VAE(4), gmm.GMM(10)
    vae1.connect(obs)
    with pytest.raises(srk.ModuleError, match="module002_gmm: cannot split 5 elements into K=10"):
        gmm1.connect(vae1)


def test_category_of_the_wrong_length_fails_at_connect(session, digits):
    obs = srk.Observation(digits.images)
    vae1, gmm1 = vae.VAE(4), gmm.GMM(10, category=digits.labels[:-1])
    vae1.connect(obs)
    with pytest.raises(srk.ModuleError, match="category has 199 labels for 200 elements"):
        gmm1.connect(vae1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN or inf in 1 element"),
        (np.array([[0.0, np.inf]]), "NaN or inf"),
        (np.zeros(5), r"must be 2-D .* got shape \(5,\)"),
        (np.zeros((0, 3)), "is empty"),
        (np.array([["a", "b"]]), "must be numeric"),
    ],
)
def test_bad_data_is_refused_in_the_callers_process(session, data, message):
    with pytest.raises(srk.DataError, match=message):
        srk.Observation(data)


def test_data_too_large_to_send_names_the_observation(session, monkeypatch):
    small_limit = functools.partial(codec.encode_wire, max_bytes=1000)
    monkeypatch.setattr("runtime.session.codec.encode_wire", small_limit)
    obs = srk.Observation(np.zeros((100, 4)))
    with pytest.raises(
        srk.DataError, match=r"module000_obs: cannot be sent to the modules: .* over the limit"
    ):
        vae.VAE(2).connect(obs)


def test_a_failure_inside_an_actor_names_the_module_and_keeps_earlier_results(session, digits):
    obs = srk.Observation(digits.images * 255)  # not in [0, 1]: the BCE loss refuses it
    vae1 = vae.VAE(4, itr=1, loss="mse", batch_size=100)
    vae1.connect(obs)
    vae1.update()
    written = (session.output_root / "module001_vae" / "z_learn.txt").read_text()

    obs2 = srk.Observation(digits.images * 255)
    vae2 = vae.VAE(4, itr=1, batch_size=100)
    vae2.connect(obs2)
    with pytest.raises(srk.ModuleError, match=r"module003_vae: update 1 failed: ValueError: a BCE"):
        vae2.update()
    assert (session.output_root / "module001_vae" / "z_learn.txt").read_text() == written
    assert not (session.output_root / "module003_vae").exists()


def test_updating_a_module_before_its_input_module_has_sent_anything(session, digits):
    obs = srk.Observation(digits.images)
    vae1, gmm1 = vae.VAE(4, itr=1, batch_size=100), gmm.GMM(3)
    vae1.connect(obs)
    gmm1.connect(vae1)
    with pytest.raises(srk.ModuleError, match="module001_vae has sent no forward message yet"):
        gmm1.update()


def test_a_module_class_defined_in_the_running_script_travels_to_its_actor(session, digits):
    # As Serket's examples define their VAEs: Ray ships the class by value.
    class ScriptModule(srk.Module):
        kind = "script"
        resources = srk.Resources(num_cpus=0)

        def __init__(self, scale, name=None):
            super().__init__(name)
            self.scale = scale

        def output_shape(self, shapes):
            return shapes[0]

        def learn(self, inputs, backward, ctx):
            return srk.Update(forward=inputs[0] * self.scale, backward=[None],
                              files={"pid.txt": os.getpid()})  # fmt: skip

    ScriptModule.__module__ = "__main__"
    module = ScriptModule(2.0)
    module.connect(srk.Observation(digits.images))
    module.update()
    assert int(np.loadtxt(session.output_root / module.full_name / "pid.txt")) != os.getpid()


def test_results_written_behind_land_and_a_failed_write_stops_the_run_cleanly(session, digits):
    obs = srk.Observation(digits.images)
    vae1, gmm1 = vae.VAE(4, itr=1, batch_size=100), gmm.GMM(3)
    vae1.connect(obs)
    gmm1.connect(vae1)
    root = session.output_root
    vae1.update(write_behind=True)
    gmm1.update(write_behind=True)
    session.flush()
    assert np.loadtxt(root / "module002_gmm" / "round_001" / "class_learn.txt").shape == (200,)
    assert len((root / "history.jsonl").read_text().splitlines()) == 2

    # A file where the GMM's round 2 folder goes: that write fails, behind the run.
    (root / "module002_gmm" / "round_002").write_text("in the way")
    vae1.update(write_behind=True)
    gmm1.update(write_behind=True)
    with pytest.raises(srk.ModuleError, match="module002_gmm: the results of update 2 could not"):
        vae1.update()
    # Nothing was written after it: the checkpoint on disk is the VAE's round 2, whole.
    manifest = json.loads((root / "checkpoints" / "manifest.json").read_text())
    assert {name: m["rounds"] for name, m in manifest["modules"].items()} == {
        "module001_vae": 2,
        "module002_gmm": 1,
    }
    assert len((root / "history.jsonl").read_text().splitlines()) == 3
    assert not (root / "module001_vae" / "round_003").exists()
    with pytest.warns(UserWarning, match="results not written: module002_gmm"):
        srk.shutdown()


def test_data_over_the_message_block_size_reaches_the_module_whole(session):
    """Observations larger than one message block travel as row blocks, to a module that
    sees them as one array: its PCA of them is the one of the data in this process."""
    rng = np.random.default_rng(0)
    rows = codec.BLOCK_BYTES // (1024 * 4) + 500
    signal = rng.standard_normal((rows, 2)) * [5, 2] @ rng.standard_normal((2, 1024))
    data = (signal + 0.01 * rng.standard_normal((rows, 1024))).astype(np.float32)
    assert data.nbytes > codec.BLOCK_BYTES
    obs = srk.Observation(data)
    pca1 = PCAFeatures(2)
    pca1.connect(obs)
    pca1.update()
    folder = session.output_root / "module001_pca"
    expected = PCA(2, random_state=0).fit(data)
    mean = np.load(folder / "pca_params.npz")["mean"]
    np.testing.assert_allclose(mean, expected.mean_, atol=1e-6)  # float64 sum, float32 mean
    np.testing.assert_allclose(
        np.loadtxt(folder / "features_learn.txt"), expected.transform(data), rtol=1e-4, atol=1e-3
    )


def test_memory_benchmark_reports_each_process(tmp_path, capsys):
    peaks = bench_memory.run(copies=1, updates=1, out=tmp_path)
    assert set(peaks) == {"module001_vae", "coordinator", "driver"}
    assert all(rss >= private > 0 for rss, private in peaks.values())
    printed = capsys.readouterr().out
    assert "observations: 3000 x 784 float32, 9 MB" in printed
    assert printed.splitlines()[-3].split()[0] == "module001_vae"
