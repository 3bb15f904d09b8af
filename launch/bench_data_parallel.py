"""`serket-ray bench-data-parallel`: does training the VAE over shards cost quality?

The tutorial (the 3,000 embedded digits, VAE+GMM at the tutorial's settings) through an
embedded Ray, per seed and per VAE shard count S: the VAE trained data-parallel over S
shards (one thread each; S=1: the single actor with all the cores). Prints each run's
final accuracy and seconds per VAE epoch, then per S the median over the seeds. Timings
compare only within one run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from statistics import median

import runtime as srk
from launch import data, recipes

LOGICAL_CPUS = 4  # the VAE's S shards and the GMM each reserve a CPU: room for S <= 3


def one_run(settings: recipes.TutorialSettings, out: Path) -> dict[str, float]:
    """The tutorial with these settings; its final accuracy and seconds per VAE epoch."""
    digits, _ = data.tutorial_digits()
    srk.init(out, num_cpus=LOGICAL_CPUS, display="off")
    try:
        vae1, gmm1 = recipes.build_vae_gmm(digits.images, digits.labels, settings)
        reports = recipes.run_rounds([vae1, gmm1], settings.rounds)
    finally:
        srk.shutdown()
    vae_seconds = sum(r["seconds"] for r in reports if r["module"] == vae1.full_name)
    final = [r for r in reports if r["module"] == gmm1.full_name][-1]["metrics"]
    return {"acc": final["acc"], "epoch_seconds": vae_seconds / (settings.epochs * settings.rounds)}


def run(
    settings: recipes.TutorialSettings, seeds: list[int], shards: list[int], out: Path
) -> dict[int, list[dict[str, float]]]:
    results: dict[int, list[dict[str, float]]] = {s: [] for s in shards}
    for seed in seeds:
        for s in shards:
            figures = one_run(replace(settings, seed=seed, vae_shards=s), out / f"seed{seed}-S{s}")
            results[s].append(figures)
            print(f"seed {seed}, VAE shards {s}: acc {figures['acc']:.4f}, "
                  f"{figures['epoch_seconds'] * 1000:.0f} ms per epoch", flush=True)  # fmt: skip
    fixed = {k: v for k, v in asdict(settings).items() if k not in ("seed", "vae_shards")}
    print(f"\nmedian over seeds {seeds} ({fixed}):")
    for s, runs in results.items():
        accuracies = [r["acc"] for r in runs]
        print(f"  S={s}: acc {median(accuracies):.4f} [{min(accuracies):.4f}-"
              f"{max(accuracies):.4f}], {median(r['epoch_seconds'] for r in runs) * 1000:.0f} "
              "ms per VAE epoch")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_parallel.json").write_text(json.dumps({"seeds": seeds, "results": results}))
    return results
