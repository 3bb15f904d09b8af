"""Scripts as users write them, each run in its own process, which starts its own
embedded Ray: the tutorial script as the reference writes it (only the imports differ),
end to end on 200 digits so that the reference's own settings (200 epochs, batch 500,
5 rounds) finish in seconds; a model too big for the embedded instance; and an embedded
instance started beside the record of a cluster long gone.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import runtime as srk
    from actors import vae, gmm

    obs = srk.Observation( np.loadtxt( "data.txt" ) )
    data_category = np.loadtxt( "category.txt" )

    vae1 = vae.VAE( 18, itr=200, batch_size=500 )
    gmm1 = gmm.GMM( 10, category=data_category )

    vae1.connect( obs )  # connect obs to vae1
    gmm1.connect( vae1 )  # connect vae1 to gmm1

    for i in range(5):
        vae1.update()  # train vae1
        gmm1.update()  # train gmm1
    """
)

OVERSIZED = textwrap.dedent(
    """
    import numpy as np
    import runtime as srk
    from actors import vae, gmm

    srk.init(".", num_cpus=2, start_timeout_s=600)
    obs = srk.Observation(np.random.default_rng(0).random((100, 16)))
    vae1, gmm1 = vae.VAE(4), gmm.GMM(3, num_threads=2)
    vae1.connect(obs)
    try:
        gmm1.connect(vae1)
    except srk.ModuleError as error:
        print(error)
    """
)

ONE_UPDATE = textwrap.dedent(
    """
    import numpy as np
    import ray
    import runtime as srk
    from actors import gmm

    srk.init(".", num_cpus=2)
    obs = srk.Observation(np.random.default_rng(0).random((100, 2)))
    gmm1 = gmm.GMM(3)
    gmm1.connect(obs)
    gmm1.update()
    print(ray.get_runtime_context().gcs_address)
    """
)


def test_reference_script_runs_and_writes_the_reference_files(tmp_path, digits):
    np.savetxt(tmp_path / "data.txt", digits.images, fmt="%.4f")
    np.savetxt(tmp_path / "category.txt", digits.labels, fmt="%d")
    (tmp_path / "tutorial.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "tutorial.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    n = len(digits.labels)
    vae_dir, gmm_dir = tmp_path / "module001_vae", tmp_path / "module002_gmm"
    assert np.loadtxt(vae_dir / "z_learn.txt").shape == (n, 18)
    assert np.load(vae_dir / "x_hat_learn.npy").shape == (n, 784)
    assert np.loadtxt(vae_dir / "loss.txt").shape == (200,)
    with np.load(vae_dir / "model.npz") as params:
        assert params["encoder.0.weight"].shape == (128, 784)
    classes = np.loadtxt(gmm_dir / "class_learn.txt")
    assert classes.shape == (n,) and set(np.unique(classes)) <= set(range(10))
    accuracy = float(np.loadtxt(gmm_dir / "acc_learn.txt"))
    assert 0.2 < accuracy <= 1.0
    probabilities = np.loadtxt(gmm_dir / "Pdz_learn.txt")
    assert probabilities.shape == (n, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert np.loadtxt(gmm_dir / "mu_learn.txt").shape == (n, 18)
    with np.load(gmm_dir / "model.npz") as params:
        assert params["covariances"].shape == (10, 18, 18)

    # Every round is kept, and the top-level files are the last round's.
    for module_dir in (vae_dir, gmm_dir):
        assert sorted(p.name for p in module_dir.glob("round_*")) == [
            f"round_{r:03d}" for r in range(1, 6)
        ]
    assert (gmm_dir / "round_005" / "class_learn.txt").read_text() == (
        gmm_dir / "class_learn.txt"
    ).read_text()
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(h["module"], h["round"]) for h in history] == [
        (m, r) for r in range(1, 6) for m in ("module001_vae", "module002_gmm")
    ]
    assert history[-1]["metrics"]["acc"] == pytest.approx(accuracy, rel=1e-6)


def test_a_model_bigger_than_the_embedded_ray_is_refused_at_connect(tmp_path):
    # 1 CPU for the VAE and 2 for the GMM's threads on a 2-CPU instance that nothing can
    # join: refused when the GMM connects, not after its 600 s start-up timeout.
    (tmp_path / "oversized.py").write_text(OVERSIZED)
    done = subprocess.run(
        [sys.executable, "oversized.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == (
        "module002_gmm: its actor can never start: the modules together ask for 3 CPU "
        "(module001_vae 1, module002_gmm 2); this Ray instance has 2 and cannot grow. Ask for "
        "less (a module's num_threads or resources), or start Ray with more "
        "(srk.init(num_cpus=...), --num-cpus)"
    )


def test_the_embedded_ray_is_new_even_where_a_dead_cluster_is_recorded(tmp_path):
    # `ray start` (or a crashed test cluster) leaves its address in TMP/ray/ray_current_cluster;
    # a plain ray.init() would try to join it. Short path: Ray's socket names must fit.
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    try:
        os.makedirs(os.path.join(ray_tmp, "ray"))
        dead = "127.0.0.1:1"
        with open(os.path.join(ray_tmp, "ray", "ray_current_cluster"), "w") as record:
            record.write(dead)
        (tmp_path / "one_update.py").write_text(ONE_UPDATE)
        done = subprocess.run(
            [sys.executable, "one_update.py"], cwd=tmp_path, capture_output=True, text=True,
            timeout=300, env={**os.environ, "RAY_TMPDIR": ray_tmp},
        )  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] != dead
    assert (tmp_path / "module001_gmm" / "class_learn.txt").exists()
