"""Figures: the latent space before and after the modules taught each other."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA


def plot_latents(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, path: Path, titles: tuple[str, str]
) -> Path:
    """Two panels of z projected to 2-D by PCA, coloured by true class."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, z, title in zip(axes, (before, after), titles, strict=True):
        projected = PCA(n_components=2).fit_transform(z)
        scatter = axis.scatter(projected[:, 0], projected[:, 1], c=labels, cmap="tab10", s=4)
        axis.set_title(title)
        axis.set_xlabel("PC 1")
        axis.set_ylabel("PC 2")
    figure.legend(*scatter.legend_elements(), title="true class", loc="center right")
    figure.tight_layout(rect=(0, 0, 0.92, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_accuracy_per_round(
    panels: dict[str, dict[str, list[list[float]]]],
    baselines: dict[str, dict[str, float]],
    path: Path,
) -> Path:
    """Accuracy after each round: the median over seeds as a line, min-max as a band.

    panels: per panel title, per configuration, one list of per-round accuracies per
    seed; baselines: per panel title, single figures (e.g. a PCA + GMM median) drawn as
    dashed lines in that panel.
    """
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), sharey=True)
    for axis, (title, curves) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        for name, per_seed in curves.items():
            values = np.array(per_seed)  # (seeds, rounds)
            rounds = np.arange(1, values.shape[1] + 1)
            (line,) = axis.plot(rounds, np.median(values, axis=0), marker="o", label=name)
            axis.fill_between(rounds, values.min(axis=0), values.max(axis=0), alpha=0.2,
                              color=line.get_color())  # fmt: skip
        for name, value in baselines.get(title, {}).items():
            axis.axhline(value, linestyle="--", color="grey", label=name)
        axis.set_title(title)
        axis.set_xlabel("round")
        axis.set_xticks(rounds)
        axis.legend(title=f"median, min-max over {len(values)} seeds", loc="best")
    np.atleast_1d(axes)[0].set_ylabel("accuracy (optimal label matching)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_panels(
    panels: dict[str, dict[str, list[float]]], xlabel: str, ylabel: str, path: Path
) -> Path:
    """One panel per title, a line per label over x = 1, 2, ...; y from 0 (or below,
    for a negative value) to 1."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for label, values in curves.items():
            style = "--" if label.startswith("acceptance") else "-"
            axis.plot(range(1, len(values) + 1), values, style, marker="o", ms=3, label=label)
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        lowest = min((v for c in curves.values() for v in c if np.isfinite(v)), default=0.0)
        axis.set_ylim(min(0.0, lowest - 0.02), 1.02)  # kappa can be below 0
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds, not halves
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
