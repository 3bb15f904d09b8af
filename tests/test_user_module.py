"""The README's example user module inside a composed model, on a second simulated node."""

import numpy as np
import pytest

import runtime as srk
from actors import gmm
from launch.examples.pca_features import PCAFeatures
from runtime.module import UpdateContext, no_progress
from tests.conftest import head_and_node


@pytest.fixture(scope="module")
def two_nodes():
    yield from head_and_node(1, 1, {"feature_node": 1})


def test_user_module_runs_on_the_node_that_advertises_its_resource(two_nodes, tmp_path, digits):
    session = srk.init(tmp_path)
    try:
        obs = srk.Observation(digits.images)
        pca1 = PCAFeatures(8).place(resources={"feature_node": 1})
        gmm1 = gmm.GMM(10, category=digits.labels)
        pca1.connect(obs)
        gmm1.connect(pca1)
        placed = {p["module"]: p for p in session.placements()}
        report = pca1.update()
        gmm1.update()
        srk.recognize({obs: digits.images[:30]})
        status = session.status()
    finally:
        srk.shutdown()
    assert placed["module001_pca"]["node_id"] == two_nodes.node_id
    assert placed["module002_gmm"]["node_id"] != two_nodes.node_id
    assert 0 < report["metrics"]["explained_variance"] < 1
    features = np.loadtxt(tmp_path / "module001_pca" / "features_learn.txt")
    assert features.shape == (200, 8)
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "module001_pca" / "features_recog.txt"), features[:30], atol=1e-4
    )
    assert np.loadtxt(tmp_path / "module002_gmm" / "class_recog.txt").shape == (30,)
    assert status["rounds"] == {"module001_pca": 1, "module002_gmm": 1}
    saved = np.load(tmp_path / "module001_pca" / "pca_params.npz")
    restored = PCAFeatures(8)
    restored.load_state(dict(saved))
    context = UpdateContext("pca", 1, [], no_progress)
    recognized = restored.recognize([digits.images[:5]], None, context)
    np.testing.assert_allclose(recognized.forward, features[:5], atol=1e-4)
