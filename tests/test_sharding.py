"""Sharded modules on a simulated two-node cluster: results, placement, faults, data files.

One Cluster for the file (a head and a worker node, loopback only). A sharded GMM's
shards are spread over both nodes; sharded EM must give unsharded EM's result, sharded
Gibbs must repeat for a seed and sample the same posterior; a shard killed or its node
removed mid-update is restarted from its checkpoint part and the update's result is an
undisturbed run's.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors.gmm import GMM
from actors.mlda import MLDA
from actors.mm import MarkovModel
from launch.examples.pca_features import PCAFeatures
from runtime.errors import CheckpointError, DataError, ModuleError
from runtime.shard_files import read_parts, read_result
from runtime.storage import Folder
from tests.conftest import blobs
from tests.probe_modules import ProbedVAE
from tests.slow_modules import SlowGMM

CENTRES = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])


@pytest.fixture(scope="module")
def cluster():
    config = {"max_direct_call_object_size": 1024}  # messages live on their sender's node
    simulated = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 3, "_system_config": config}
    )
    worker = simulated.add_node(num_cpus=2)
    simulated.wait_for_nodes()
    yield simulated, worker
    ray.shutdown()
    simulated.shutdown()


@pytest.fixture(scope="module")
def data():
    z, labels = blobs(300, CENTRES, 1.0)
    return z.astype(np.float32), labels


def _element_wise(folder, stem, shards):
    """A module's latest element-wise result: Serket's text file, or a sharded one's parts."""
    return np.loadtxt(folder / f"{stem}.txt") if shards == 1 else read_parts(folder, stem)


def _history(root):
    return [json.loads(line) for line in (root / "history.jsonl").read_text().splitlines()]


def _run(cluster, root, z, labels, rounds=2, **gmm_options):
    """A GMM (with `gmm_options`) on z for `rounds`; returns its reports and placements."""
    session = srk.init(root, address=cluster[0].address, display="off")
    try:
        obs = srk.Observation(z)
        module = GMM(3, category=labels, **gmm_options)
        module.connect(obs)
        reports = [module.update() for _ in range(rounds)]
        return reports, session.placements(), module.full_name
    finally:
        srk.shutdown()


def test_sharded_em_equals_unsharded_em_and_spreads_over_nodes(cluster, data, tmp_path):
    z, labels = data
    one, _, name = _run(cluster, tmp_path / "one", z, labels, algorithm="em")
    two, placed, _ = _run(cluster, tmp_path / "two", z, labels, algorithm="em", shards=2)
    assert len({p["node_id"] for p in placed}) == 2  # one shard on each node
    assert [p["shard"] for p in placed] == [0, 1]
    for a, b in zip(one, two, strict=True):
        assert a["metrics"]["log_likelihood"] == pytest.approx(b["metrics"]["log_likelihood"])
        assert a["metrics"]["acc"] == b["metrics"]["acc"]
    unsharded = np.loadtxt(tmp_path / "one" / name / "Pdz_learn.txt")
    sharded = read_parts(tmp_path / "two" / name, "Pdz_learn")
    np.testing.assert_allclose(sharded, unsharded, atol=1e-5)
    with (
        np.load(tmp_path / "one" / name / "model.npz") as p1,
        np.load(tmp_path / "two" / name / "model.npz") as p2,
    ):
        np.testing.assert_allclose(p2["means"], p1["means"], rtol=1e-9)
    # The driver got small reports only; the rows are in the shards' own files.
    assert set(two[0]) >= {"metrics", "shards"} and two[0]["shards"] == 2
    assert sorted(p.name for p in (tmp_path / "two" / name).glob("class_learn.part-*.npy")) == [
        "class_learn.part-0000.npy", "class_learn.part-0001.npy",
    ]  # fmt: skip


def test_sharded_gibbs_repeats_and_samples_the_same_posterior(cluster, data, tmp_path):
    z, labels = data
    first, _, name = _run(cluster, tmp_path / "a", z, labels, shards=2)
    again, _, _ = _run(cluster, tmp_path / "b", z, labels, shards=2)
    alone, _, _ = _run(cluster, tmp_path / "c", z, labels)
    assert first[-1]["metrics"] == again[-1]["metrics"]
    means = {}
    for run in ("a", "c"):
        with np.load(tmp_path / run / name / "model.npz") as params:
            means[run] = params["means"][np.lexsort(params["means"].T)]
    # Same posterior: class means within a few posterior standard deviations
    # (1 / sqrt(300) per class here).
    np.testing.assert_allclose(means["a"], means["c"], atol=0.25)
    assert first[-1]["metrics"]["acc"] == pytest.approx(alone[-1]["metrics"]["acc"], abs=0.02)


