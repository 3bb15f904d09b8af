"""Benchmark: one GMM update by number of elements, in this process, on synthetic latents.

How the GMM scales to data sets larger than the tutorial's, without a VAE to train
first: K Gaussian blobs in the tutorial's latent dimension, each with its own random
covariance. It times the module's own `learn` twice per size: the first update (k-means++
starts only) and a second one, which also starts from the first one's solution and gets
a class prior from above, as a Markov model above it would send. With several thread
counts, each size runs with each, one after the other (the GMM's chains run that many
at a time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from actors import gmm
from runtime.module import UpdateContext, no_progress


def blobs(n: int, latent_dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` points from `classes` Gaussian blobs (random means and covariances), and labels."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(classes, latent_dim))
    factors = rng.normal(scale=0.4, size=(classes, latent_dim, latent_dim))
    labels = rng.integers(classes, size=n)
    noise = rng.normal(size=(n, latent_dim, 1))
    return means[labels] + (factors[labels] @ noise)[..., 0], labels


def run(
    sizes: list[int],
    latent_dim: int,
    classes: int,
    algorithm: str,
    seed: int,
    threads: Sequence[int] = (1,),
) -> None:
    print(f"GMM ({algorithm}) on {classes} synthetic blobs in {latent_dim} dimensions")
    print(
        f"{'elements':>10}{'threads':>9}{'1st update (s)':>16}{'2nd update (s)':>16}"
        f"{'accuracy':>10}"
    )
    for n in sizes:
        z, labels = blobs(n, latent_dim, classes, seed)
        for num_threads in threads:
            module = gmm.GMM(
                classes, algorithm=algorithm, category=labels, seed=seed, num_threads=num_threads
            )
            seconds = []
            prior = None
            for round_ in (1, 2):
                began = time.perf_counter()
                result = module.learn([z], prior, UpdateContext("gmm", round_, [], no_progress))
                seconds.append(time.perf_counter() - began)
                prior = np.full((n, classes), 1.0 / classes, dtype=np.float32)
            print(
                f"{n:>10}{num_threads:>9}{seconds[0]:>16.2f}{seconds[1]:>16.2f}"
                f"{result.metrics['acc']:>10.3f}",
                flush=True,
            )
