"""Benchmark of the shipped graph files (VAE+GMM, +MM, +MLDA) over the same seeds.

Prints, per model and seed, the GMM's final accuracy on the learned digits, the top
module's when it scores too (MLDA), and the GMM's on the held-out digits by recognition.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from statistics import median

import runtime as srk
from launch import graph, recipes

SHIPPED = sorted((Path(graph.__file__).parent / "graphs").glob("*.yaml"))


def _with_seed(model: graph.Graph, seed: int) -> graph.Graph:
    for spec in model.modules:
        if "seed" in inspect.signature(spec.cls.__init__).parameters:
            spec.params["seed"] = seed
    return model


def _last_acc(reports: list[dict], module: str) -> float | None:
    scored = [r for r in reports if r["module"] == module and "acc" in r["metrics"]]
    return scored[-1]["metrics"]["acc"] if scored else None


def run_one(path: Path, seed: int, out: Path) -> dict[str, float | None]:
    model = _with_seed(graph.load(path), seed)
    srk.init(out / path.stem / f"seed{seed}")
    try:
        observations, modules = graph.build(model)
        reports = recipes.run_rounds([modules[n] for n in model.order], model.rounds)
        recognized = graph.recognize(model, observations, modules)
    finally:
        srk.shutdown()
    names = {spec.name: modules[spec.name].full_name for spec in model.modules}
    top = model.modules[-1].name
    return {
        "gmm": _last_acc(reports, names["gmm"]),
        "top": _last_acc(reports, names[top]) if top != "gmm" else None,
        "recog": _last_acc(recognized, names["gmm"]),
    }


def run(seeds: list[int], out: Path, names: list[str] | None = None) -> None:
    """names: the shipped graph files to run, by stem (default: all of them)."""
    shipped = {path.stem: path for path in SHIPPED}
    unknown = sorted(set(names or []) - set(shipped))
    if unknown:
        raise srk.DataError("--graphs", f"no shipped graph file {unknown}; have {sorted(shipped)}")
    results: dict[str, list[dict[str, float | None]]] = {}
    for path in [shipped[name] for name in names] if names else SHIPPED:
        for seed in seeds:
            results.setdefault(path.stem, []).append(run_one(path, seed, out))
            found = results[path.stem][-1]
            print(f"{path.stem} seed {seed}: " + "  ".join(
                f"{k} {v:.3f}" for k, v in found.items() if v is not None), flush=True)  # fmt: skip
    print(f"\n{'model':16}{'GMM acc (learn)':>24}{'top module acc':>24}{'GMM acc (recog)':>24}")
    for name, runs in results.items():
        cells = []
        for key in ("gmm", "top", "recog"):
            values = [r[key] for r in runs if r[key] is not None]
            cells.append(
                f"{median(values):.3f} [{min(values):.3f}-{max(values):.3f}]" if values else "-"
            )
        print(f"{name:16}" + "".join(f"{c:>24}" for c in cells))
    print(f"(median [min-max] over seeds {seeds})")