def _slow_run(cluster, root, z, interrupt=None):
    """A slow sharded EM GMM, two updates; `interrupt(placements)` runs 1 s into the
    second (with the placements from before it: the coordinator is busy meanwhile)."""
    session = srk.init(root, address=cluster[0].address, display="off")
    try:
        obs = srk.Observation(z)
        module = SlowGMM(3, delay=4.0, algorithm="em", shards=2)
        module.connect(obs)
        module.update()
        timer = None
        if interrupt is not None:
            timer = threading.Timer(1.0, interrupt, args=(session.placements(),))
            timer.start()
        report = module.update()
        if timer is not None:
            timer.join()
        return report, session.status(), session.placements(), module.full_name
    finally:
        srk.shutdown()


def test_a_shard_killed_mid_update_is_restarted_and_the_result_is_undisturbed(
    cluster, data, tmp_path
):
    z, _ = data

    def kill_shard_1(placements):
        os.kill(next(p["pid"] for p in placements if p.get("shard") == 1), signal.SIGKILL)

    calm, _, _, name = _slow_run(cluster, tmp_path / "calm", z)
    hit, status, _, _ = _slow_run(cluster, tmp_path / "hit", z, kill_shard_1)
    assert status["restarts"] == 1 and hit["round"] == 2
    assert hit["metrics"]["log_likelihood"] == calm["metrics"]["log_likelihood"]
    np.testing.assert_array_equal(
        read_parts(tmp_path / "hit" / name, "class_learn"),
        read_parts(tmp_path / "calm" / name, "class_learn"),
    )


def test_shards_on_a_removed_node_restart_elsewhere(cluster, data, tmp_path):
    simulated, _ = cluster
    simulated.add_node(num_cpus=2)  # so that the nodes left can host both shards
    simulated.wait_for_nodes()
    z, _ = data
    removed = []

    def remove_a_shard_node(placements):
        shard_nodes = {p["node_id"] for p in placements if "shard" in p}
        node = next(n for n in simulated.worker_nodes if n.node_id in shard_nodes)
        removed.append(node.node_id)
        simulated.remove_node(node)

    report, status, placed, _ = _slow_run(cluster, tmp_path, z, remove_a_shard_node)
    assert report["round"] == 2 and status["restarts"] >= 1
    assert removed and removed[0] not in {p["node_id"] for p in placed}
    assert [(h["module"], h["round"]) for h in _history(tmp_path)][-1][1] == 2


def _resume_and_update(cluster, root, z, labels, done):
    """Resume the 2-shard EM GMM run under `root`, which did `done` rounds; one more."""
    srk.init(root, address=cluster[0].address, resume=True, display="off")
    try:
        obs = srk.Observation(z)  # numbered first, as in the run resumed
        module = GMM(3, category=labels, algorithm="em", shards=2)
        module.connect(obs)
        assert module.rounds_done == done
        assert module.update()["round"] == done + 1
    finally:
        srk.shutdown()


def test_a_sharded_run_resumes_and_refuses_another_shard_count(cluster, data, tmp_path):
    z, labels = data
    _run(cluster, tmp_path, z, labels, rounds=1, algorithm="em", shards=2)
    _resume_and_update(cluster, tmp_path, z, labels, done=1)
    srk.init(tmp_path, address=cluster[0].address, resume=True, display="off")
    try:
        obs = srk.Observation(z)
        with pytest.raises(CheckpointError, match="differs from the checkpointed"):
            GMM(3, category=labels, algorithm="em", shards=3).connect(obs)
    finally:
        srk.shutdown()


def test_sharded_recognition_equals_unsharded(cluster, data, tmp_path):
    z, labels = data
    results = {}
    for shards in (1, 2):
        root = tmp_path / str(shards)
        srk.init(root, address=cluster[0].address, display="off")
        try:
            obs = srk.Observation(z)
            module = GMM(3, algorithm="em", shards=shards)
            module.connect(obs)
            module.update()
            reports = srk.recognize({obs: z[:101]}, category={module: labels[:101]})
        finally:
            srk.shutdown()
        probabilities = _element_wise(root / module.full_name, "Pdz_recog", shards)
        results[shards] = (reports[0]["metrics"], probabilities)
    assert results[2][1].shape == (101, 3)
    np.testing.assert_allclose(results[2][1], results[1][1], atol=1e-5)
    assert results[2][0]["acc"] == results[1][0]["acc"]


