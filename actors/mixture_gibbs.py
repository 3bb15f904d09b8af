"""Bayesian Gaussian mixture with a Gauss-Wishart prior per class, fitted by Gibbs sampling.

The original Serket GMM samples with a *collapsed* Gibbs sampler: one element at a time,
each draw conditioned on every other element's current class. That chain is sequential
by construction, so it cannot be vectorised over elements (the original spends about
1.35 s per sweep in Python loops). This module runs the *blocked* Gibbs sampler of the
same model instead, which targets the same posterior: given the classes, draw each
class's mean and precision from its Gauss-Wishart posterior and the class sizes from
their Dirichlet posterior; given those, draw every element's class at once.

Written here because neither scikit-learn (variational BayesianGaussianMixture only)
nor scipy has a Gibbs sampler for mixtures.

Prior, from the data: class means centred on the data's mean with precision
`mean_precision` x Lambda_k; Wishart precisions Lambda_k with d degrees of freedom and
E[Lambda_k] = the inverse of the data's covariance, so each class's scatter gets the
whole data's spread added as d pseudo-observations; symmetric Dirichlet(`concentration`)
class sizes. That spread is what keeps a very tight class (the 1s of MNIST) from taking
two components. scikit-learn's BayesianGaussianMixture default is d times narrower
(E[Lambda_k] = d x the inverse covariance); on the tutorial's z its chains classified
worse and varied more (README, "Classification quality").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from actors.mixture import (
    ALONE,
    ROWS_PER_BLOCK,
    MixtureFit,
    MixtureParams,
    Reduce,
    mean_over_elements,
    precision_factors,
)


@dataclass(frozen=True)
class GaussWishartPrior:
    mean: np.ndarray  # (d,): m0
    mean_precision: float  # beta0
    dof: float  # nu0
    inverse_scale: np.ndarray  # (d, d): W0^-1
    concentration: float  # alpha0 of the class sizes

    @classmethod
    def weak(
        cls,
        z: np.ndarray,
        mean_precision: float = 1.0,
        concentration: float = 1.0,
        reduce: Reduce | None = None,
    ) -> GaussWishartPrior:
        """From the data's mean and covariance: z's own, or over every shard's elements
        when `reduce` sums over shards (two passes: the mean, then the centred scatter)."""
        d = z.shape[1]
        if reduce is None:
            mean, covariance = z.mean(axis=0), np.cov(z, rowvar=False).reshape(d, d)
        else:
            totals = reduce({"sum": z.sum(axis=0), "count": np.array(len(z))})
            mean = totals["sum"] / totals["count"]
            centred = z - mean
            scatter = reduce({"scatter": centred.T @ centred})["scatter"]
            covariance = scatter / (totals["count"] - 1)
        covariance = covariance + 1e-6 * np.eye(d)
        return cls(mean, mean_precision, float(d), d * covariance, concentration)


def quadratic_features(z: np.ndarray) -> np.ndarray:
    """Each element's z_i z_j (i <= j, row by row), z_i and 1: (d(d+1)/2 + d + 1, N) float32.

    With these, one matrix product gives every class's log density of every element
    (`log_densities`) and another every class's count, sums and second moments
    (`class_statistics`): a sweep is two matrix products, with no N x K x d intermediate
    (2.4-2.9 times faster at 60,000 elements and more; README). Built once per update
    and shared by its chains. Feature-major, so each product streams rows.
    Centre z first (see `GibbsData`): the expanded quadratic form then loses little to
    float32 rounding.
    """
    n, d = z.shape
    columns = np.ascontiguousarray(z.T, dtype=np.float32)  # (d, N)
    features = np.empty((d * (d + 1) // 2 + d + 1, n), dtype=np.float32)
    row = 0
    for i in range(d):  # a loop over dimensions; each step covers every element
        np.multiply(columns[i:], columns[i], out=features[row : row + d - i])
        row += d - i
    features[row : row + d] = columns
    features[-1] = 1.0
    return features


@dataclass(frozen=True)
class ClassStatistics:
    counts: np.ndarray  # (K,)
    sums: np.ndarray  # (K, d)
    second: np.ndarray  # (K, d, d): sum of z z^T


def class_statistics(
    features: np.ndarray,
    classes: np.ndarray,
    n_classes: int,
    rows_per_block: int = ROWS_PER_BLOCK,
    reduce: Reduce = ALONE,
) -> ClassStatistics:
    """Sufficient statistics of hard classes from `quadratic_features`, in float64,
    summed over shards by `reduce` (the K x (1 + d + d(d+1)/2) numbers Spark's
    GaussianMixture aggregates too).

    One matrix product with the classes' indicator per block of `rows_per_block`
    elements; the blocks' float32 sums are added in float64, so rounding does not grow
    with N.
    """
    n_features, n = features.shape
    d = math.isqrt(2 * n_features) - 1  # n_features = (d + 1)(d + 2) / 2
    totals = np.zeros((n_features, n_classes))
    for start in range(0, n, rows_per_block):
        block = classes[start : start + rows_per_block]
        indicator = np.zeros((n_classes, len(block)), dtype=np.float32)
        indicator[block, np.arange(len(block))] = 1.0
        totals += features[:, start : start + rows_per_block] @ indicator.T
    counts = np.bincount(classes, minlength=n_classes).astype(float)  # exact at any N
    summed = reduce({"totals": totals, "counts": counts})
    totals, counts = summed["totals"], summed["counts"]
    upper = np.triu_indices(d)
    second = np.zeros((n_classes, d, d))
    second[:, upper[0], upper[1]] = totals[: len(upper[0])].T
    second = second + np.triu(second, k=1).transpose(0, 2, 1)
    return ClassStatistics(counts, totals[len(upper[0]) : -1].T, second)


def log_densities(
    features: np.ndarray, means: np.ndarray, precision_cholesky: np.ndarray
) -> np.ndarray:
    """log N(z_n | mean_k, (P_k P_k^T)^-1) for every class and element: (K, N) float32.

    -(z - m)^T Lambda (z - m) / 2 expanded into weights on `quadratic_features`:
    -Lambda_ii / 2 on z_i^2, -Lambda_ij on z_i z_j (i < j), Lambda m on z, and the
    constant on the feature 1.
    """
    d = means.shape[1]
    precisions = precision_cholesky @ precision_cholesky.transpose(0, 2, 1)  # (K, d, d)
    upper = np.triu_indices(d)
    quadratic = -precisions[:, upper[0], upper[1]] * np.where(upper[0] == upper[1], 0.5, 1.0)
    linear = np.einsum("kde,ke->kd", precisions, means)
    log_det = np.log(np.abs(np.diagonal(precision_cholesky, axis1=1, axis2=2))).sum(axis=1)
    constant = -0.5 * (np.einsum("kd,kd->k", means, linear) + d * math.log(2 * math.pi)) + log_det
    weights = np.concatenate([quadratic, linear, constant[:, None]], axis=1)  # (K, features)
    return weights.astype(np.float32) @ features


@dataclass(frozen=True)
class Posterior:
    """Gauss-Wishart posterior of every class given hard classes (Bishop 2006, 10.60-10.63)."""

    counts: np.ndarray  # (K,)
    mean_precision: np.ndarray  # (K,): beta_k
    mean: np.ndarray  # (K, d): m_k
    dof: np.ndarray  # (K,): nu_k
    inverse_scale: np.ndarray  # (K, d, d): W_k^-1


def posterior(stats: ClassStatistics, prior: GaussWishartPrior) -> Posterior:
    beta = prior.mean_precision + stats.counts
    means = (prior.mean_precision * prior.mean + stats.sums) / beta[:, None]
    # W_k^-1 = W0^-1 + sum x x^T + beta0 m0 m0^T - beta_k m_k m_k^T
    inverse_scale = (
        prior.inverse_scale
        + stats.second
        + prior.mean_precision * np.outer(prior.mean, prior.mean)
        - beta[:, None, None] * means[:, :, None] * means[:, None, :]
    )
    return Posterior(stats.counts, beta, means, prior.dof + stats.counts, inverse_scale)


def draw_parameters(
    post: Posterior, prior: GaussWishartPrior, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One posterior draw: log class sizes (K,), means (K, d) and the precisions'
    triangular factors P_k (K, d, d), Lambda_k = P_k P_k^T.

    Wishart draws by Bartlett's decomposition, vectorised over classes (scipy's wishart
    takes one scale matrix per call): Lambda = (L A)(L A)^T with L L^T = W, A lower
    triangular, A_ii^2 ~ chi2(nu - i), A_ij ~ N(0, 1) below the diagonal.
    """
    n_classes, d = post.mean.shape
    scale_cholesky = np.linalg.cholesky(np.linalg.inv(post.inverse_scale))  # (K, d, d)
    bartlett = np.tril(rng.standard_normal((n_classes, d, d)), k=-1)
    bartlett[:, np.arange(d), np.arange(d)] = np.sqrt(
        rng.chisquare(post.dof[:, None] - np.arange(d))  # (K, d)
    )
    precision_cholesky = scale_cholesky @ bartlett  # (K, d, d), lower triangular
    # mean ~ N(m, (beta Lambda)^-1) = m + P^-T eps / sqrt(beta)
    noise = rng.standard_normal((n_classes, d, 1))
    offsets = np.linalg.solve(precision_cholesky.transpose(0, 2, 1), noise)[..., 0]
    means = post.mean + offsets / np.sqrt(post.mean_precision)[:, None]
    sizes = rng.dirichlet(prior.concentration + post.counts)
    return np.log(np.maximum(sizes, 1e-300)), means, precision_cholesky


