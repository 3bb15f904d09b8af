"""Gaussian-mixture EM with a per-element class prior, vectorised over elements.

Written here rather than taken from scikit-learn because GaussianMixture has no way to
weigh each element's responsibilities by a prior sent from another module (Serket's GMM
multiplies class size x likelihood x that prior). Initialisation reuses scikit-learn's
k-means (k-means++ seeding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from sklearn.cluster import KMeans


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


def m_step(z: np.ndarray, responsibilities: np.ndarray, reg_covar: float) -> MixtureParams:
    d = z.shape[1]
    counts = responsibilities.sum(axis=0) + 10 * np.finfo(float).eps  # (K,)
    means = responsibilities.T @ z / counts[:, None]  # (K, d)
    # E[z z^T] per class, one weighted matrix product each: memory N x d, not N x d^2.
    second_moment = np.stack([(z * r[:, None]).T @ z for r in responsibilities.T])
    covariances = second_moment / counts[:, None, None] - means[:, :, None] * means[:, None, :]
    covariances += reg_covar * np.eye(d)
    return MixtureParams(counts / counts.sum(), means, covariances)


def e_step(
    z: np.ndarray, params: MixtureParams, log_prior: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Responsibilities (N, K) and the mean log-likelihood per element."""
    joint = log_gaussian(z, params.means, params.covariances) + np.log(params.weights)
    if log_prior is not None:
        joint += log_prior
    norm = logsumexp(joint, axis=1, keepdims=True)
    return np.exp(joint - norm), float(norm.mean())


def fit(
    z: np.ndarray,
    initial: np.ndarray,
    log_prior: np.ndarray | None,
    *,
    max_iter: int,
    tol: float,
    reg_covar: float,
) -> MixtureFit:
    """EM from initial responsibilities until the log-likelihood gains less than `tol`."""
    responsibilities = initial
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        params = m_step(z, responsibilities, reg_covar)
        responsibilities, log_likelihood = e_step(z, params, log_prior)
        if abs(log_likelihood - previous) < tol:
            return MixtureFit(params, responsibilities, log_likelihood, iteration)
        previous = log_likelihood
    return MixtureFit(params, responsibilities, log_likelihood, max_iter)


def kmeans_responsibilities(z: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Hard responsibilities from one k-means++ seeded k-means run: (N, K)."""
    labels = KMeans(n_classes, init="k-means++", n_init=1, random_state=seed).fit_predict(z)
    return np.eye(n_classes)[labels]
