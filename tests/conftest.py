"""Shared fixtures. Ray stays on loopback: its single-machine mode is chosen before import."""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import pytest


@pytest.fixture(scope="module")
def local_ray():
    """One small embedded Ray per test module (2 CPUs), shut down after it: a new
    instance, whatever cluster `ray start` last recorded on this machine."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


def head_and_node(head_cpus: int, node_cpus: int, resources: dict[str, float]):
    """A simulated cluster for one test module: a head with `head_cpus` (the driver and
    the coordinator) and one node advertising `resources`; yields that node."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus})
    node = cluster.add_node(num_cpus=node_cpus, resources=resources)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning")
    yield node
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def session(tmp_path):
    """A fresh serket-ray session writing under tmp_path; closed after the test."""
    import runtime as srk

    yield srk.init(tmp_path)
    srk.shutdown()


def blobs(n_per_class: int, centres: np.ndarray, spread: float, seed: int = 0):
    """Gaussian blobs around `centres`, ordered 0,1,..,K-1,0,1,.. like the tutorial data."""
    rng = np.random.default_rng(seed)
    k, d = centres.shape
    labels = np.tile(np.arange(k), n_per_class)
    return centres[labels] + spread * rng.standard_normal((len(labels), d)), labels


@pytest.fixture(scope="session")
def digits():
    """The first 20 tutorial digits of each class (200, ordered 0..9,0..9,...)."""
    from launch.data import tutorial_digits

    small, _ = tutorial_digits(per_class=20)
    return small
