"""The tutorial's modules chained in this process: no Ray, no messages, no files.

The baseline the speed benchmark sets the actor system against, and the quick way to
measure model variants over many seeds. `learn` and `recognize` are the very methods the
module actors run, so the numbers are the model's, not a re-implementation's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from actors import gmm, vae
from launch import recipes
from runtime import process
from runtime.module import UpdateContext, no_progress


@dataclass
class LocalRun:
    vae: vae.VAE
    gmm: gmm.GMM
    scores: list[dict[str, float]] = field(default_factory=list)  # the GMM's, per round
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"vae": [], "gmm": []})
    whole: float = 0.0


def _gpu_ids() -> list[int]:
    return [0] if torch.cuda.is_available() else []


def run_vae_gmm(
    images: np.ndarray,
    labels: np.ndarray | None,
    settings: recipes.TutorialSettings,
    *,
    coupled: bool = True,
) -> LocalRun:
    """`settings.rounds` rounds of VAE then GMM.

    coupled=False is the ablation: the VAE never receives the GMM's class means (its prior
    stays N(0, I)), and each round's score is a fresh GMM fitted once on that round's z.
    """
    process.keep_freed_memory()  # as every module actor does
    began = time.perf_counter()
    vae1 = recipes.tutorial_vae(settings)
    run = LocalRun(vae1, recipes.tutorial_gmm(labels, settings))
    prior_means = None
    for round_ in range(1, settings.rounds + 1):
        started = time.perf_counter()
        z = vae1.learn(
            [images], prior_means, UpdateContext("vae", round_, _gpu_ids(), no_progress)
        ).forward
        run.seconds["vae"].append(time.perf_counter() - started)
        if not coupled:
            run.gmm = recipes.tutorial_gmm(labels, settings)
        started = time.perf_counter()
        result = run.gmm.learn([z], None, UpdateContext("gmm", round_, [], no_progress))
        run.seconds["gmm"].append(time.perf_counter() - started)
        run.scores.append(dict(result.metrics))
        if coupled:
            prior_means = result.backward[0]
    run.whole = time.perf_counter() - began
    return run


def recognize(run: LocalRun, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Scores of the learned VAE+GMM on novel digits: encode, then classify; no learning."""
    z = run.vae.recognize([images], None, UpdateContext("vae", 1, _gpu_ids(), no_progress))
    context = UpdateContext("gmm", 1, [], no_progress, category=labels)
    return dict(run.gmm.recognize([z.forward], None, context).metrics)
