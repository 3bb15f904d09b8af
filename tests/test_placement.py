"""Placement on a simulated cluster (ray.cluster_utils.Cluster): a CPU-less head (driver
and coordinator), a node advertising a GPU and a CPU-only node with a label.

Default placement: the VAE on the GPU node, the GMM on the CPU node; pinning by custom
resource or node label overrides it; an unsatisfiable request fails within its bound.
"""

import time

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors import gmm, vae


@pytest.fixture(scope="module")
def three_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    gpu = cluster.add_node(num_cpus=2, num_gpus=1, resources={"gpu_node": 1})
    cpu = cluster.add_node(num_cpus=2, resources={"cpu_node": 1}, labels={"tier": "cpu"})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning")
    yield gpu, cpu
    ray.shutdown()
    cluster.shutdown()


def _model(digits, place_vae=None, place_gmm=None):
    obs = srk.Observation(digits.images)
    vae1, gmm1 = vae.VAE(4, itr=2, batch_size=100), gmm.GMM(10)
    if place_vae:
        vae1.place(**place_vae)
    if place_gmm:
        gmm1.place(**place_gmm)
    vae1.connect(obs)
    gmm1.connect(vae1)
    return vae1, gmm1


def test_vae_on_the_gpu_node_gmm_on_the_cpu_node_files_on_the_driver(three_nodes, tmp_path, digits):
    gpu, cpu = three_nodes
    session = srk.init(tmp_path)
    try:
        vae1, gmm1 = _model(digits)
        placed = {p["module"]: p for p in session.placements()}
        vae1.update()
        gmm1.update()
    finally:
        srk.shutdown()
    assert placed["module001_vae"]["node_id"] == gpu.node_id
    assert placed["module001_vae"]["gpu_ids"] == [0]
    # The GPU node has CPUs to spare, yet the CPU-only GMM is kept off it.
    assert placed["module002_gmm"]["node_id"] == cpu.node_id
    assert np.loadtxt(tmp_path / "module002_gmm" / "class_learn.txt").shape == (200,)
    assert (tmp_path / "module001_vae" / "model.npz").exists()


def test_pinning_by_custom_resource_and_by_label(three_nodes, tmp_path, digits):
    gpu, cpu = three_nodes
    session = srk.init(tmp_path)
    try:
        _model(
            digits,
            place_vae={"labels": {"tier": "cpu"}, "num_gpus": 0},
            place_gmm={"resources": {"gpu_node": 1}},
        )
        placed = {p["module"]: p["node_id"] for p in session.placements()}
    finally:
        srk.shutdown()
    assert placed == {"module001_vae": cpu.node_id, "module002_gmm": gpu.node_id}


def test_unsatisfiable_placement_fails_clearly_within_its_bound(three_nodes, tmp_path, digits):
    # 15 s: the VAE must start too, on a node the previous test's VAE may still be leaving.
    session = srk.init(tmp_path, start_timeout_s=15)
    try:
        _model(digits, place_gmm={"resources": {"tpu_pod": 1}})
        began = time.monotonic()
        with pytest.raises(
            srk.ModuleError,
            match=r"module002_gmm: no node could host its actor within 15 s: "
            r"it needs 1 tpu_pod on one node; the most any node has is 0",
        ):
            session.placements()
        assert time.monotonic() - began < 40
    finally:
        srk.shutdown()


def test_placing_after_connect_is_refused(three_nodes, tmp_path, digits):
    srk.init(tmp_path)
    try:
        vae1, _ = _model(digits)
        with pytest.raises(srk.ModuleError, match=r"place\(\) must come before connect\(\)"):
            vae1.place(resources={"gpu_node": 1})
    finally:
        srk.shutdown()
