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


def log_gaussian(z: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """log N(z_n | mean_k, cov_k) for every element and class: (N, K)."""
    identity = np.eye(z.shape[1])
    precision_cholesky = np.stack(  # (K, d, d): L_k^-T, so that cov_k^-1 = P_k P_k^T
        [solve_triangular(np.linalg.cholesky(c), identity, lower=True).T for c in covariances]
    )
    return log_gaussian_by_precision(z, means, precision_cholesky)


def log_gaussian_by_precision(
    z: np.ndarray, means: np.ndarray, precision_cholesky: np.ndarray
) -> np.ndarray:
    """log N(z_n | mean_k, (P_k P_k^T)^-1) for triangular factors P_k (K, d, d): (N, K)."""
    n, d = z.shape
    k = len(means)
    shifts = np.einsum("kd,kde->ke", means, precision_cholesky)  # (K, d)
    # One matrix product for all classes: (N, d) @ (d, K*d) -> (N, K, d).
    y = (z @ precision_cholesky.transpose(1, 0, 2).reshape(d, k * d)).reshape(n, k, d) - shifts
    log_det = np.log(np.abs(np.diagonal(precision_cholesky, axis1=1, axis2=2))).sum(axis=1)
    # math.log: a Python float keeps float32 inputs in float32 (a numpy float64 would not).
    return -0.5 * (d * math.log(2 * math.pi) + np.einsum("nkd,nkd->nk", y, y)) + log_det


def outer_products(z: np.ndarray) -> np.ndarray:
    """z_n z_n^T flattened, (N, d*d): computed once per data set, reused by every M-step."""
    n, d = z.shape
    return (z[:, :, None] * z[:, None, :]).reshape(n, d * d)


def m_step(
    z: np.ndarray, outer: np.ndarray, responsibilities: np.ndarray, reg_covar: float
) -> MixtureParams:
    d = z.shape[1]
    counts = responsibilities.sum(axis=0) + 10 * np.finfo(float).eps  # (K,)
    means = responsibilities.T @ z / counts[:, None]  # (K, d)
    # E[z z^T] per class as one matrix product over the outer products, minus m m^T.
    second_moment = (responsibilities.T @ outer).reshape(-1, d, d) / counts[:, None, None]
    covariances = second_moment - means[:, :, None] * means[:, None, :]
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
    outer: np.ndarray | None = None,
) -> MixtureFit:
    """EM from initial responsibilities until the log-likelihood gains less than `tol`."""
    outer = outer_products(z) if outer is None else outer
    responsibilities = initial
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        params = m_step(z, outer, responsibilities, reg_covar)
        responsibilities, log_likelihood = e_step(z, params, log_prior)
        if abs(log_likelihood - previous) < tol:
            return MixtureFit(params, responsibilities, log_likelihood, iteration)
        previous = log_likelihood
    return MixtureFit(params, responsibilities, log_likelihood, max_iter)


def kmeans_responsibilities(z: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Hard responsibilities from one k-means++ seeded k-means run: (N, K)."""
    labels = KMeans(n_classes, init="k-means++", n_init=1, random_state=seed).fit_predict(z)
    return np.eye(n_classes)[labels]
