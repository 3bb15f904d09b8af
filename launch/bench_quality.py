"""Benchmark of classification quality: does coupling the VAE and the GMM pay?

For each seed, in this process (the modules' own learn/recognize, see `local_run`):
coupled VAE+GMM as the tutorial runs it, with the other GMM algorithm, and with image
jitter on the VAE's input; the same two VAEs uncoupled (prior N(0, I)), each with a GMM
fitted once on its z; a GMM on a PCA projection of the pixels; and recognition of the
held-out digits by the coupled model. Both jitter settings and both GMM algorithms
always run (no --jitter or --gmm flag here). Prints median [min-max] of accuracy, NMI
and ARI, writes the per-seed figures to JSON and a plot of accuracy per round.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from statistics import median

import numpy as np
from sklearn.decomposition import PCA

from actors import gmm
from launch import data, local_run, plots, recipes
from launch.report import SCORES
from runtime.module import UpdateContext, no_progress

CONFIGURATIONS = (
    "coupled (tutorial)",
    "coupled, other GMM",
    "coupled, jitter",
    "uncoupled",
    "uncoupled, jitter",
    "PCA of pixels + GMM",
    "coupled, recognition",
)


def pca_gmm(images: np.ndarray, labels: np.ndarray, settings: recipes.TutorialSettings) -> dict:
    """The GMM module on the pixels projected to `latent_dim` principal components."""
    projected = PCA(settings.latent_dim, random_state=settings.seed).fit_transform(images)
    module = recipes.tutorial_gmm(labels, settings)
    return dict(module.learn([projected], None, UpdateContext("gmm", 1, [], no_progress)).metrics)


def one_seed(
    settings: recipes.TutorialSettings, learned: data.Digits, heldout: data.Digits
) -> dict[str, dict]:
    images, labels = learned.images, learned.labels
    settings, jittered = replace(settings, jitter=False), replace(settings, jitter=True)
    other_gmm = replace(settings, gmm=next(a for a in gmm.ALGORITHMS if a != settings.gmm))
    runs = {
        CONFIGURATIONS[0]: local_run.run_vae_gmm(images, labels, settings),
        CONFIGURATIONS[1]: local_run.run_vae_gmm(images, labels, other_gmm),
        CONFIGURATIONS[2]: local_run.run_vae_gmm(images, labels, jittered),
        CONFIGURATIONS[3]: local_run.run_vae_gmm(images, labels, settings, coupled=False),
        CONFIGURATIONS[4]: local_run.run_vae_gmm(images, labels, jittered, coupled=False),
    }
    results = {name: {"final": r.scores[-1], "per_round": r.scores} for name, r in runs.items()}
    results[CONFIGURATIONS[5]] = {"final": pca_gmm(images, labels, settings)}
    recognized = local_run.recognize(runs[CONFIGURATIONS[0]], heldout.images, heldout.labels)
    results[CONFIGURATIONS[6]] = {"final": recognized}
    return results


def summary(results: list[dict[str, dict]]) -> str:
    lines = [f"{'configuration':24}" + "".join(f"{k:>22}" for k in SCORES)]
    for name in CONFIGURATIONS:
        cells = []
        for score in SCORES:
            values = [seed_result[name]["final"][score] for seed_result in results]
            cells.append(f"{median(values):.3f} [{min(values):.3f}-{max(values):.3f}]")
        lines.append(f"{name:24}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def run(
    settings: recipes.TutorialSettings,
    seeds: list[int],
    out: Path,
    digits: tuple[data.Digits, data.Digits] | None = None,
) -> None:
    """digits: (learned, held-out); the embedded tutorial digits and the other 2,000 by default."""
    learned, heldout = digits or data.tutorial_digits()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:
        results.append(one_seed(replace(settings, seed=seed), learned, heldout))
        print(
            f"seed {seed}: "
            + "  ".join(f"{name} {r['final']['acc']:.3f}" for name, r in results[-1].items()),
            flush=True,
        )
    other = next(a for a in gmm.ALGORITHMS if a != settings.gmm)
    print(
        f"\n{summary(results)}\n(median [min-max] over seeds {seeds}; {settings}; "
        f"other GMM: {other})"
    )
    (out / "quality.json").write_text(json.dumps({"seeds": seeds, "results": results}, indent=1))
    path = plot(results, out / "accuracy.png", other)
    print(f"figures per seed: {out / 'quality.json'}; accuracy per round: {path}")


def accuracy_panels(
    results: list[dict[str, dict]], other_gmm: str
) -> tuple[dict[str, dict[str, list[list[float]]]], dict[str, float]]:
    """Per-round accuracy curves, coupled (both GMMs) vs uncoupled, without jitter and with
    it; and the PCA + GMM median as the reference line."""

    def curves(name: str) -> list[list[float]]:
        return [[r["acc"] for r in seed_result[name]["per_round"]] for seed_result in results]

    pca = median(seed_result[CONFIGURATIONS[5]]["final"]["acc"] for seed_result in results)
    panels = {
        "the tutorial's VAE": {"coupled": curves(CONFIGURATIONS[0]),
                               f"coupled, {other_gmm} GMM": curves(CONFIGURATIONS[1]),
                               "uncoupled": curves(CONFIGURATIONS[3])},
        "with image jitter": {"coupled": curves(CONFIGURATIONS[2]),
                              "uncoupled": curves(CONFIGURATIONS[4])},
    }  # fmt: skip
    return panels, {CONFIGURATIONS[5]: pca}


def plot(results: list[dict[str, dict]], path: Path, other_gmm: str) -> Path:
    """Accuracy per round (see `accuracy_panels`) as a figure."""
    return plots.plot_accuracy_per_round(*accuracy_panels(results, other_gmm), path)
