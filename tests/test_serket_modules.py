"""Serket's other modules through Ray: HAC features (a source), the NN between a GMM and a
second view, CNN image features. One simulated cluster: a head (driver, coordinator) and
a second node that advertises `far_node`, where the modules under test are pinned."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import runtime as srk
from actors import cnn, gmm, hac, mlda, torch_nn
from launch import spoken_digits
from tests.conftest import blobs, head_and_node

FAR = {"resources": {"far_node": 1}}


@pytest.fixture(scope="module")
def far_node():
    yield from head_and_node(2, 1, {"far_node": 1})


@pytest.fixture(scope="module")
def nine_words(tmp_path_factory):
    """Nine recordings: "zero", "one", "two", three speakers each (Serket's HAC+LDA)."""
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    return spoken_digits.synthesise(tmp_path_factory.mktemp("words"), labels), labels


def _placed(session, name):
    return {p["module"]: p["node_id"] for p in session.placements()}[name]


# ---- HAC -----------------------------------------------------------------------------
def test_hac_lda_runs_with_the_extractor_on_the_far_node(far_node, nine_words, tmp_path):
    wavs, labels = nine_words
    session = srk.init(tmp_path, display="off")
    try:
        obs = hac.HACFeatureExtractor(wavs, [4, 4, 4], lags=[5, 2]).place(**FAR)
        mlda1 = mlda.MLDA(3, [100], category=labels)
        mlda1.connect(obs)  # as Serket's example: the extractor is neither connected nor updated
        report = mlda1.update()
        where = _placed(session, "module000_hac")
    finally:
        srk.shutdown()
    assert where == far_node.node_id
    features = np.loadtxt(tmp_path / "module000_hac" / "hac.txt")
    assert features.shape == (9, 2 * 3 * 16)
    # Each block counts the frame pairs `lag` apart of one stream: frames - lag of them.
    streams = [hac.read_streams(w, [5, 2], hac.MFCC_PARAMS, w) for w in wavs]
    frames = np.array([len(s[0]) for s in streams])
    blocks = features.reshape(9, 3, 2, 16).sum(axis=3)
    np.testing.assert_array_equal(blocks[:, :, 0], np.repeat(frames[:, None] - 5, 3, axis=1))
    np.testing.assert_array_equal(blocks[:, :, 1], np.repeat(frames[:, None] - 2, 3, axis=1))
    # The code books written are those the histograms were counted with.
    with np.load(tmp_path / "module000_hac" / "model.npz") as model:
        books = [model[f"codebook_{s}"] for s in hac.STREAMS]
    np.testing.assert_array_equal(features, hac.histograms(streams, books, [5, 2]))
    assert 0 <= report["metrics"]["acc"] <= 1
    assert (tmp_path / "module001_mlda" / "categories_learn.txt").exists()


def test_hac_resumes_from_its_checkpoint_without_its_recordings(far_node, tmp_path):
    folder = tmp_path / "wavs"
    wavs = spoken_digits.synthesise(folder, [0, 1, 2, 0, 1, 2])

    def model():
        obs = hac.HACFeatureExtractor(wavs, [3, 3, 3], lags=[2])
        mlda1 = mlda.MLDA(3, [50])
        mlda1.connect(obs)
        return obs, mlda1

    srk.init(tmp_path / "run", display="off")
    try:
        model()[1].update()
    finally:
        srk.shutdown()
    first = np.loadtxt(tmp_path / "run" / "module000_hac" / "hac.txt")
    for wav in wavs:
        Path(wav).unlink()  # the checkpoint holds the histograms: the files are not read again
    session = srk.init(tmp_path / "run", resume=True, display="off")
    try:
        obs, mlda1 = model()
        assert obs.rounds_done == 1
        mlda1.update()
        rounds = session.status()["rounds"]
    finally:
        srk.shutdown()
    assert rounds == {"module000_hac": 1, "module001_mlda": 2}
    state = srk_checkpoint_state(tmp_path / "run" / "checkpoints", "module000_hac")
    np.testing.assert_array_equal(state["features"], first)


def srk_checkpoint_state(folder: Path, module: str) -> dict[str, np.ndarray]:
    from runtime.checkpoint import CheckpointStore
    from runtime.storage import Folder

    store = CheckpointStore(Folder(folder))
    return store.read_state(store.load().modules[module]["state"])


def test_hac_recognition_quantises_new_recordings_with_the_learned_code_books(
    far_node, nine_words, tmp_path
):
    wavs, _ = nine_words
    srk.init(tmp_path, display="off")
    try:
        learned = hac.HACFeatureExtractor(wavs, [4, 4, 4], lags=[5])
        learned.update()
        novel = spoken_digits.synthesise(tmp_path / "novel", [2, 1], seed=3)
        recog = hac.HACFeatureExtractor(
            novel, [4, 4, 4], lags=[5], mode="recog", load_dir=str(tmp_path / "module000_hac")
        )
        recog.update()
        with pytest.raises(srk.ModuleError, match=r"module002_hac: .*code books are"):
            hac.HACFeatureExtractor(
                novel, [5, 4, 4], lags=[5], load_dir=str(tmp_path / "module000_hac")
            ).update()
    finally:
        srk.shutdown()
    with np.load(tmp_path / "module000_hac" / "model.npz") as model:
        books = [model[f"codebook_{s}"] for s in hac.STREAMS]
    streams = [hac.read_streams(w, [5], hac.MFCC_PARAMS, w) for w in novel]
    np.testing.assert_array_equal(
        np.loadtxt(tmp_path / "module001_hac" / "hac_recog.txt"),
        hac.histograms(streams, books, [5]),
    )


def test_hac_names_the_file_that_is_missing_through_ray(far_node, nine_words, tmp_path):
    wavs, _ = nine_words
    srk.init(tmp_path, display="off")
    try:
        obs = hac.HACFeatureExtractor([*wavs[:3], str(tmp_path / "gone.wav")], [2, 2, 2])
        with pytest.raises(srk.DataError, match=r"module000_hac: .*gone\.wav: no such file"):
            obs.update()
    finally:
        srk.shutdown()


def test_hac_names_files_that_are_not_wav_or_too_short(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not a recording")
    flac = tmp_path / "tone.flac"
    soundfile.write(flac, np.sin(np.arange(22050) / 5.0), 22050, format="FLAC")
    short = tmp_path / "click.wav"
    soundfile.write(short, np.zeros(2000), 22050)  # 4 frames of 512 samples
    with pytest.raises(srk.DataError, match=r"notes\.wav: is not a sound file"):
        hac.read_streams(str(text), [5], hac.MFCC_PARAMS, str(text))
    with pytest.raises(srk.DataError, match=r"tone\.flac: is FLAC, not WAV"):
        hac.read_streams(str(flac), [5], hac.MFCC_PARAMS, str(flac))
    with pytest.raises(srk.DataError, match=r"click.wav: is too short: 4 frames .* at least 9"):
        hac.read_streams(str(short), [5], hac.MFCC_PARAMS, str(short))


def test_hac_checks_its_parameters(far_node, tmp_path):
    srk.init(tmp_path, display="off")
    try:
        with pytest.raises(srk.ModuleError, match="ks must give 3 code book sizes"):
            hac.HACFeatureExtractor(["a.wav"], [10, 10])
        with pytest.raises(srk.ModuleError, match=r"lags\[0\] must be a positive integer"):
            hac.HACFeatureExtractor(["a.wav"], [10, 10, 10], lags=[0])
        with pytest.raises(srk.ModuleError, match="filenames must be a non-empty list"):
            hac.HACFeatureExtractor("a.wav", [10, 10, 10])
        with pytest.raises(srk.ModuleError, match="takes no inputs"):
            hac.HACFeatureExtractor(["a.wav"], [1, 1, 1]).connect(srk.Observation(np.ones((1, 2))))
    finally:
        srk.shutdown()


def test_cooccurrences_count_code_pairs_lag_apart():
    codes = np.array([0, 1, 1, 0, 2])
    # pairs (code[t + 1], code[t]): (1,0) (1,1) (0,1) (2,0) -> bins 1*3+0, 4, 1, 6
    expected = np.bincount([3, 4, 1, 6], minlength=9)
    np.testing.assert_array_equal(hac._cooccurrences(codes, 3, 1), expected)


# ---- NN ------------------------------------------------------------------------------
class SmallNet(torch_nn.TorchNN):
    """Serket's subclass hook: the test's own network."""

    def build_model(self, input_dim, output_dim):
        from torch import nn

        return nn.Sequential(nn.Linear(input_dim, 8), nn.Tanh(), nn.Linear(8, output_dim))


def _two_views(n_per_class=40):
    z, labels = blobs(n_per_class, np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), 1.0)
    second = np.eye(3)[labels] + 0.05 * np.random.default_rng(1).standard_normal((len(z), 3))
    return z, second, labels


def _nn_model(z, second, labels, **nn_params):
    """module000_obs -> module002_gmm; module003_nn takes it and module001_obs."""
    first, view = srk.Observation(z), srk.Observation(second)
    gmm1 = gmm.GMM(3, category=labels)
    nn1 = SmallNet(40, 60, itr1=30, itr2=60, lr=0.05, **nn_params).place(**FAR)
    gmm1.connect(first)
    nn1.connect(gmm1, view)
    return gmm1, nn1


def test_nn_sends_the_gmm_a_class_message_from_the_far_node(far_node, tmp_path):
    z, second, labels = _two_views()
    session = srk.init(tmp_path, display="off")
    try:
        gmm1, nn1 = _nn_model(z, second, labels)
        gmm1.update()
        nn1.update()
        gmm1.update()  # classifies with the NN's message
        where = _placed(session, "module003_nn")
    finally:
        srk.shutdown()
    assert where == far_node.node_id
    folder = tmp_path / "module003_nn"
    message = np.loadtxt(folder / "message.txt")
    assert message.shape == (120, 3)
    np.testing.assert_allclose(message.sum(axis=1), 1, rtol=1e-5)
    assert np.ptp(message, axis=1).max() > 0.01  # moved away from the uniform start
    np.testing.assert_allclose(np.exp(np.loadtxt(folder / "weight.txt")) /
                               np.exp(np.loadtxt(folder / "weight.txt")).sum(1, keepdims=True),
                               message, rtol=1e-4)  # fmt: skip
    assert np.loadtxt(folder / "loss.txt").shape == (30,)
    with np.load(folder / "model.npz") as model:
        assert model["0.weight"].shape == (8, 3)  # the subclass's network
    history = [r["module"] for r in srk_history(tmp_path)]
    assert history == ["module002_gmm", "module003_nn", "module002_gmm"]


def srk_history(root: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (root / "history.jsonl").read_text().splitlines()]


def test_nn_resumes_and_recognises_with_its_learned_network(far_node, tmp_path):
    z, second, labels = _two_views()
    srk.init(tmp_path / "run", display="off")
    try:
        gmm1, nn1 = _nn_model(z, second, labels)
        gmm1.update()
        nn1.update()
    finally:
        srk.shutdown()
    learned = dict(np.load(tmp_path / "run" / "module003_nn" / "model.npz"))
    session = srk.init(tmp_path / "run", resume=True, display="off")
    try:
        gmm1, nn1 = _nn_model(z, second, labels)
        assert nn1.rounds_done == 1
        assert session.status()["rounds"]["module003_nn"] == 1
    finally:
        srk.shutdown()
    srk.init(tmp_path / "recog", display="off")
    try:
        gmm1, nn1 = _nn_model(z, second, labels, load_dir=str(tmp_path / "run" / "module003_nn"))
        gmm1.update()
        nn1.update()
    finally:
        srk.shutdown()
    folder = tmp_path / "recog" / "module003_nn"
    assert np.loadtxt(folder / "message_recog.txt").shape == (120, 3)
    assert not (folder / "loss.txt").exists()  # the network was not trained again
    state = srk_checkpoint_state(tmp_path / "recog" / "checkpoints", "module003_nn")
    for key, value in learned.items():
        np.testing.assert_array_equal(state[key], value)


def test_nn_refuses_bad_wiring_and_parameters(far_node, tmp_path):
    z, second, _ = _two_views(5)
    srk.init(tmp_path, display="off")
    try:
        gmm1 = gmm.GMM(3)
        gmm1.connect(srk.Observation(z))
        with pytest.raises(srk.ModuleError, match="connects to two inputs"):
            SmallNet(10, 10).connect(gmm1)
        with pytest.raises(srk.ModuleError, match="have 15 and 4 elements"):
            SmallNet(10, 10).connect(gmm1, srk.Observation(second[:4]))
        with pytest.raises(srk.ModuleError, match="device must be one of"):
            SmallNet(10, 10, device="tpu")
        with pytest.raises(srk.ModuleError, match="batch_size1 must be a positive integer"):
            SmallNet(0, 10)
    finally:
        srk.shutdown()


# ---- CNN -----------------------------------------------------------------------------
class SmallCNN(cnn.CNNFeatureExtractor):
    """A backbone of the test's own, through Serket-style subclassing."""

    def build_backbone(self):
        from torch import nn

        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Six small PNGs (red, green, blue squares; two of each) and weights for SmallCNN."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index in range(6):
        pixels = np.zeros((20, 20, 3), np.uint8)
        pixels[4:16, 4:16, index % 3] = 200 + index
        paths.append(str(folder / f"{index:03d}.png"))
        Image.fromarray(pixels).save(paths[-1])
    torch.manual_seed(0)
    weights = folder / "small.pt"
    torch.save(SmallCNN(paths, weights="unused").build_backbone().state_dict(), weights)
    return paths, str(weights)


def test_cnn_features_from_the_far_node_feed_a_gmm(far_node, images, tmp_path):
    paths, weights = images
    session = srk.init(tmp_path, display="off")
    try:
        features = SmallCNN(paths, weights=weights, image_size=16, batch_size=4).place(**FAR)
        gmm1 = gmm.GMM(3, category=[0, 1, 2, 0, 1, 2])
        gmm1.connect(features)
        gmm1.update()
        where = _placed(session, "module000_cnn")
    finally:
        srk.shutdown()
    assert where == far_node.node_id
    got = np.loadtxt(tmp_path / "module000_cnn" / "features.txt")
    assert got.shape == (6, 4)
    # The same numbers as the backbone with those weights on the resized, normalised images.
    network = SmallCNN(paths, weights=weights).build_backbone().eval()
    network.load_state_dict(torch.load(weights, weights_only=True))
    pixels = np.stack(
        [SmallCNN(paths, weights=weights, image_size=16)._pixels(p, "") for p in paths]
    )
    with torch.no_grad():
        expected = network(torch.as_tensor(pixels)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[0], got[3], rtol=0.1)  # the red squares look alike
    assert (tmp_path / "module001_gmm" / "class_learn.txt").exists()
    # Resumed, the features come from the checkpoint: the images are not read again.
    gone = [p + ".moved" for p in paths]
    for path, moved in zip(paths, gone, strict=True):
        Path(path).rename(moved)
    try:
        srk.init(tmp_path, resume=True, display="off")
        features = SmallCNN(paths, weights=weights, image_size=16, batch_size=4).place(**FAR)
        gmm1 = gmm.GMM(3, category=[0, 1, 2, 0, 1, 2])
        gmm1.connect(features)
        assert features.rounds_done == 1
        assert gmm1.update()["round"] == 2
    finally:
        srk.shutdown()
        for path, moved in zip(paths, gone, strict=True):
            Path(moved).rename(path)
    restored = srk_checkpoint_state(tmp_path / "checkpoints", "module000_cnn")["features"]
    np.testing.assert_allclose(restored, got, rtol=1e-4, atol=1e-6)


def test_cnn_without_weights_says_how_to_give_them(far_node, images, tmp_path):
    paths, _ = images
    srk.init(tmp_path, display="off")
    try:
        with pytest.raises(srk.ModuleError, match=r"module000_cnn: needs the backbone's weights"):
            cnn.CNNFeatureExtractor(paths)
        with pytest.raises(srk.DataError, match=r"module001_cnn: .*none\.pt: no such weights"):
            SmallCNN(paths, weights=str(tmp_path / "none.pt"), image_size=16).update()
    finally:
        srk.shutdown()


def test_cnn_names_weights_and_images_it_cannot_read(images, tmp_path):
    paths, weights = images
    junk = tmp_path / "junk.pt"
    junk.write_text("not tensors")
    with pytest.raises(srk.DataError, match=r"m: .*junk\.pt: is not a torch state_dict file"):
        SmallCNN(paths, weights=str(junk))._pretrained("m")
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(srk.DataError, match=r"other\.pt: does not fit .* missing, first '0\."):
        SmallCNN(paths, weights=str(other))._pretrained("m")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(srk.DataError, match=r"m: .*notes\.png: is not an image PIL can read"):
        SmallCNN(paths, weights=weights)._pixels(str(text), "m")


def test_cnn_default_backbone_is_torchvision_or_a_clear_error(far_node, images, tmp_path):
    """torchvision where it imports (a GPU machine's set-up installs it); else the error."""
    paths, _ = images
    try:
        import torchvision
    except Exception:
        torchvision = None
    srk.init(tmp_path, display="off")
    try:
        if torchvision is None:
            with pytest.raises(srk.ModuleError, match="torchvision cannot be imported here"):
                cnn.CNNFeatureExtractor(paths, backbone="resnet18", weights="w.pt").update()
            return
        weights = tmp_path / "resnet18.pt"
        torch.save(torchvision.models.resnet18().state_dict(), weights)
        extractor = cnn.CNNFeatureExtractor(
            paths, backbone="resnet18", weights=str(weights), image_size=64
        )
        extractor.update()
    finally:
        srk.shutdown()
    assert np.loadtxt(tmp_path / "module000_cnn" / "features.txt").shape == (6, 512)