def test_data_files_are_read_by_the_actors_never_by_the_driver(cluster, data, tmp_path):
    z, labels = data
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(z)), 3)):
        np.save(folder / f"z-{i:05d}.npy", z[rows])
        np.save(folder / f"labels-{i:05d}.npy", labels[rows])
    opened = []
    watching = [True]

    def audit(event, args):
        if watching[0] and event == "open" and str(folder) in str(args[0]):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed: it stops watching at the end
    try:
        srk.init(tmp_path / "run", address=cluster[0].address, display="off")
        try:
            obs = srk.Observation(str(folder / "z-*.npy"))
            module = GMM(3, algorithm="em", shards=2, category=str(folder / "labels-*.npy"))
            module.connect(obs)
            assert obs.shape == z.shape
            files_report = module.update()
        finally:
            srk.shutdown()
    finally:
        watching[0] = False
    assert opened == []
    (direct,), _, _ = _run(cluster, tmp_path / "direct", z, labels, rounds=1, algorithm="em",
                           shards=2)  # fmt: skip
    assert files_report["metrics"]["acc"] == direct["metrics"]["acc"]


@pytest.mark.parametrize(
    ("make_bad", "problem"),
    [
        (lambda f: np.save(f / "z-00001.npy", np.zeros((5, 3), np.float32)),
         r"z-00001.npy has row shape \[3\], but .*z-00000.npy has \[2\]"),
        (lambda f: np.save(f / "z-00001.npy", np.zeros((5, 2), np.float64)),
         "z-00001.npy has dtype"),
        (lambda f: np.save(f / "z-00001.npy", np.zeros((0, 2), np.float32)),
         "z-00001.npy is empty"),
        (lambda f: (f / "z-00001.npy").write_bytes(b"not a numpy file"),
         "z-00001.npy cannot be read as .npy"),
        (lambda f: np.save(f / "z-00001.npy", np.array([[0, 0], [1, np.nan]], np.float32)),
         "z-00001.npy holds NaN or inf, first at row 1"),
    ],
)  # fmt: skip
def test_bad_shard_files_are_refused_naming_the_file_and_row(cluster, tmp_path, make_bad, problem):
    folder = tmp_path / "shards"
    folder.mkdir()
    np.save(folder / "z-00000.npy", np.ones((5, 2), np.float32))
    make_bad(folder)
    srk.init(tmp_path / "run", address=cluster[0].address, display="off")
    try:
        obs = srk.Observation(str(folder))
        with pytest.raises(DataError, match=problem):
            GMM(2, shards=2).connect(obs)
    finally:
        srk.shutdown()
    assert not (tmp_path / "run" / "history.jsonl").exists()


def test_sharded_markov_model_and_mlda_equal_unsharded(cluster, tmp_path):
    rng = np.random.default_rng(1)
    sequence = rng.dirichlet(np.ones(3) * 0.3, size=301).astype(np.float32)  # P(class) rows
    counts = rng.poisson(3.0, size=(301, 8)).astype(np.float32)  # bags of 8 words
    found = {}
    for shards in (1, 3):
        root = tmp_path / str(shards)
        srk.init(root, address=cluster[0].address, display="off")
        try:
            markov = MarkovModel(shards=shards)
            topics = MLDA(3, itr=20, shards=shards)
            markov.connect(srk.Observation(sequence, name="seq"))
            topics.connect(srk.Observation(counts, name="bags"))
            markov.update()
            topics.update()
        finally:
            srk.shutdown()
        found[shards] = {
            "transitions": np.loadtxt(root / markov.full_name / "trans_prob_learn.txt"),
            "prior": _element_wise(root / markov.full_name, "msg_learn", shards),
            "phi": np.loadtxt(root / topics.full_name / "phi0_learn.txt"),
            "theta": _element_wise(root / topics.full_name, "Pdz_learn", shards),
        }
    for key, unsharded in found[1].items():
        np.testing.assert_allclose(found[3][key], unsharded, rtol=1e-5, atol=1e-6, err_msg=key)


