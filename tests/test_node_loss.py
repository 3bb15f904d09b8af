"""A worker node removed while a module runs there: the module restarts on a node that is left.

A simulated cluster (ray.cluster_utils.Cluster): a CPU head and a GPU worker node, where
the VAE lands (it asks for a GPU when the cluster has one). The worker node goes away in
the middle of the VAE's second update; the VAE is started again on the head from its
round-1 checkpoint, the update re-runs, and the run completes.
"""

import json
import threading

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors import gmm, vae


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
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
