"""Gaussian-mixture EM with a per-element class prior, vectorised over elements.

Written here rather than taken from scikit-learn because GaussianMixture has no way to
weigh each element's responsibilities by a prior sent from another module (Serket's GMM
multiplies class size x likelihood x that prior). Initialisation reuses scikit-learn's
k-means (k-means++ seeding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.cluster import KMeans

from runtime.module import Shard, Solo

# Sums over a sharded module's shards (`UpdateContext.allreduce`); alone, its own arrays.
Reduce = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
ALONE: Reduce = Solo().allreduce


@dataclass(frozen=True)
class MixtureParams:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d)


@dataclass(frozen=True)
class MixtureFit:
    params: MixtureParams
    responsibilities: np.ndarray  # (N, K): P(class | z, prior)
    log_likelihood: float  # mean over elements
    iterations: int


def precision_factors(covariances: np.ndarray) -> np.ndarray:
    """Triangular P_k = L_k^-T (K, d, d) with cov_k = L_k L_k^T, so cov_k^-1 = P_k P_k^T."""
    identity = np.eye(covariances.shape[-1])
    return np.stack(
        [solve_triangular(np.linalg.cholesky(c), identity, lower=True).T for c in covariances]
    )


def log_gaussian(z: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """log N(z_n | mean_k, cov_k) for every element and class: (N, K)."""
    return log_gaussian_by_precision(z, means, precision_factors(covariances))


ROWS_PER_BLOCK = 65_536  # elements whose per-class intermediates are held at once


def log_gaussian_by_precision(
    z: np.ndarray,
    means: np.ndarray,
    precision_cholesky: np.ndarray,
    rows_per_block: int = ROWS_PER_BLOCK,
) -> np.ndarray:
    """log N(z_n | mean_k, (P_k P_k^T)^-1) for triangular factors P_k (K, d, d): (N, K).

    Computed in blocks of rows, so the N x K x d intermediate never exceeds
    `rows_per_block` x K x d, however many elements there are.
    """
    d = z.shape[1]
    k = len(means)
    shifts = np.einsum("kd,kde->ke", means, precision_cholesky)  # (K, d)
    stacked = precision_cholesky.transpose(1, 0, 2).reshape(d, k * d)  # (d, K*d)
    log_det = np.log(np.abs(np.diagonal(precision_cholesky, axis1=1, axis2=2))).sum(axis=1)
    # math.log: a Python float keeps float32 inputs in float32 (a numpy float64 would not).
    constant = d * math.log(2 * math.pi)
    blocks = []
    for start in range(0, max(len(z), 1), rows_per_block):
        block = z[start : start + rows_per_block]
        # One matrix product for all classes: (B, d) @ (d, K*d) -> (B, K, d).
        y = (block @ stacked).reshape(len(block), k, d) - shifts
        blocks.append(-0.5 * (constant + np.einsum("nkd,nkd->nk", y, y)) + log_det)
    return np.concatenate(blocks)


def m_step(
    z: np.ndarray, responsibilities: np.ndarray, reg_covar: float, reduce: Reduce = ALONE
) -> MixtureParams:
    """Parameters from responsibilities; `reduce` sums each class's count, sum and
    second moment (K x (1 + d + d^2) numbers) over shards."""
    d = z.shape[1]
    # E[z z^T] per class, one weighted matrix product each: memory N x d, not N x d^2.
    stats = reduce(
        {
            "counts": responsibilities.sum(axis=0),
            "sums": responsibilities.T @ z,
            "second": np.stack([(z * r[:, None]).T @ z for r in responsibilities.T]),
        }
    )
    counts = stats["counts"] + 10 * np.finfo(float).eps  # (K,)
    means = stats["sums"] / counts[:, None]  # (K, d)
    covariances = stats["second"] / counts[:, None, None] - means[:, :, None] * means[:, None, :]
    covariances += reg_covar * np.eye(d)
    return MixtureParams(counts / counts.sum(), means, covariances)


def mean_over_elements(values: np.ndarray, reduce: Reduce = ALONE) -> float:
    """The mean of per-element values over every shard's elements."""
    total = reduce({"sum": values.sum(), "count": np.array(values.size)})
    return float(total["sum"] / total["count"])