def test_connected_shards_sit_together_and_the_sharded_user_module_equals_unsharded(
    cluster, data, tmp_path
):
    z, _ = data
    rng = np.random.default_rng(2)
    wide = (z @ rng.standard_normal((2, 6)) + 0.1 * rng.standard_normal((len(z), 6))).astype(
        np.float32
    )
    features = {}
    for shards in (1, 2):
        root = tmp_path / str(shards)
        session = srk.init(root, address=cluster[0].address, display="off")
        try:
            pca = PCAFeatures(2, shards=shards)
            classes = GMM(3, algorithm="em", shards=shards)
            pca.connect(srk.Observation(wide))
            classes.connect(pca)
            pca.update()
            classes.update()
            placed = session.placements()
        finally:
            srk.shutdown()
        features[shards] = _element_wise(root / pca.full_name, "features_learn", shards)
    nodes = {(p["module"], p["shard"]): p["node_id"] for p in placed}
    assert nodes[(pca.full_name, 0)] != nodes[(pca.full_name, 1)]
    for shard in (0, 1):  # shard i of the GMM beside shard i of the PCA it reads
        assert nodes[(classes.full_name, shard)] == nodes[(pca.full_name, shard)]
    np.testing.assert_allclose(features[2], features[1], rtol=1e-4, atol=1e-4)


def test_a_ray_data_dataset_and_its_labels_are_read_by_the_actors_in_order(cluster, data, tmp_path):
    z, labels = data
    blocks = np.array_split(z, 4)  # one dataset block each
    srk.init(tmp_path / "run", address=cluster[0].address, display="off")
    try:
        srk.current().start()  # the dataset's blocks belong to the session's Ray connection
        obs = srk.Observation(ray.data.from_numpy(blocks))
        # Labels from a dataset too, its blocks not the shards' ranges.
        module = GMM(3, algorithm="em", shards=2, category=ray.data.from_numpy(
            np.array_split(labels, 3)))  # fmt: skip
        module.connect(obs)
        assert obs.shape == z.shape
        from_dataset = module.update()
        short = f"category has {len(z) - 1} rows for {len(z)} elements"
        with pytest.raises(ModuleError, match=short):
            GMM(3, category=ray.data.from_numpy(labels[:-1])).connect(obs)
    finally:
        srk.shutdown()
    (direct,), _, _ = _run(cluster, tmp_path / "direct", z, labels, rounds=1, algorithm="em",
                           shards=2)  # fmt: skip
    assert from_dataset["metrics"] == pytest.approx(direct["metrics"])
    bad = [block.copy() for block in blocks]
    bad[1][3, 0] = np.nan
    srk.init(tmp_path / "bad", address=cluster[0].address, display="off")
    try:
        srk.current().start()
        with pytest.raises(
            DataError, match="block 1 of the dataset holds NaN or inf, first at row 3"
        ):
            GMM(3, shards=2).connect(srk.Observation(ray.data.from_numpy(bad)))
    finally:
        srk.shutdown()


def test_a_sharded_run_keeps_only_the_rounds_asked_for(cluster, data, tmp_path):
    z, _ = data
    srk.init(tmp_path, address=cluster[0].address, display="off", keep_rounds=1)
    try:
        module = GMM(3, algorithm="em", shards=2)
        module.connect(srk.Observation(z))
        for _ in range(3):
            module.update()
    finally:
        srk.shutdown()
    folder = tmp_path / module.full_name
    assert sorted(p.name for p in folder.glob("round_*")) == ["round_001", "round_003"]
    np.testing.assert_array_equal(
        read_parts(folder, "class_learn"), read_parts(folder / "round_003", "class_learn")
    )
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob(f"{module.full_name}*"))
    assert checkpoints == [
        f"{module.full_name}.r0003.s{shard:04d}.{what}"
        for shard in (0, 1)
        for what in ("forward.msgpack", "state.npz")
    ]


@pytest.fixture(scope="module")
def object_store():
    """A local S3 server (moto's, on loopback); yields a function giving the URI of a
    folder in a bucket there, with the server and credentials in it."""
    with socket.socket() as probe:  # a free port; the server binds it a moment later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.2)
    options = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    yield lambda folder: f"s3://key:secret@runs/{folder}?{options}&allow_bucket_creation=true"
    server.terminate()
    server.wait(timeout=30)


