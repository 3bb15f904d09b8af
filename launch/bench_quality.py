"""Benchmark of classification quality: does coupling the VAE and the GMM pay?

For each seed, in this process (the modules' own learn/recognize, see `local_run`):
coupled VAE+GMM as the tutorial runs it (deskewed digits), with the other prior the GMM
sends the VAE (`gmm.MESSAGES`), with the other GMM algorithm, and on the raw pixels; the
same two VAEs uncoupled (prior N(0, I)), each with a GMM fitted once on its z; a GMM on a
PCA projection of the deskewed and of the raw pixels; and recognition of the held-out
digits by the coupled model. Both pixel settings and both GMM
algorithms always run (no --deskew or --gmm flag here). Prints median [min-max] of
accuracy, NMI and ARI, writes the per-seed figures to JSON and a plot of accuracy per round.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    "coupled, other prior",
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
        ("coupled (tutorial)", "coupled, other prior", "coupled, other GMM", "uncoupled"),
        "PCA + GMM",
    ),
    "raw pixels": (("coupled, raw pixels", "uncoupled, raw pixels"), "PCA + GMM, raw pixels"),
}


def other_of(choices: tuple[str, ...], chosen: str) -> str:
    """The one of two choices not chosen."""
    return next(c for c in choices if c != chosen)


def pca_gmm(pixels: np.ndarray, labels: np.ndarray, settings: recipes.TutorialSettings) -> dict:
    """The GMM module on the pixels projected to `latent_dim` principal components."""
    projected = PCA(settings.latent_dim, random_state=settings.seed).fit_transform(pixels)
    module = recipes.tutorial_gmm(labels, settings)
    return dict(module.learn([projected], None, UpdateContext("gmm", 1, [], no_progress)).metrics)


def one_seed(
    settings: recipes.TutorialSettings,
    learned: data.Digits,
    heldout: data.Digits,
    only: Sequence[str] = CONFIGURATIONS,
) -> dict[str, dict]:
    """The configurations in `only` (recognition brings the tutorial's with it)."""
    pixels, labels = learned.images, learned.labels
    settings, raw = replace(settings, deskew=True), replace(settings, deskew=False)
    other_gmm = replace(settings, gmm=other_of(gmm.ALGORITHMS, settings.gmm))
    other_prior = replace(settings, vae_prior=other_of(gmm.MESSAGES, settings.vae_prior))
    planned = {
        CONFIGURATIONS[0]: settings,
        CONFIGURATIONS[1]: other_prior,
        CONFIGURATIONS[2]: other_gmm,
        CONFIGURATIONS[3]: raw,
    }
    uncoupled = {CONFIGURATIONS[4]: settings, CONFIGURATIONS[5]: raw}
    wanted = set(only) | ({CONFIGURATIONS[0]} if CONFIGURATIONS[8] in only else set())
    runs = {
        name: local_run.run_vae_gmm(pixels, labels, planned_settings)
        for name, planned_settings in planned.items()
        if name in wanted
    } | {
        name: local_run.run_vae_gmm(pixels, labels, planned_settings, coupled=False)
        for name, planned_settings in uncoupled.items()
        if name in wanted
    }
    results = {name: {"final": r.scores[-1], "per_round": r.scores} for name, r in runs.items()}
    if CONFIGURATIONS[6] in wanted:
        deskewed = images.deskew(torch.from_numpy(pixels)).numpy()
        results[CONFIGURATIONS[6]] = {"final": pca_gmm(deskewed, labels, settings)}
    if CONFIGURATIONS[7] in wanted:
        results[CONFIGURATIONS[7]] = {"final": pca_gmm(pixels, labels, settings)}
    if CONFIGURATIONS[8] in wanted:
        recognized = local_run.recognize(runs[CONFIGURATIONS[0]], heldout.images, heldout.labels)
        results[CONFIGURATIONS[8]] = {"final": recognized}
    return {name: results[name] for name in CONFIGURATIONS if name in results}


def summary(results: list[dict[str, dict]]) -> str:
    lines = [f"{'configuration':24}" + "".join(f"{k:>22}" for k in SCORES)]
    for name in results[0]:
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
    only: Sequence[str] = CONFIGURATIONS,
) -> None:
    """digits: (learned, held-out); the embedded tutorial digits and the other 2,000 by
    default. only: the configurations to run (all by default)."""
    learned, heldout = digits or data.tutorial_digits()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:
        results.append(one_seed(replace(settings, seed=seed), learned, heldout, only))
        print(
            f"seed {seed}: "
            + "  ".join(f"{name} {r['final']['acc']:.3f}" for name, r in results[-1].items()),
            flush=True,
        )
    other = other_of(gmm.ALGORITHMS, settings.gmm)
    prior = other_of(gmm.MESSAGES, settings.vae_prior)
    print(
        f"\n{summary(results)}\n(median [min-max] over seeds {seeds}; {settings}; "
        f"other GMM: {other}; other prior: {prior})"
    )
    (out / "quality.json").write_text(json.dumps({"seeds": seeds, "results": results}, indent=1))
    path = plot(results, out / "accuracy.png", other, prior)
    print(f"figures per seed: {out / 'quality.json'}; accuracy per round: {path}")


def accuracy_panels(
    results: list[dict[str, dict]], other_gmm: str, other_prior: str = "gaussian"
) -> tuple[dict[str, dict[str, list[list[float]]]], dict[str, dict[str, float]]]:
    """Per `PANELS` title: per-round accuracy curves per configuration (one list per seed),
    and the median of its PCA + GMM reference."""
    panels, baselines = {}, {}
    for title, (curves, reference) in PANELS.items():
        panels[title] = {
            name.replace("other GMM", f"{other_gmm} GMM").replace(
                "other prior", f"{other_prior} prior"
            ): [[r["acc"] for r in seed_result[name]["per_round"]] for seed_result in results]
            for name in curves
            if name in results[0]
        }
        if reference in results[0]:
            baselines[title] = {
                reference: median(seed_result[reference]["final"]["acc"] for seed_result in results)
            }
    return panels, baselines


def plot(results: list[dict[str, dict]], path: Path, other_gmm: str, other_prior: str) -> Path:
    """Accuracy per round (see `accuracy_panels`) as a figure."""
    return plots.plot_accuracy_per_round(*accuracy_panels(results, other_gmm, other_prior), path)
