"""The GMM module's learning, run directly (no Ray): blobs, class priors, validation."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from actors import mixture, mixture_gibbs
from actors.gmm import ALGORITHMS, GMM
from launch import bench_gmm
from runtime import ModuleError
from runtime.metrics import classification_scores, matched_accuracy
from runtime.module import UpdateContext, no_progress
from tests.conftest import blobs


def context(round_=1):
    return UpdateContext("module002_gmm", round_, [], no_progress)


CENTRES = 8.0 * np.eye(4, 6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_well_separated_blobs_are_classified_almost_perfectly(algorithm):
    z, labels = blobs(100, CENTRES, spread=1.0)
    gmm = GMM(4, algorithm=algorithm, category=labels)
    update = gmm.learn([z], None, context())
    assert update.metrics["acc"] > 0.98
    assert update.forward.shape == (400, 4)
    np.testing.assert_allclose(update.forward.sum(axis=1), 1.0, rtol=1e-5)
    classes = np.asarray(update.rows["class_learn.txt"])
    # The backward message is, for every element, the mean of its class.
    np.testing.assert_allclose(update.backward[0], gmm.params_.means[classes], rtol=1e-5)
    assert update.backward[0].shape == (400, 6)
    assert update.files["acc_learn.txt"] == update.metrics["acc"]


def test_the_gaussian_message_carries_each_class_mean_and_variances():
    z, labels = blobs(100, CENTRES, spread=1.0)
    gmm = GMM(4, category=labels, message="gaussian")
    update = gmm.learn([z], None, context())
    classes = np.asarray(update.rows["class_learn.txt"])
    assert update.backward[0].shape == (400, 12)
    np.testing.assert_allclose(update.backward[0][:, :6], gmm.params_.means[classes], rtol=1e-5)
    variances = np.diagonal(gmm.params_.covariances, axis1=1, axis2=2)[classes]
    np.testing.assert_allclose(update.backward[0][:, 6:], variances, rtol=1e-5)
    assert 0.5 < np.median(update.backward[0][:, 6:]) < 2.0  # the blobs' unit spread


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_class_prior_from_above_decides_ambiguous_elements(algorithm):
    # Two overlapping classes: the likelihood alone cannot separate them.
    z, labels = blobs(100, np.array([[0.0, 0.0], [0.3, 0.0]]), spread=1.0)
    without = GMM(2, algorithm=algorithm, category=labels).learn([z], None, context())
    assert without.metrics["acc"] < 0.8
    prior = np.full((len(z), 2), 0.02)
    prior[np.arange(len(z)), labels] = 0.98
    with_prior = GMM(2, algorithm=algorithm, category=labels).learn([z], prior, context())
    assert with_prior.metrics["acc"] > 0.95


def test_a_uniform_prior_changes_nothing():
    z, _ = blobs(50, CENTRES, spread=1.0)
    plain = GMM(4, seed=3).learn([z], None, context())
    uniform = GMM(4, seed=3).learn([z], np.full((len(z), 4), 0.25), context())
    np.testing.assert_allclose(plain.forward, uniform.forward, atol=1e-5)


def test_a_float32_prior_with_zeros_gives_finite_logs_and_no_warning():
    # Messages travel as float32, where 1e-300 is 0: the floor must be taken in float64.
    z, labels = blobs(50, CENTRES, spread=1.0)
    prior = np.eye(4, dtype=np.float32)[labels]  # exactly 0 for three classes of four
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        update = GMM(4, category=labels).learn([z], prior, context())
    assert np.isfinite(update.forward).all()
    assert update.metrics["acc"] == 1.0


def test_prior_of_the_wrong_shape_is_refused():
    z, _ = blobs(20, CENTRES, spread=1.0)
    with pytest.raises(ValueError, match=r"class prior from above must have shape \(80, 4\)"):
        GMM(4).learn([z], np.ones((80, 3)), context())


def test_later_rounds_keep_the_best_of_warm_start_and_restarts():
    z, labels = blobs(100, CENTRES, spread=1.0)
    gmm = GMM(4, category=labels)
    first = gmm.learn([z], None, context(1))
    second = gmm.learn([z], None, context(2))
    assert second.metrics["log_likelihood"] >= first.metrics["log_likelihood"] - 1e-6


def test_a_renamed_fit_takes_the_names_its_classes_hold_most():
    z, labels = blobs(50, CENTRES, spread=1.0)
    fit = mixture.fit(z, np.eye(4)[labels], None, max_iter=20, tol=1e-6, reg_covar=1e-6)
    names = np.array([2, 0, 3, 1])[labels]
    names[:5] = (names[:5] + 1) % 4  # a few elements disagree: the majority decides
    named = mixture.renamed(fit, names)
    np.testing.assert_array_equal(named.responsibilities.argmax(axis=1)[5:], names[5:])
    for name, label in enumerate([1, 3, 0, 2]):
        np.testing.assert_array_equal(named.params.means[name], fit.params.means[label])
        assert named.params.weights[name] == fit.params.weights[label]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_after_a_naming_game_fresh_starts_still_run_and_keep_its_names(algorithm, monkeypatch):
    """A GMM whose classes are names (games_ > 0) refits from k-means starts as
    before, renumbered to the names it held."""
    starts = []
    kmeans = mixture.kmeans_responsibilities

    def counted_kmeans(*args):
        starts.append(args)
        return kmeans(*args)

    monkeypatch.setattr(mixture, "kmeans_responsibilities", counted_kmeans)
    z, labels = blobs(100, CENTRES, spread=1.0)
    gmm = GMM(4, algorithm=algorithm, category=labels)
    gmm.learn([z], None, context(1))
    assert gmm.params_ is not None
    names = np.array([3, 1, 0, 2])  # the names a game gave its classes
    gmm.params_ = mixture.MixtureParams(
        gmm.params_.weights[names], gmm.params_.means[names], gmm.params_.covariances[names]
    )
    held = mixture.e_step(z, gmm.params_, None)[0].argmax(axis=1)
    gmm.games_ = 1
    starts.clear()
    update = gmm.learn([z], None, context(2))
    assert len(starts) == gmm.n_init
    assert (update.forward.argmax(axis=1) == held).mean() > 0.95


def test_after_a_naming_game_the_signs_its_elements_settled_on_name_its_classes():
    """Its z move between the game and the refit: the signs held decide the names, not
    the classes its last mixture gives the moved z; and they survive a checkpoint."""
    z, labels = blobs(100, CENTRES, spread=1.0)
    gmm = GMM(4, category=labels)
    gmm.learn([z], None, context(1))
    signs = np.array([2, 0, 3, 1])[labels]
    gmm.games_, gmm.signs_ = 1, signs
    restored = GMM(4, category=labels)
    restored.load_state(gmm.state())
    np.testing.assert_array_equal(restored.signs_, signs)
    update = restored.learn([z], None, context(2))
    assert (update.forward.argmax(axis=1) == signs).mean() > 0.95


def test_gibbs_is_reproducible_by_seed():
    z, _ = blobs(50, np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]]), spread=1.0)
    runs = [GMM(3, algorithm="gibbs", seed=s).learn([z], None, context()) for s in (4, 4, 5)]
    np.testing.assert_array_equal(runs[0].forward, runs[1].forward)
    assert not np.array_equal(runs[0].forward, runs[2].forward)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parallel_chains_give_the_same_fits_and_reserve_their_cpus(algorithm):
    z, _ = blobs(60, np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]]), spread=1.0)
    prior = np.random.default_rng(0).dirichlet(np.ones(3), size=len(z)).astype(np.float32)
    updates = []
    for threads in (1, 3):
        gmm = GMM(3, algorithm=algorithm, num_threads=threads)
        assert gmm.resources.num_cpus == threads
        updates.append([gmm.learn([z], prior, context(r)).forward for r in (1, 2)])
    for one_thread, three_threads in zip(*updates, strict=True):
        np.testing.assert_array_equal(one_thread, three_threads)


def test_gibbs_draws_match_the_gauss_wishart_posterior():
    # The hand-written Bartlett draws must have the posterior's moments (Bishop 2006,
    # 10.60-10.63): E[Lambda] = nu W, E[Lambda^-1] = W^-1 / (nu - d - 1) and
    # Cov[mean] = E[Lambda^-1] / beta, around E[mean] = m. Few points, so nu is small and
    # an error in the degrees of freedom or the mean's scale shows.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, 3)) @ np.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.0, 0.3, 0.5]])
    prior = mixture_gibbs.GaussWishartPrior.weak(z)
    stats = mixture_gibbs.class_statistics(
        mixture_gibbs.quadratic_features(z), np.zeros(8, dtype=int), 1
    )
    post = mixture_gibbs.posterior(stats, prior)
    draws = [mixture_gibbs.draw_parameters(post, prior, rng) for _ in range(20_000)]
    precisions = np.array([p[0] @ p[0].T for _, _, p in draws])
    means = np.array([m[0] for _, m, _ in draws])
    expected_precision = post.dof[0] * np.linalg.inv(post.inverse_scale[0])
    expected_covariance = post.inverse_scale[0] / (post.dof[0] - 3 - 1)

    def close(actual, expected):
        np.testing.assert_allclose(actual, expected, atol=0.04 * np.abs(expected).max())

    close(precisions.mean(axis=0), expected_precision)
    close(np.linalg.inv(precisions).mean(axis=0), expected_covariance)
    close(means.mean(axis=0), post.mean[0])
    close(np.cov(means, rowvar=False), expected_covariance / post.mean_precision[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": 0}, "K must be a positive integer, got 0"),
        ({"K": 3, "itr": -1}, "itr must be"),
        ({"K": 3, "algorithm": "vb"}, "algorithm must be one of"),
        ({"K": 3, "num_threads": 0}, "num_threads must be a positive integer"),
        ({"K": 3, "message": "variance"}, "message must be one of"),
    ],
)
def test_bad_parameters_name_the_module(kwargs, message):
    with pytest.raises(ModuleError, match=message) as caught:
        GMM(**kwargs)
    assert "gmm" in str(caught.value)


def test_connect_time_checks():
    with pytest.raises(ValueError, match="cannot split 5 elements into K=10"):
        GMM(10).output_shape([(5, 2)])
    with pytest.raises(ValueError, match="category has 3 labels for 5 elements"):
        GMM(2, category=[0, 1, 0]).output_shape([(5, 2)])
    assert GMM(2).output_shape([(5, 2)]) == (5, 2)


def test_matched_accuracy_is_optimal_under_relabelling():
    truth = np.array([0, 0, 1, 1, 2, 2])
    assert matched_accuracy(truth, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    scores = classification_scores(truth, np.array([1, 1, 1, 0, 2, 2]))
    assert scores["acc"] == pytest.approx(5 / 6)
    assert 0 < scores["nmi"] < 1 and 0 < scores["ari"] < 1


def _random_mixture(rng, k=3, d=4):
    means = rng.normal(size=(k, d))
    factors = rng.normal(size=(k, d, d))
    covariances = factors @ factors.transpose(0, 2, 1) + np.eye(d)
    return means, covariances


def test_log_densities_in_row_blocks_match_scipy():
    rng = np.random.default_rng(0)
    means, covariances = _random_mixture(rng)
    z = rng.normal(size=(50, 4))
    expected = np.stack(
        [multivariate_normal(m, c).logpdf(z) for m, c in zip(means, covariances, strict=True)],
        axis=1,
    )
    factors = mixture.precision_factors(covariances)
    for rows in (7, 50, 1000):  # several blocks, one exact block, one partial block
        got = mixture.log_gaussian_by_precision(z, means, factors, rows)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_log_densities_from_quadratic_features_match_scipy():
    # The Gibbs sweeps' densities: the quadratic form expanded into weights on z_i z_j,
    # z_i and 1, in float32, against scipy on points around the means (centred data, as
    # the sampler uses it).
    rng = np.random.default_rng(0)
    means, covariances = _random_mixture(rng)
    z = means[rng.integers(3, size=200)] + rng.normal(size=(200, 4))
    expected = np.stack(
        [multivariate_normal(m, c).logpdf(z) for m, c in zip(means, covariances, strict=True)]
    )
    got = mixture_gibbs.log_densities(
        mixture_gibbs.quadratic_features(z), means, mixture.precision_factors(covariances)
    )
    assert got.shape == (3, 200) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_class_statistics_in_row_blocks_match_direct_sums():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(101, 3)) + 5.0
    classes = rng.integers(4, size=101)
    classes[classes == 3] = 0  # class 3 stays empty
    features = mixture_gibbs.quadratic_features(z)
    for rows in (10, 101, 1000):  # several blocks, one exact block, one partial block
        stats = mixture_gibbs.class_statistics(features, classes, 4, rows)
        for k in range(4):
            members = z[classes == k]
            assert stats.counts[k] == len(members)
            np.testing.assert_allclose(stats.sums[k], members.sum(axis=0), rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(stats.second[k], members.T @ members, rtol=1e-5, atol=1e-9)


def test_m_step_gives_each_class_its_weighted_mean_and_covariance():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 3))
    responsibilities = rng.dirichlet(np.ones(2), size=200)
    params = mixture.m_step(z, responsibilities, reg_covar=0.0)
    for k in range(2):
        weights = responsibilities[:, k]
        np.testing.assert_allclose(params.means[k], np.average(z, axis=0, weights=weights))
        expected = np.cov(z, rowvar=False, aweights=weights, bias=True)
        np.testing.assert_allclose(params.covariances[k], expected, atol=1e-12)
    np.testing.assert_allclose(params.weights, responsibilities.mean(axis=0))


def test_itr_defaults_per_algorithm_and_an_explicit_value_wins():
    assert GMM(3).itr == 50  # Gibbs sweeps
    assert GMM(3, algorithm="em").itr == 100  # EM iterations at most
    assert GMM(3, itr=7, algorithm="em").itr == 7
    assert GMM(3, algorithm="em").get_params()["itr"] == 100  # what a remote actor rebuilds


def test_gmm_benchmark_prints_one_row_per_size(capsys):
    bench_gmm.run([200, 400], latent_dim=3, classes=2, algorithm="gibbs", seed=0, threads=[1, 2])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(int(row[0]), int(row[1])) for row in rows] == [(200, 1), (200, 2), (400, 1), (400, 2)]
    assert all(float(row[4]) > 0.9 for row in rows)  # means 3 apart per axis, spread ~0.7
