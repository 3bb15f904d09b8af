"""The run report's figures: scores, losses, latent spaces, confusion, reconstructions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

SCATTER_POINTS = 5_000  # a latent plot draws at most this many elements, chosen at random


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def scores_per_round(scores: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """scores: per module, per score name (acc, nmi, ari), its value after each round."""
    figure, axes = plt.subplots(1, len(scores), figsize=(5 * len(scores), 3.6), squeeze=False)
    for axis, (module, by_name) in zip(axes[0], scores.items(), strict=True):
        for name, values in by_name.items():
            axis.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
        axis.set_title(module)
        axis.set_xlabel("round")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_ylim(0, 1)
        axis.legend(loc="lower right")
    return _save(figure, path)


def loss_per_epoch(losses: Mapping[int, np.ndarray], module: str, path: Path) -> Path:
    """losses: per round kept, the loss after each epoch of that round's update."""
    figure, axis = plt.subplots(figsize=(8, 3.6))
    start = 0
    for round_, values in losses.items():
        epochs = np.arange(start, start + len(values))
        axis.plot(epochs, values, label=f"round {round_}")
        start += len(values)
    axis.set_title(f"{module}: loss per epoch")
    axis.set_xlabel("epoch (rounds kept, one after another)")
    axis.set_ylabel("loss")
    axis.legend(ncol=min(len(losses), 6), fontsize="small")
    return _save(figure, path)


def latents_by_round(
    latents: Mapping[int, np.ndarray],
    colourings: Mapping[str, Mapping[int, np.ndarray]],
    path: Path,
    seed: int = 0,
) -> Path:
    """One row per round: z by PCA to 2-D, one panel per colouring (true class, a GMM's)."""
    rows, columns = len(latents), max(1, len(colourings))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for row, (round_, z) in zip(axes, latents.items(), strict=True):
        shown = np.random.default_rng(seed).permutation(len(z))[:SCATTER_POINTS]
        projected = PCA(n_components=2).fit_transform(z[shown])
        for axis, (name, by_round) in zip(row, colourings.items() or [("", {})], strict=False):
            colours = by_round.get(round_)
            coloured = {} if colours is None else {"c": colours[shown], "cmap": "tab10"}
            axis.scatter(projected[:, 0], projected[:, 1], s=3, **coloured)
            axis.set_title(f"round {round_}: {name}" if name else f"round {round_}")
            axis.set_xticks([])
            axis.set_yticks([])
    return _save(figure, path)


def confusion(counts: np.ndarray, path: Path) -> Path:
    """counts[true, predicted], predicted classes already matched to the true ones."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.imshow(counts, cmap="Blues")
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axis.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    axis.set_xlabel("class found (matched to a true class)")
    axis.set_ylabel("true class")
    axis.set_xticks(range(counts.shape[1]))
    axis.set_yticks(range(counts.shape[0]))
    return _save(figure, path)


def reconstructions(originals: np.ndarray, rebuilt: np.ndarray, path: Path) -> Path:
    """Square images: a row of originals above a row of their reconstructions, repeated."""
    side = round(np.sqrt(originals.shape[1]))
    per_row = 10
    pairs = int(np.ceil(len(originals) / per_row))
    figure, axes = plt.subplots(2 * pairs, per_row, figsize=(per_row, 2 * pairs), squeeze=False)
    for index, axis in enumerate(axes.flat):
        pair, column = divmod(index, 2 * per_row)
        which, position = divmod(column, per_row)
        element = pair * per_row + position
        axis.axis("off")
        if element < len(originals):
            image = (originals if which == 0 else rebuilt)[element]
            axis.imshow(image.reshape(side, side), cmap="gray_r")
    return _save(figure, path)