def e_step(
    z: np.ndarray, params: MixtureParams, log_prior: np.ndarray | None, reduce: Reduce = ALONE
) -> tuple[np.ndarray, float]:
    """Responsibilities (N, K) and the mean log-likelihood per element (over shards).

    log_prior: each element's class prior from a module above, which takes the place of
    the mixing weights (as P(c_n | c_(n-1)) does in an HMM): multiplying both counted the
    class sizes twice, and on Serket's HMM example the largest class then took every
    element within five rounds (accuracy 0.78 to 0.26; with the prior alone 0.78 to 0.89).
    """
    joint = log_gaussian(z, params.means, params.covariances)
    joint += np.log(params.weights) if log_prior is None else log_prior
    norm = logsumexp(joint, axis=1, keepdims=True)
    return np.exp(joint - norm), mean_over_elements(norm, reduce)


def fit(
    z: np.ndarray,
    initial: np.ndarray,
    log_prior: np.ndarray | None,
    *,
    max_iter: int,
    tol: float,
    reg_covar: float,
    reduce: Reduce = ALONE,
) -> MixtureFit:
    """EM from initial responsibilities until the log-likelihood gains less than `tol`."""
    responsibilities = initial
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        params = m_step(z, responsibilities, reg_covar, reduce)
        responsibilities, log_likelihood = e_step(z, params, log_prior, reduce)
        if abs(log_likelihood - previous) < tol:
            return MixtureFit(params, responsibilities, log_likelihood, iteration)
        previous = log_likelihood
    return MixtureFit(params, responsibilities, log_likelihood, max_iter)


def renamed(fit: MixtureFit, names: np.ndarray, reduce: Reduce = ALONE) -> MixtureFit:
    """The fit with each class renumbered to the name (N,) its elements hold most, one
    to one over every shard (a Hungarian assignment of the class-name overlaps, scipy's):
    a fresh fit numbers its classes anew, a model whose classes are names shared with
    other agents (`actors.naming`) keeps them."""
    k = len(fit.params.weights)
    overlap = np.zeros((k, k))
    np.add.at(overlap, (fit.responsibilities.argmax(axis=1), names), 1)
    _, name_of_class = linear_sum_assignment(reduce({"overlap": overlap})["overlap"], maximize=True)
    order = np.argsort(name_of_class)  # the name m is class order[m]'s
    params = fit.params
    return replace(
        fit,
        params=MixtureParams(params.weights[order], params.means[order], params.covariances[order]),
        responsibilities=fit.responsibilities[:, order],
    )


KMEANS_SAMPLE = 100_000  # elements k-means starts from: all of them up to this many


def kmeans_responsibilities(
    z: np.ndarray,
    n_classes: int,
    seed: int,
    shard: Shard | None = None,
    reduce: Reduce = ALONE,
) -> np.ndarray:
    """Hard responsibilities (N, K) of this shard's elements from one k-means++ seeded
    k-means run.

    Up to `KMEANS_SAMPLE` elements k-means runs on all of them; beyond, on that many
    drawn at random (seeded): the start then costs the same at any N. The rows it runs
    on are gathered from the shards (a sum of zero-padded rows), so every shard runs the
    same k-means and the starts do not depend on the shard count.
    """
    shard = shard or Shard(0, 1, 0, len(z), len(z))
    if shard.count == 1 and shard.total <= KMEANS_SAMPLE:  # on z itself, no gathering
        labels = KMeans(n_classes, init="k-means++", n_init=1, random_state=seed).fit_predict(z)
        return np.eye(n_classes)[labels]
    everything = shard.total <= KMEANS_SAMPLE
    chosen = (
        np.arange(shard.total)
        if everything
        else np.sort(np.random.default_rng(seed).choice(shard.total, KMEANS_SAMPLE, replace=False))
    )
    mine = (chosen >= shard.start) & (chosen < shard.stop)
    sample = np.zeros((len(chosen), z.shape[1]))
    sample[mine] = z[chosen[mine] - shard.start]
    sample = reduce({"rows": sample})["rows"]
    kmeans = KMeans(n_classes, init="k-means++", n_init=1, random_state=seed).fit(sample)
    # All rows: the fitted labels, as unsharded k-means gives them.
    labels = kmeans.labels_[shard.start : shard.stop] if everything else kmeans.predict(z)
    return np.eye(n_classes)[labels]
