"""The naming game on the tutorial digits: agents that see the same digits differently.

Agent i sees every digit rotated by i x 45 degrees (agent 0 as they are, agent 1 at 45
degrees, as in the Inter-GMM+VAE code; a third at 90), learns with its own VAE and GMM,
on its own node where the cluster has one per agent, and the agents' GMMs play the
naming game (`actors.naming`) after each round. Other views (`agent_views`): "half", a
harder view for the agents after the first (turned, then the left half blanked), and
"split", complementary views (each agent sees its own vertical strip of the digits,
widened by `overlap` columns into its neighbours').
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import runtime as srk
from actors import naming
from launch import data, plots, recipes

DEGREES_PER_AGENT = 45.0
VIEWS = ("turned", "half", "split")  # what the agents see (`agent_views`)


@dataclass(frozen=True)
class GameSettings:
    """agents: how many; mode, topology, iterations: the game's (`actors.naming`);
    view: what the agents see (`VIEWS`); overlap: with the split view, the columns
    each agent's strip reaches into its neighbours'. model: each agent's VAE and GMM.
    Raw pixels (no deskewing: it would straighten the rotated views too) and the
    class-Gaussian prior of Inter-GMM+VAE by default."""

    agents: int = 2
    mode: str = "mh"
    topology: str = "ring"
    iterations: int = 100
    view: str = "turned"
    overlap: int = 0
    model: recipes.TutorialSettings = field(
        default_factory=lambda: recipes.TutorialSettings(deskew=False, vae_prior="gaussian")
    )


def agent_views(
    images: np.ndarray, agents: int, view: str = "turned", overlap: int = 0
) -> list[np.ndarray]:
    """What each agent sees: the digits turned by i x 45 degrees for agent i; with
    view="half", the agents after the first see only the right half of their turned
    image (the left half blank), so they see less than the first does; with
    view="split", agent i sees only the i-th of as many vertical strips as there are
    agents (two agents: the left half and the right half), widened by `overlap` columns
    into its neighbours' strips, so no agent sees it all and each sees what the others
    do not."""
    check_view(view, overlap)
    if view == "split":
        return [vertical_strip(images, i, agents, overlap) for i in range(agents)]
    views = [data.rotated(images, i * DEGREES_PER_AGENT) for i in range(agents)]
    if view == "half":
        views[1:] = [vertical_strip(turned, 1, 2) for turned in views[1:]]  # the right half
    return views


def check_view(view: str, overlap: int = 0) -> None:
    """A ValueError naming the problem unless `agent_views` can make this view."""
    if view not in VIEWS:
        raise ValueError(f"naming game: view must be one of {VIEWS}, got {view!r}")
    if overlap < 0 or (overlap and view != "split"):
        raise ValueError(
            f"naming game: overlap is a number of columns >= 0 for the split view, got "
            f"{overlap} with the {view} view"
        )


def vertical_strip(
    images: np.ndarray, strip: int, strips: int, overlap: int = 0, side: int = 28
) -> np.ndarray:
    """Square images (N, side*side) blank but for their strip-th of `strips` equal
    vertical strips, counted from the left, widened by `overlap` columns each side."""
    squares = np.zeros_like(images).reshape(-1, side, side)
    first, last = strip * side // strips, (strip + 1) * side // strips
    columns = slice(max(first - overlap, 0), min(last + overlap, side))
    squares[:, :, columns] = images.reshape(-1, side, side)[:, :, columns]
    return squares.reshape(len(images), -1)


@dataclass
class Agents:
    """The agents' models and the game that connects them."""

    vaes: list[srk.Module]
    gmms: list[srk.Module]
    game: naming.NamingGame

    def modules(self) -> list[srk.Module]:
        """In a round's order: each agent's VAE then GMM, then the game."""
        pairs = [m for vae, gmm in zip(self.vaes, self.gmms, strict=True) for m in (vae, gmm)]
        return [*pairs, self.game]


def build(
    views: Sequence[np.ndarray],
    labels: np.ndarray | None,
    settings: GameSettings,
    placement: Mapping[int, Mapping[str, Any]] | None = None,
) -> Agents:
    """One VAE -> GMM per view and the game over the GMMs, in the current session.
    placement: per agent index, `Module.place` keyword arguments for both its modules."""
    vaes, gmms = [], []
    for i, view in enumerate(views):
        model = replace(settings.model, seed=settings.model.seed + 1000 * i)
        vae = recipes.tutorial_vae(model, name=f"vae_{i}")
        gmm = recipes.tutorial_gmm(labels, model, name=f"gmm_{i}")
        for module in (vae, gmm):
            if placement and i in placement:
                module.place(**placement[i])
        vae.connect(srk.Observation(view))
        gmm.connect(vae)
        vaes.append(vae)
        gmms.append(gmm)
    game = naming.NamingGame(settings.iterations, settings.mode, settings.topology)
    game.connect(*gmms)
    return Agents(vaes, gmms, game)


def logical_cpus(agents: int) -> int:
    """CPUs an embedded Ray declares for the game: one per module at least (each agent's
    VAE and GMM ask for one; they update one at a time, so they share the cores)."""
    return max(os.cpu_count() or 1, 2 * agents)


def agent_placement(agents: int) -> dict[int, dict[str, Any]]:
    """Agent i on the nodes that advertise the custom resource agent<i> (`ray start
    --resources '{"agent0": 1}'`); its two modules ask for a hundredth each."""
    return {i: {"resources": {f"agent{i}": 0.01}} for i in range(agents)}


def round_reports(history: Sequence[Mapping[str, Any]], game: str) -> list[dict[str, float]]:
    """The game's metrics per round, from the run's history."""
    return [dict(r["metrics"]) for r in history if r["module"] == game and r["mode"] == "learn"]


def curves(per_round: Sequence[Mapping[str, float]], agents: int) -> dict[str, list[float]]:
    """ARI per agent, kappa and acceptance per agent, per round."""
    lines = {f"ARI, agent {i}": [r.get(f"ari_{i}", np.nan) for r in per_round]
             for i in range(agents)}  # fmt: skip
    lines["kappa"] = [r["kappa"] for r in per_round]
    lines |= {f"acceptance, agent {i}": [r[f"acceptance_{i}"] for r in per_round]
              for i in range(agents)}  # fmt: skip
    return lines


def plot(
    panels: Mapping[str, Sequence[Mapping[str, float]]], agents: int, path: Path,
    steps: str = "round",
) -> Path:  # fmt: skip
    """Per panel title (a run, a mode), its `curves`; steps: what x counts."""
    lines = {title: curves(per_step, agents) for title, per_step in panels.items()}
    return plots.plot_panels(lines, steps, "ARI / kappa / acceptance", path)
