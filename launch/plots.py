"""Figures: the latent space before and after the modules taught each other."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node
import matplotlib.pyplot as plt
import numpy as np
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