def posterior_mean(post: Posterior, prior: GaussWishartPrior) -> MixtureParams:
    """The posterior's expected class sizes, means and covariances: a point summary."""
    d = post.mean.shape[1]
    sizes = prior.concentration + post.counts
    # E[Lambda^-1] = W^-1 / (nu - d - 1); the floor keeps nearly empty classes finite.
    covariances = post.inverse_scale / np.maximum(post.dof - d - 1, 1.0)[:, None, None]
    return MixtureParams(sizes / sizes.sum(), post.mean, covariances)


@dataclass(frozen=True)
class GibbsData:
    """What every chain of one update samples from: z centred on the prior's mean, as
    `quadratic_features`, and the prior in that centred frame."""

    features: np.ndarray  # (F, N) float32
    prior: GaussWishartPrior  # its mean is zero: the origin below was subtracted
    origin: np.ndarray  # (d,): the prior's mean in z's own frame

    @classmethod
    def of(
        cls, z: np.ndarray, prior: GaussWishartPrior | None = None, reduce: Reduce | None = None
    ) -> GibbsData:
        """reduce: sums over shards, for the prior from every shard's elements."""
        prior = prior or GaussWishartPrior.weak(z, reduce=reduce)
        centred = dataclasses.replace(prior, mean=np.zeros_like(prior.mean))
        return cls(quadratic_features(z - prior.mean), centred, prior.mean)


