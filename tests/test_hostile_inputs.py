"""Hostile input: each case gets a clear error, and the earlier run's files stay untouched.

A small real run is made first; every case then points the command line (or the API) at
that run's directory and must leave every byte of it as it was. Malformed messages
(truncated, random bytes, lying array headers, oversized) are in test_codec.py.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest

import runtime as srk
from actors import gmm, vae
from launch import cli
from launch.examples.pca_features import PCAFeatures
from runtime import codec
from runtime.checkpoint import data_digest, fingerprint
from runtime.host import ModuleHost

pytestmark = pytest.mark.usefixtures("local_ray")

SMALL = ["--rounds", "1", "--epochs", "2", "--batch-size", "100", "--latent-dim", "4"]


def _fingerprint(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, digits):
    """A finished small run, its data files, and the fingerprint of everything it wrote."""
    base = tmp_path_factory.mktemp("earlier")
    np.save(base / "data.npy", digits.images)
    np.savetxt(base / "labels.txt", digits.labels, fmt="%d")
    run = base / "run"
    argv = ["tutorial", "--data", str(base / "data.npy"), "--labels", str(base / "labels.txt")]
    assert cli.main([*argv, *SMALL, "--out", str(run)]) == 0
    return base, run, _fingerprint(run)


@pytest.fixture
def run_copy(earlier, tmp_path):
    """A copy of the earlier run, for cases that must touch its checkpoint."""
    copy = tmp_path / "copy"
    shutil.copytree(earlier[1], copy)
    return copy


def _fails_cleanly(argv, capsys, message):
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert message in error, error


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("nan.txt", "0 1\nnan 0\n", "NaN or inf in 1 element(s), first at row 1"),
        ("inf.csv", "0,1\n1,inf\n", "NaN or inf"),
        ("empty.txt", "", "is empty: shape (0,)"),
        ("ragged.txt", "0 1 2\n0 1\n", "cannot be read as a numeric matrix"),
        ("strings.txt", "0 1\n0 one\n", "cannot be read as a numeric matrix"),
        ("column.txt", "0\n1\n0\n", "must be 2-D (elements x features), got shape (3,)"),
        ("missing.npy", None, "file not found"),
    ],
)
def test_bad_data_files(earlier, tmp_path, capsys, name, content, message):
    _, run, before = earlier
    if content is not None:
        (tmp_path / name).write_text(content)
    _fails_cleanly(["tutorial", "--data", str(tmp_path / name), "--out", str(run)], capsys, message)
    assert _fingerprint(run) == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-K", "500"], "module002_gmm: cannot split 200 elements into K=500 classes"),
        (["-K", "0"], "K must be a positive integer, got 0"),
        (["--latent-dim", "-3"], "latent_dim must be a positive integer, got -3"),
        (["--vae-threads", "0"], "module001_vae: num_threads must be a positive integer, got 0"),
    ],
)
def test_bad_model_settings(earlier, capsys, flags, message):
    base, run, before = earlier
    argv = ["tutorial", "--data", str(base / "data.npy"), "--out", str(run), *flags]
    _fails_cleanly(argv, capsys, message)
    assert _fingerprint(run) == before


def test_labels_of_the_wrong_length(earlier, tmp_path, capsys):
    base, run, before = earlier
    np.savetxt(tmp_path / "short.txt", np.arange(199), fmt="%d")
    argv = ["tutorial", "--data", str(base / "data.npy"), "--labels", str(tmp_path / "short.txt")]
    _fails_cleanly([*argv, "--out", str(run)], capsys, "has 199 labels for 200 data elements")
    assert _fingerprint(run) == before


def test_resume_where_nothing_was_run(tmp_path, capsys):
    _fails_cleanly(["tutorial", "--resume", str(tmp_path)], capsys, "run.json")


def test_a_new_run_over_an_earlier_one_is_refused(earlier, capsys):
    base, run, before = earlier
    argv = ["tutorial", "--data", str(base / "data.npy"), *SMALL, "--out", str(run)]
    _fails_cleanly(argv, capsys, "holds an earlier run; continue it with --resume")
    assert _fingerprint(run) == before


def test_overwrite_replaces_the_earlier_run_and_only_what_serket_ray_wrote(earlier, run_copy):
    base = earlier[0]
    stale_round = run_copy / "module001_vae" / "round_009"  # a round the new run won't reach
    stale_round.mkdir()
    (stale_round / "z_learn.txt").write_text("0 0\n")
    (run_copy / "notes.txt").write_text("the user's own")
    (run_copy / "checkpoints" / "README").write_text("the user's own")
    argv = ["tutorial", "--data", str(base / "data.npy"), *SMALL, "--seed", "3"]
    assert cli.main([*argv, "--out", str(run_copy), "--overwrite"]) == 0
    assert not stale_round.exists()
    assert (run_copy / "notes.txt").read_text() == "the user's own"
    assert (run_copy / "checkpoints" / "README").read_text() == "the user's own"
    assert json.loads((run_copy / "run.json").read_text())["seed"] == 3
    assert len((run_copy / "history.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (run_copy / "module001_vae").glob("round_*")) == ["round_001"]


def test_checkpoint_from_another_configuration_is_refused(run_copy, digits):
    copy = run_copy
    before = _fingerprint(copy)
    srk.init(copy, resume=True)
    try:
        obs = srk.Observation(digits.images)
        other = vae.VAE(4, itr=2, batch_size=100, seed=7)  # the run used seed 0
        with pytest.raises(
            srk.CheckpointError, match=r"module001_vae: its configuration .* differs"
        ):
            other.connect(obs)
    finally:
        srk.shutdown()
    assert _fingerprint(copy) == before


def test_resume_with_changed_data_is_refused(run_copy, digits):
    copy = run_copy
    before = _fingerprint(copy)
    srk.init(copy, resume=True)
    try:
        with pytest.raises(srk.CheckpointError, match="its data differs from the checkpointed"):
            obs = srk.Observation(digits.images[::-1])
            vae.VAE(4).connect(obs)
    finally:
        srk.shutdown()
    assert _fingerprint(copy) == before


def test_a_checkpoint_that_recorded_the_encoded_data_still_resumes(earlier, run_copy):
    # Checkpoints written before data digests took the values recorded the sha256 of the
    # observation's encoded message; resuming one must still work, and upgrade it.
    data = np.load(earlier[0] / "data.npy").astype(np.float32)
    envelope = codec.Envelope("module000_obs", codec.BROADCAST, "forward", 0, data)
    manifest_path = run_copy / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["observations"]["module000_obs"] == data_digest(data)
    manifest["observations"]["module000_obs"] = fingerprint(codec.encode(envelope))
    manifest_path.write_text(json.dumps(manifest))
    assert cli.main(["tutorial", "--resume", str(run_copy), "--rounds", "2"]) == 0
    upgraded = json.loads(manifest_path.read_text())["observations"]["module000_obs"]
    assert upgraded == data_digest(data)
    assert len((run_copy / "history.jsonl").read_text().splitlines()) == 4


def test_checkpoint_truncated_halfway_is_refused(run_copy, capsys):
    copy = run_copy
    state = next((copy / "checkpoints").glob("module001_vae.*.state.npz"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = _fingerprint(copy)
    _fails_cleanly(["tutorial", "--resume", str(copy)], capsys, "unreadable or truncated")
    assert _fingerprint(copy) == before


def test_manifest_truncated_halfway_is_refused(run_copy, capsys):
    copy = run_copy
    manifest = copy / "checkpoints" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])
    _fails_cleanly(["tutorial", "--resume", str(copy)], capsys, "manifest.json: unreadable")


def test_message_whose_array_does_not_fit_the_receiver_names_both_ends():
    host = ModuleHost(
        "module002_gmm",
        "actors.gmm:GMM",
        codec.pack({"K": 3}),
        [{"name": "module001_vae", "is_module": True, "shape": [10, 4]}],
        [10, 3],
    )
    wrong = codec.encode(codec.Envelope("module001_vae", "*", "forward", 1, np.zeros((10, 5))))
    with pytest.raises(
        srk.MessageError,
        match=r"forward message from module001_vae to module002_gmm does not fit: "
        r"array of shape \(10, 5\), expected \(10, 4\)",
    ):
        host.update(1, None, wrong)
    fitting = codec.encode(codec.Envelope("module001_vae", "*", "forward", 1, np.zeros((10, 4))))
    misaddressed = codec.encode(codec.Envelope("module001_vae", "module009_x", "backward", 1, None))
    with pytest.raises(srk.MessageError, match="addressed to 'module009_x'"):
        host.update(1, misaddressed, fitting)


def test_gmm_parameters_checked_before_any_actor(session):
    with pytest.raises(srk.ModuleError, match="K must be a positive integer, got -2"):
        gmm.GMM(-2)


@pytest.mark.parametrize(
    ("flag", "transform"), [("--jitter", "image_jitter"), ("--deskew", "deskew")]
)
def test_image_flags_on_data_that_are_not_square_images(tmp_path, capsys, flag, transform):
    np.save(tmp_path / "table.npy", np.random.default_rng(0).random((50, 5), dtype=np.float32))
    argv = ["tutorial", "--data", str(tmp_path / "table.npy"), flag, *SMALL, "-K", "2"]
    _fails_cleanly(
        [*argv, "--out", str(tmp_path / "run")],
        capsys,
        f"module001_vae: update 1 failed: ValueError: {transform} needs square images, "
        "got 5 features per element",
    )


class UnsendableFilesPCA(PCAFeatures):
    """Writes a file of strings, which no message may carry."""

    def learn(self, inputs, backward, ctx):
        update = super().learn(inputs, backward, ctx)
        return srk.Update(update.forward, update.backward, {"names.txt": np.array(["a"])})


def test_results_that_cannot_be_sent_name_the_module():
    host = ModuleHost(
        "module001_pca",
        f"{__name__}:UnsendableFilesPCA",
        codec.pack({"n_components": 2}),
        [{"name": "module000_obs", "is_module": False, "shape": [10, 4]}],
        [10, 2],
    )
    data = np.random.default_rng(0).random((10, 4))
    message = codec.encode(codec.Envelope("module000_obs", "*", "forward", 0, data))
    with pytest.raises(
        srk.ModuleError,
        match=r"module001_pca: its results cannot be sent: cannot encode an array of dtype <U1",
    ):
        host.update(1, None, message)
