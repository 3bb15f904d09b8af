"""A worker node removed while a module runs there, or after it sent a message.

A simulated cluster (ray.cluster_utils.Cluster): a CPU head and a GPU worker node, where
the VAE lands (it asks for a GPU when the cluster has one). The worker node goes away in
the middle of the VAE's second update; the VAE is started again on the head from its
round-1 checkpoint, the update re-runs, and the run completes. In recognition, the node
goes away after the VAE sent its message and before a module on the head reads it.
"""

import json
import threading

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors import gmm, vae
from tests.slow_modules import SlowGMM


@pytest.fixture(scope="module")
def two_nodes():
    # Messages over 1 KB go through the object store, as the large ones of real runs do,
    # instead of inline in Ray's replies: so they live on the sender's node.
    config = {"max_direct_call_object_size": 1024}
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "_system_config": config}
    )
    worker = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def test_module_on_a_removed_node_restarts_elsewhere_and_the_run_completes(
    two_nodes, tmp_path, digits
):
    cluster, worker = two_nodes
    session = srk.init(tmp_path, address=cluster.address)
    try:
        obs = srk.Observation(digits.images)
        vae1, gmm1 = vae.VAE(4, itr=400, batch_size=50, hidden=(64,)), gmm.GMM(10)
        vae1.connect(obs)
        gmm1.connect(vae1)
        before = {p["module"]: p["node_id"] for p in session.placements()}
        assert before["module001_vae"] == worker.node_id
        vae1.update()
        gmm1.update()

        remover = threading.Timer(1.0, cluster.remove_node, args=(worker,))
        remover.start()
        report = vae1.update()
        remover.join()
        gmm1.update()
        after = {p["module"]: p["node_id"] for p in session.placements()}
        status = session.status()
    finally:
        srk.shutdown()
    assert report["round"] == 2
    assert status["restarts"] >= 1
    assert after["module001_vae"] != worker.node_id
    history = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(h["module"], h["round"]) for h in history] == [
        ("module001_vae", 1), ("module002_gmm", 1), ("module001_vae", 2), ("module002_gmm", 2),
    ]  # fmt: skip
    assert np.loadtxt(tmp_path / "module001_vae" / "round_002" / "z_learn.txt").shape == (200, 4)


def test_recognition_reads_a_message_whose_sender_node_is_gone(two_nodes, tmp_path, digits):
    cluster, _ = two_nodes
    worker = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    session = srk.init(tmp_path, address=cluster.address)
    try:
        obs = srk.Observation(digits.images)
        vae1 = vae.VAE(4, itr=20, batch_size=50, hidden=(64,))
        slow, gmm1 = SlowGMM(10, delay=4.0, slow_in="recognize"), gmm.GMM(10)
        vae1.connect(obs)
        slow.connect(vae1)
        gmm1.connect(vae1)
        nodes = {p["module"]: p["node_id"] for p in session.placements()}
        assert nodes[vae1.full_name] == worker.node_id
        assert worker.node_id not in (nodes[slow.full_name], nodes[gmm1.full_name])
        gmm_dir = tmp_path / gmm1.full_name
        for module in (vae1, slow, gmm1):
            module.update()
        session.recognize({obs: digits.images}, order=[vae1, gmm1])
        undisturbed = np.loadtxt(gmm_dir / "Pdz_recog.txt")

        # The VAE answers at once; the worker goes while the slow module reads on the
        # head, so the GMM after it gets a message whose sender's node is gone.
        remover = threading.Timer(1.5, cluster.remove_node, args=(worker,))
        remover.start()
        reports = session.recognize({obs: digits.images}, order=[vae1, slow, gmm1])
        remover.join()
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        srk.shutdown()
    assert worker.node_id not in alive
    assert [r["module"] for r in reports] == [vae1.full_name, slow.full_name, gmm1.full_name]
    np.testing.assert_allclose(np.loadtxt(gmm_dir / "Pdz_recog.txt"), undisturbed)
