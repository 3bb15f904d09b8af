"""Benchmark of classification quality: does coupling the VAE and the GMM pay?

For each seed, in this process (the modules' own learn/recognize, see `local_run`):
coupled VAE+GMM as the tutorial runs it (deskewed digits), with the other GMM algorithm,
and on the raw pixels; the same two VAEs uncoupled (prior N(0, I)), each with a GMM fitted
once on its z; a GMM on a PCA projection of the deskewed and of the raw pixels; and
recognition of the held-out digits by the coupled model. Both pixel settings and both GMM
algorithms always run (no --deskew or --gmm flag here). Prints median [min-max] of
accuracy, NMI and ARI, writes the per-seed figures to JSON and a plot of accuracy per round.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from statistics import median

import numpy as np
import torch
from sklearn.decomposition import PCA

from actors import gmm, images
from launch import data, local_run, plots, recipes
from launch.report import SCORES
from runtime.module import UpdateContext, no_progress

CONFIGURATIONS = (
    "coupled (tutorial)",
    "coupled, other GMM",
    "coupled, raw pixels",
    "uncoupled",
    "uncoupled, raw pixels",
    "PCA + GMM",
    "PCA + GMM, raw pixels",
    "coupled, recognition",
)
PANELS = {  # plot panel: its curves, and its dashed reference line
    "deskewed digits (the tutorial's default)": (
        ("coupled (tutorial)", "coupled, other GMM", "uncoupled"),
        "PCA + GMM",
    ),
    "raw pixels": (("coupled, raw pixels", "uncoupled, raw pixels"), "PCA + GMM, raw pixels"),
}


def pca_gmm(pixels: np.ndarray, labels: np.ndarray, settings: recipes.TutorialSettings) -> dict:
    """The GMM module on the pixels projected to `latent_dim` principal components."""
    projected = PCA(settings.latent_dim, random_state=settings.seed).fit_transform(pixels)
    module = recipes.tutorial_gmm(labels, settings)
    return dict(module.learn([projected], None, UpdateContext("gmm", 1, [], no_progress)).metrics)


def one_seed(
    settings: recipes.TutorialSettings, learned: data.Digits, heldout: data.Digits
) -> dict[str, dict]:
    pixels, labels = learned.images, learned.labels
    settings, raw = replace(settings, deskew=True), replace(settings, deskew=False)
    other_gmm = replace(settings, gmm=next(a for a in gmm.ALGORITHMS if a != settings.gmm))
    runs = {
        CONFIGURATIONS[0]: local_run.run_vae_gmm(pixels, labels, settings),
        CONFIGURATIONS[1]: local_run.run_vae_gmm(pixels, labels, other_gmm),
        CONFIGURATIONS[2]: local_run.run_vae_gmm(pixels, labels, raw),
        CONFIGURATIONS[3]: local_run.run_vae_gmm(pixels, labels, settings, coupled=False),
        CONFIGURATIONS[4]: local_run.run_vae_gmm(pixels, labels, raw, coupled=False),
    }
    results = {name: {"final": r.scores[-1], "per_round": r.scores} for name, r in runs.items()}
    deskewed = images.deskew(torch.from_numpy(pixels)).numpy()
    results[CONFIGURATIONS[5]] = {"final": pca_gmm(deskewed, labels, settings)}
    results[CONFIGURATIONS[6]] = {"final": pca_gmm(pixels, labels, settings)}
    recognized = local_run.recognize(runs[CONFIGURATIONS[0]], heldout.images, heldout.labels)
    results[CONFIGURATIONS[7]] = {"final": recognized}
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
) -> tuple[dict[str, dict[str, list[list[float]]]], dict[str, dict[str, float]]]:
    """Per `PANELS` title: per-round accuracy curves per configuration (one list per seed),
    and the median of its PCA + GMM reference."""
    panels, baselines = {}, {}
    for title, (curves, reference) in PANELS.items():
        panels[title] = {
            name.replace("other GMM", f"{other_gmm} GMM"): [
                [r["acc"] for r in seed_result[name]["per_round"]] for seed_result in results
            ]
            for name in curves
        }
        baselines[title] = {
            reference: median(seed_result[reference]["final"]["acc"] for seed_result in results)
        }
    return panels, baselines


def plot(results: list[dict[str, dict]], path: Path, other_gmm: str) -> Path:
    """Accuracy per round (see `accuracy_panels`) as a figure."""
    return plots.plot_accuracy_per_round(*accuracy_panels(results, other_gmm), path)
