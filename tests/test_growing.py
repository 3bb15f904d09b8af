"""Observations that grow while the model runs (Serket's ROS bridge without ROS): fed by
a Python queue, a Ray queue or a folder; modules go on from their state over all data
so far; checkpoints keep the rows taken in."""

import queue
import time

import numpy as np
import pytest
from PIL import Image

import runtime as srk
from actors import gmm, vae
from runtime.checkpoint import CheckpointStore
from runtime.storage import Folder
from tests.conftest import blobs

pytestmark = pytest.mark.usefixtures("local_ray")

CENTRES = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def _classes(root, module="module001_gmm"):
    return np.loadtxt(root / module / "class_learn.txt")


def test_a_queue_fed_observation_grows_between_updates(tmp_path):
    points, labels = blobs(100, CENTRES, 1.0)  # 300 points, labels 0, 1, 2, 0, ...
    arrivals = queue.Queue()
    arrivals.put(points[:100])
    srk.init(tmp_path, display="off")
    try:
        obs = srk.GrowingObservation(arrivals)
        gmm1 = gmm.GMM(3, category=labels)  # labels of the elements still to come, too
        gmm1.connect(obs)
        first = gmm1.update()
        assert _classes(tmp_path).shape == (100,)
        second = gmm1.update()  # nothing arrived: the same 100
        for row in points[100:250]:  # one element at a time, as a sensor sends them
            arrivals.put(row)
        third = gmm1.update()
    finally:
        srk.shutdown()
    assert _classes(tmp_path).shape == (250,)
    assert obs.shape == (250, 2)
    assert first["metrics"]["acc"] > 0.95 and third["metrics"]["acc"] > 0.95
    assert second["round"] == 2 and third["round"] == 3


def test_the_vae_keeps_its_weights_and_drops_the_prior_sent_for_fewer_elements(tmp_path, digits):
    arrivals = queue.Queue()
    arrivals.put(digits.images[:100])
    srk.init(tmp_path, display="off")
    try:
        obs = srk.GrowingObservation(arrivals)
        vae1 = vae.VAE(4, itr=3, batch_size=50)
        gmm1 = gmm.GMM(10, category=digits.labels)
        vae1.connect(obs)
        gmm1.connect(vae1)
        vae1.update()
        gmm1.update()
        first_losses = np.loadtxt(tmp_path / "module001_vae" / "loss.txt")
        arrivals.put(digits.images[100:])
        vae1.update()  # 200 digits; the GMM's prior covers 100: learnt without it
        gmm1.update()
        second_losses = np.loadtxt(tmp_path / "module001_vae" / "loss.txt")
    finally:
        srk.shutdown()
    assert np.loadtxt(tmp_path / "module001_vae" / "z_learn.txt").shape == (200, 4)
    assert _classes(tmp_path, "module002_gmm").shape == (200,)
    # Trained on from its weights: its first epoch on the grown data beats its first ever.
    assert second_losses[0] < first_losses[0]


def test_resume_restores_the_rows_taken_in_and_grows_on(tmp_path):
    points, labels = blobs(100, CENTRES, 1.0)
    arrivals = queue.Queue()
    arrivals.put(points[:90])

    def model(source):
        obs = srk.GrowingObservation(source)
        gmm1 = gmm.GMM(3, category=labels)
        gmm1.connect(obs)
        return obs, gmm1

    srk.init(tmp_path, display="off")
    try:
        _, gmm1 = model(arrivals)
        gmm1.update()
        arrivals.put(points[90:200])
        gmm1.update()
    finally:
        srk.shutdown()
    store = CheckpointStore(Folder(tmp_path / "checkpoints"))
    files = store.load().growing["module000_obs"]
    assert [store.read_state(f)["rows"].shape[0] for f in files] == [90, 110]
    later = queue.Queue()  # a new source: it sends what follows the data seen so far
    srk.init(tmp_path, resume=True, display="off")
    try:
        obs, gmm1 = model(later)
        assert obs.shape == (200, 2)  # from the checkpoint, before anything arrived
        assert gmm1.rounds_done == 2
        later.put(points[200:])
        report = gmm1.update()
    finally:
        srk.shutdown()
    assert report["round"] == 3
    assert _classes(tmp_path).shape == (300,)
    np.testing.assert_array_equal(
        np.concatenate(
            [store.read_state(f)["rows"] for f in store.load().growing["module000_obs"]]
        ),
        points.astype(np.float32),
    )


def test_a_folder_fed_observation_takes_new_npy_and_image_files(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "000.npy", rng.random((6, 16)))
    srk.init(tmp_path / "run", display="off")
    try:
        obs = srk.GrowingObservation(folder)
        gmm1 = gmm.GMM(2, algorithm="em")
        gmm1.connect(obs)
        gmm1.update()
        Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8)).save(folder / "001.png")
        (folder / "002.npy.tmp").write_bytes(b"being written")  # not taken until renamed
        gmm1.update()
    finally:
        srk.shutdown()
    assert obs.shape == (7, 16)
    assert _classes(tmp_path / "run").shape == (7,)


def test_a_ray_queue_fed_from_a_task(tmp_path):
    import ray
    from ray.util.queue import Queue

    points, labels = blobs(20, CENTRES, 1.0)
    arrivals = Queue()

    @ray.remote(num_cpus=0)
    def sensor(q, rows):
        q.put(rows)

    ray.get(sensor.remote(arrivals, points[:30]))
    srk.init(tmp_path, display="off")
    try:
        obs = srk.GrowingObservation(arrivals)
        gmm1 = gmm.GMM(3, category=labels)
        gmm1.connect(obs)
        gmm1.update()
        ray.get(sensor.remote(arrivals, points[30:]))
        gmm1.update()
    finally:
        srk.shutdown()
    assert obs.shape == (60, 2)


def test_growing_observations_refuse_bad_input(tmp_path):
    arrivals = queue.Queue()
    srk.init(tmp_path, display="off")
    try:
        with pytest.raises(srk.DataError, match=r"source must be a queue\.Queue"):
            srk.GrowingObservation([1, 2, 3])
        with pytest.raises(srk.DataError, match="no folder"):
            srk.GrowingObservation(tmp_path / "absent")
        silent = srk.GrowingObservation(queue.Queue(), first_wait_s=0.2)
        began = time.monotonic()
        with pytest.raises(srk.DataError, match=r"no data arrived within 0\.2 s"):
            gmm.GMM(2).connect(silent)
        assert time.monotonic() - began < 5
        arrivals.put(np.ones((5, 3)))
        obs = srk.GrowingObservation(arrivals)
        gmm1 = gmm.GMM(2, algorithm="em")
        gmm1.connect(obs)
        gmm1.update()
        arrivals.put(np.ones((2, 4)))
        with pytest.raises(srk.DataError, match="new rows have 4 features; it has 3"):
            gmm1.update()
        arrivals.put(np.full((1, 3), np.nan))
        with pytest.raises(srk.DataError, match="holds NaN or inf"):
            gmm1.update()
        arrivals.put(np.ones((4, 3)))
        with pytest.raises(srk.ModuleError, match="sharded module cannot take data that grow"):
            gmm.GMM(2, shards=2).connect(srk.GrowingObservation(arrivals))
    finally:
        srk.shutdown()
