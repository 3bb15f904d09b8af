"""Benchmark of the naming game: final ARI of each agent and kappa, per mode and seed.

Each run is the `naming_game` recipe on the tutorial digits (the agents' views:
`naming_game.agent_views`), on an embedded Ray, in a fresh session of its own under
OUT/MODE-seedS. Prints median [min-max] over the seeds per mode, writes the per-seed
figures to JSON and a plot of the medians per round. Beside each "none" run it scores
the agents' own posteriors pooled (`pooled_ari`): what their views hold together.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from statistics import median

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

import runtime as srk
from launch import data, naming_game, recipes


def one_run(
    settings: naming_game.GameSettings, images: np.ndarray, labels: np.ndarray, root: Path,
    num_cpus: int | None,
) -> list[dict[str, float]]:  # fmt: skip
    """The game's metrics per round of one run."""
    shutil.rmtree(root, ignore_errors=True)
    srk.init(root, num_cpus=num_cpus or naming_game.logical_cpus(settings.agents), display="off")
    try:
        views = naming_game.agent_views(images, settings.agents, settings.view, settings.overlap)
        agents = naming_game.build(views, labels, settings)
        reports = recipes.run_rounds(agents.modules(), settings.model.rounds)
    finally:
        srk.shutdown()
    per_round = [dict(r["metrics"]) for r in reports if r["module"] == agents.game.full_name]
    if settings.mode == "none":  # each agent's last posteriors, learned alone
        posteriors = [np.loadtxt(root / gmm.full_name / "Pdz_learn.txt") for gmm in agents.gmms]
        per_round[-1]["pooled_ari"] = pooled_ari(posteriors, labels)
    return per_round


def pooled_ari(posteriors: list[np.ndarray], labels: np.ndarray) -> float:
    """ARI of the classes the agents' posteriors P(class | own view) (N, K) give together.

    Each agent numbers its classes its own way: each is matched to agent 0's one to one
    (a Hungarian assignment, scipy's, of the classes' expected overlaps), then the log
    posteriors are summed, as if the views were independent given the class. Where this
    is no better than the best agent alone, the views hold nothing for shared signs to
    add; where it is, a game has something to find.
    """
    pooled = np.zeros_like(posteriors[0])
    for posterior in posteriors:
        overlap = posterior.T @ posteriors[0]  # (its classes, agent 0's)
        classes, names = linear_sum_assignment(overlap, maximize=True)
        pooled[:, names] += np.log(np.maximum(posterior[:, classes], 1e-300))
    return float(adjusted_rand_score(labels, pooled.argmax(axis=1)))


def cell(values: list[float]) -> str:
    return f"{median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def summary(results: dict[str, list[list[dict[str, float]]]], agents: int) -> str:
    """Per mode: each agent's final ARI and the final kappa, over the seeds."""
    columns = [*(f"ari_{i}" for i in range(agents)), "kappa",
               *(f"acceptance_{i}" for i in range(agents))]  # fmt: skip
    lines = [f"{'mode':8}" + "".join(f"{c:>22}" for c in columns)]
    for mode, runs in results.items():
        finals = [run[-1] for run in runs]
        lines.append(f"{mode:8}" + "".join(f"{cell([f[c] for f in finals]):>22}" for c in columns))
    return "\n".join(lines)


def gains_over_none(results: dict[str, list[list[dict[str, float]]]], agents: int) -> str:
    """Per mode and agent, the final ARI minus that of "none" seed by seed: a run and its
    "none" run share their seed and so their first round (the game follows it), which
    tells a gain from the spread between seeds."""
    if "none" not in results:
        return ""
    alone = [run[-1] for run in results["none"]]
    lines = []
    for mode, runs in results.items():
        for i in range(agents) if mode != "none" else ():
            key = f"ari_{i}"
            gains = [run[-1][key] - own[key] for run, own in zip(runs, alone, strict=True)]
            lines.append(
                f"{mode}, agent {i}: ARI minus none {median(gains):+.3f} "
                f"[{min(gains):+.3f} to {max(gains):+.3f}], above on {sum(g > 0 for g in gains)} "
                f"of {len(gains)} seeds"
            )
    return "\n".join(lines)


def run(
    settings: naming_game.GameSettings,
    seeds: list[int],
    modes: list[str],
    out: Path,
    num_cpus: int | None = None,
    per_class: int = 300,
) -> None:
    """per_class: digits of each class the agents see (the tutorial's 300 by default)."""
    digits, _ = data.tutorial_digits(per_class=per_class)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[list[dict[str, float]]]] = {}
    for mode in modes:
        for seed in seeds:
            played = replace(settings, mode=mode, model=replace(settings.model, seed=seed))
            per_round = one_run(played, digits.images, digits.labels, out / f"{mode}-seed{seed}",
                                num_cpus)  # fmt: skip
            results.setdefault(mode, []).append(per_round)
            final = per_round[-1]
            print(f"{mode} seed {seed}: kappa {final['kappa']:.3f}  " + "  ".join(
                f"ARI agent {i} {final[f'ari_{i}']:.3f}" for i in range(settings.agents)
            ), flush=True)  # fmt: skip
    print(f"\n{summary(results, settings.agents)}\n(final round; median [min-max] over seeds "
          f"{seeds}; {settings})")  # fmt: skip
    if "none" in results:
        pooled = [run[-1]["pooled_ari"] for run in results["none"]]
        print(f"none, the agents' own posteriors pooled: ARI {cell(pooled)}")
    if gains := gains_over_none(results, settings.agents):  # only beside a "none" run
        print(gains)
    (out / "naming.json").write_text(json.dumps({"seeds": seeds, "results": results}, indent=1))
    medians = {
        mode: [
            {key: median(run[r][key] for run in runs) for key in runs[0][r]}
            for r in range(len(runs[0]))
        ]
        for mode, runs in results.items()
    }
    path = naming_game.plot(
        {f"{mode} (median of {len(seeds)} seeds)": rounds for mode, rounds in medians.items()},
        settings.agents, out / "naming.png",
    )  # fmt: skip
    print(f"figures per seed: {out / 'naming.json'}; per round: {path}")
