"""The VAE asks Ray for a GPU when the cluster has one; the GMM stays on CPU nodes.

A simulated two-node cluster (ray.cluster_utils.Cluster): a CPU head and a node that
advertises one GPU. No real GPU is needed: Ray schedules by advertised resources, and the
VAE falls back to CPU where torch sees no CUDA device.
"""

import pytest
import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors import gmm, vae


@pytest.fixture(scope="module")
def gpu_cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster, gpu_node
    ray.shutdown()
    cluster.shutdown()


def test_vae_lands_on_the_gpu_node_and_the_gmm_does_not(gpu_cluster, tmp_path, digits):
    cluster, gpu_node = gpu_cluster
    session = srk.init(tmp_path, address=cluster.address)  # joins, as with $RAY_ADDRESS
    try:
        obs = srk.Observation(digits.images)
        vae1 = vae.VAE(4, itr=2, batch_size=100)
        gmm1 = gmm.GMM(10)
        vae1.connect(obs)
        gmm1.connect(vae1)
        placed = {p["module"]: p for p in session.placements()}
        assert placed["module001_vae"]["node_id"] == gpu_node.node_id
        assert placed["module001_vae"]["gpu_ids"] == [0]
        assert placed["module002_gmm"]["node_id"] != gpu_node.node_id
        assert placed["module002_gmm"]["gpu_ids"] == []
        vae1.update()
        gmm1.update()
    finally:
        srk.shutdown()
    assert (tmp_path / "module002_gmm" / "class_learn.txt").exists()
