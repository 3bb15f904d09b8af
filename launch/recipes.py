"""The tutorial model (VAE + GMM), built with the same Python API a user's script uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import runtime as srk
from actors import gmm, vae

DESKEW = "actors.images:deskew"
JITTER = "actors.images:image_jitter"


@dataclass(frozen=True)
class TutorialSettings:
    """The Serket tutorial's settings by default.

    deskew: the VAE learns from deskewed digits (`actors.images.deskew`): each digit's
    slant straightened and its ink centred. On by default: measured over 5 seeds it
    lifted the coupled model's accuracy on every seed (README, `make bench-quality`).
    kl_weight: the VAE's alpha, the weight of KL(q(z|o) || N(class mean, I)) against the
    reconstruction. 0.3 by default, where the VAE's own default is Serket's 1: coupled,
    on deskewed digits, over seeds 0-9, median accuracy 0.90 with 0.3 or 0.5 and 0.86
    with 1; worst seed 0.857, 0.832 and 0.808 (README, "Classification quality").
    jitter: the VAE's encoder sees slightly moved digits (`actors.images.image_jitter`).
    Off by default: over 5 seeds it lowered the coupled model's accuracy on deskewed
    digits on every seed (median 0.801 against 0.868) and did not help on raw pixels.
    gmm: the GMM's algorithm, "gibbs" (the GMM's default) or "em".
    gmm_threads: the GMM's chains run this many at a time (its actor reserves as many
    CPUs); each chain has its own seed, so the fits do not change. One by default: at
    3,000 elements two threads saved a tenth of a 0.3 s update; at 60,000 and more they
    pay (README, bench-gmm).
    vae_threads: the VAE's torch CPU threads; None (default) for all the node's cores.
    One leaves a core to everything else on a small machine (README, overhead).
    gmm_shards: actors the GMM's elements are split over (docs/sharding.md).
    vae_shards: actors the VAE is trained over, data-parallel (docs/sharding.md).
    vae_prior: the GMM's message to the VAE (`gmm.MESSAGES`): "mean", the prior
    N(class mean, I) of Serket's tutorial, or "gaussian", the class's own Gaussian.
    """

    rounds: int = 5
    epochs: int = 200
    batch_size: int = 500
    latent_dim: int = 18
    classes: int = 10
    seed: int = 0
    deskew: bool = True
    kl_weight: float = 0.3
    jitter: bool = False
    gmm: str = "gibbs"
    gmm_threads: int = 1
    vae_threads: int | None = None
    gmm_shards: int = 1
    vae_shards: int = 1
    vae_prior: str = "mean"


def tutorial_vae(settings: TutorialSettings, name: str | None = None) -> vae.VAE:
    """The tutorial's VAE, not yet connected."""
    return vae.VAE(
        settings.latent_dim,
        itr=settings.epochs,
        batch_size=settings.batch_size,
        alpha=settings.kl_weight,
        preprocess=DESKEW if settings.deskew else None,
        augment=JITTER if settings.jitter else None,
        seed=settings.seed,
        num_threads=settings.vae_threads,
        shards=settings.vae_shards,
        name=name,
    )


def tutorial_gmm(
    labels: np.ndarray | str | None, settings: TutorialSettings, name: str | None = None
) -> gmm.GMM:
    """The tutorial's GMM (labels only score it), not yet connected."""
    return gmm.GMM(
        settings.classes,
        algorithm=settings.gmm,
        category=labels,
        seed=settings.seed,
        num_threads=settings.gmm_threads,
        message=settings.vae_prior,
        shards=settings.gmm_shards,
        name=name,
    )


def build_vae_gmm(
    data: np.ndarray | str,
    labels: np.ndarray | str | None,
    settings: TutorialSettings,
    placement: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[vae.VAE, gmm.GMM]:
    """obs -> VAE -> GMM, connected as in the tutorial, in the current session.

    data, labels: arrays, or folders or globs of `.npy` shard files (the actors read
    them). placement: per module name ("vae", "gmm"), keyword arguments of `Module.place`.
    """
    placement = placement or {}
    obs = srk.Observation(data)
    vae1, gmm1 = tutorial_vae(settings), tutorial_gmm(labels, settings)
    for module in (vae1, gmm1):
        if module.name in placement:
            module.place(**placement[module.name])
    vae1.connect(obs)
    gmm1.connect(vae1)
    return vae1, gmm1


def run_rounds(modules: list[srk.Module], rounds: int) -> list[dict[str, Any]]:
    """Update the modules in order, `rounds` times; returns the reports of updates run.

    Updates already done (restored from a checkpoint) are skipped, so a resumed run goes
    on from the last completed update. Each update's files are written while the next one
    runs (write-behind); all are on disk on return. The session's display shows each
    update as "round r/rounds".
    """
    session = srk.current()
    session.plan(rounds)
    reports: list[dict[str, Any]] = []
    for round_ in range(1, rounds + 1):
        reports += [
            module.update(write_behind=True) for module in modules if module.rounds_done < round_
        ]
    session.flush()
    return reports