def test_a_sharded_run_writes_to_object_storage_and_resumes_from_it(
    cluster, data, object_store, tmp_path
):
    """Shards on both nodes write their parts to an S3 bucket, the coordinator the
    unsharded module's files and the manifest; the results equal a local run's, round
    folders not kept are deleted there, and a run resumes from it."""
    z, labels = data
    local, _, _ = _run(cluster, tmp_path, z, labels, rounds=3, algorithm="em", shards=2)
    uri = object_store("sharded")
    srk.init(uri, address=cluster[0].address, display="off", keep_rounds=1)
    try:
        obs = srk.Observation(z)
        sharded = GMM(3, category=labels, algorithm="em", shards=2)
        whole = GMM(3, category=labels, algorithm="em")
        sharded.connect(obs)
        whole.connect(obs)
        for _ in range(3):
            reports = [sharded.update(), whole.update()]
        placed = srk.current().placements()
    finally:
        srk.shutdown()
    assert len({p["node_id"] for p in placed if "shard" in p}) == 2
    assert reports[0]["metrics"] == local[-1]["metrics"]
    stored = Folder(uri)
    classes = read_parts(stored / sharded.full_name, "class_learn")
    np.testing.assert_array_equal(classes, read_parts(tmp_path / "module001_gmm", "class_learn"))
    np.testing.assert_array_equal(read_result(stored / whole.full_name, "class_learn"), classes)
    assert (stored / sharded.full_name).folders() == ["round_001", "round_003"]
    assert (stored / "checkpoints").exists("manifest.json")
    assert len(stored.read("history.jsonl").splitlines()) == 6

    _resume_and_update(cluster, uri, z, labels, done=3)
    assert (stored / sharded.full_name).folders() == ["round_001", "round_003", "round_004"]


def _vae_run(cluster, root, images, interrupt=None, rounds=2, **vae_options):
    """A data-parallel VAE (2 shards) under a 2-shard GMM for `rounds`; `interrupt(
    placements)` runs 1 s into the VAE's last update."""
    session = srk.init(root, address=cluster[0].address, display="off")
    try:
        vae = ProbedVAE(4, delay=3.0 if interrupt else 0.0, shards=2, **vae_options)
        gmm = GMM(3, algorithm="em", shards=2)
        vae.connect(srk.Observation(images))
        gmm.connect(vae)
        for round_ in range(1, rounds + 1):
            timer = None
            if interrupt is not None and round_ == rounds:
                timer = threading.Timer(1.0, interrupt, args=(session.placements(),))
                timer.start()
            report = vae.update()
            if timer is not None:
                timer.join()
            gmm.update()
        return report, session.status(), session.placements(), vae.full_name
    finally:
        srk.shutdown()


def test_the_data_parallel_vae_keeps_one_model_on_every_shard_and_checkpoints_it_once(
    cluster, digits, tmp_path
):
    """With the user's own networks (factories by import path)."""
    networks = {"encoder": "tests.networks:encoder", "decoder": "tests.networks:decoder"}
    report, _, placed, name = _vae_run(cluster, tmp_path, digits.images, **networks)
    assert len({p["node_id"] for p in placed if p["module"] == name}) == 2
    folder = tmp_path / name
    digests = read_parts(folder, "state_digest")  # each shard's, one row per element
    assert len(digests) == len(digits.images) and len(set(digests.tolist())) == 1
    z = read_parts(folder, "z_learn")
    assert z.shape == (len(digits.images), 4) and np.isfinite(z).all()
    assert len(np.loadtxt(folder / "loss.txt")) == 2  # the epochs, written once
    checkpoints = tmp_path / "checkpoints"
    with np.load(checkpoints / f"{name}.r0002.s0000.state.npz") as first:
        assert any(key.startswith("optim/") for key in first.files)
    with np.load(checkpoints / f"{name}.r0002.s0001.state.npz") as second:
        assert second.files == []  # one copy of the model: shard 0's
    assert np.isfinite(report["metrics"]["loss"])


def test_a_vae_shard_killed_mid_update_restores_the_group_and_the_result_is_undisturbed(
    cluster, digits, tmp_path
):
    def kill_vae_shard_1(placements):
        pid = next(p["pid"] for p in placements if p["module"].endswith("vae") and
                   p.get("shard") == 1)  # fmt: skip
        os.kill(pid, signal.SIGKILL)

    calm, _, _, name = _vae_run(cluster, tmp_path / "calm", digits.images, lambda _: None)
    hit, status, _, _ = _vae_run(cluster, tmp_path / "hit", digits.images, kill_vae_shard_1)
    assert status["restarts"] == 1 and hit["round"] == 2
    assert hit["metrics"] == calm["metrics"]
    for stem in ("z_learn", "state_digest"):
        np.testing.assert_array_equal(
            read_parts(tmp_path / "hit" / name, stem), read_parts(tmp_path / "calm" / name, stem)
        )