def sample(
    data: GibbsData,
    initial: np.ndarray,
    log_prior: np.ndarray | None,
    *,
    sweeps: int,
    rng: np.random.Generator,
    reduce: Reduce = ALONE,
    element_rng: np.random.Generator | None = None,
) -> MixtureFit:
    """`sweeps` blocked Gibbs sweeps from initial responsibilities (N, K).

    `data` is `GibbsData.of(z)`, shared by the chains of an update. The result summarises
    the last sample: the posterior mean of the parameters given its classes, and
    P(class | z) under that mean (with the class prior from above), in float32 as sent.

    Sharded (Chang and Fisher's argument: the blocked sampler keeps its stationary
    distribution): `reduce` sums the class statistics over shards, every shard draws the
    same parameters from `rng` (seeded alike on all), and each draws its own elements'
    classes from its own `element_rng` (default: `rng`, unsharded).
    """
    element_rng = element_rng or rng
    n_classes = initial.shape[1]
    classes = initial.argmax(axis=1)
    log_prior_by_class = None if log_prior is None else log_prior.T.astype(np.float32)  # (K, N)

    def statistics() -> ClassStatistics:
        return class_statistics(data.features, classes, n_classes, reduce=reduce)

    for _ in range(sweeps):
        post = posterior(statistics(), data.prior)
        log_weights, means, precision_cholesky = draw_parameters(post, data.prior, rng)
        joint = _log_joint(data, log_weights, means, precision_cholesky, log_prior_by_class)
        # Every element's class at once, by inverting its cumulative distribution.
        probabilities = np.exp(joint - joint.max(axis=0))
        cumulative = np.cumsum(probabilities, axis=0)
        uniform = element_rng.random(len(classes), dtype=np.float32) * cumulative[-1]
        classes = np.minimum((cumulative < uniform).sum(axis=0), n_classes - 1)
    post = posterior(statistics(), data.prior)
    centred = posterior_mean(post, data.prior)
    joint = _log_joint(
        data,
        np.log(centred.weights),
        centred.means,
        precision_factors(centred.covariances),
        log_prior_by_class,
    )
    norm = logsumexp(joint, axis=0)
    summary = dataclasses.replace(centred, means=centred.means + data.origin)
    return MixtureFit(summary, np.exp(joint - norm).T, mean_over_elements(norm, reduce), sweeps)


def _log_joint(
    data: GibbsData,
    log_weights: np.ndarray,
    means: np.ndarray,
    precision_cholesky: np.ndarray,
    log_prior_by_class: np.ndarray | None,
) -> np.ndarray:
    """log (class prior x density) per class and element, (K, N): the class prior is the
    message from above where one came, else the class sizes (`mixture.e_step` says why)."""
    joint = log_densities(data.features, means, precision_cholesky)
    if log_prior_by_class is None:
        joint += log_weights.astype(np.float32)[:, None]
    else:
        joint += log_prior_by_class
    return joint
