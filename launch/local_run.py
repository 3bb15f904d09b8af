"""The tutorial's modules chained in this process: no Ray, no messages, no files.

The baseline the speed benchmark sets the actor system against (run in a child process,
`run_in_fresh_process`), and the quick way to measure model variants over many seeds.
`learn` and `recognize` are the very methods the module actors run, so the numbers are
the model's, not a re-implementation's.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from actors import gmm, vae
from launch import data, recipes
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


def run_in_fresh_process(settings: recipes.TutorialSettings) -> dict:
    """`run_vae_gmm` on the tutorial digits in a new Python process; its timings and scores.

    A fresh process pays torch's warm-up in its first round, as a module actor does and
    as a user's one-process script would; a process that has trained before does not.
    Settings go in and results come back as JSON.
    """
    command = [sys.executable, "-m", "launch.local_run", json.dumps(dataclasses.asdict(settings))]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"one-process run failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.splitlines()[-1])


def _main(settings_json: str) -> None:
    settings = recipes.TutorialSettings(**json.loads(settings_json))
    digits, _ = data.tutorial_digits()
    run = run_vae_gmm(digits.images, digits.labels, settings)
    print(json.dumps({"whole": run.whole, "seconds": run.seconds, "scores": run.scores[-1]},
                     default=float))  # fmt: skip


if __name__ == "__main__":
    _main(sys.argv[1])
