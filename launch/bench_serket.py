"""`serket-ray bench-serket`: Serket's scripts at Serket's sizes, each module's accuracy.

Each script of `launch.serket_scripts` runs as a user runs it (its own process, its own
embedded Ray) on the 3,000 tutorial digits and their HAC-like spoken counterparts.
Printed per script and module: the last round's accuracy and the mean seconds per
update (the MLDA's beside the VAE's, side by side in one run); then, for the
multimodal tutorials, each view alone: the GMM on the images (the VAE+GMM tutorial)
and an MLDA on the spoken counts alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean

import numpy as np

from actors.mlda import MLDA
from launch.serket_scripts import SCRIPTS, script_text, write_data
from runtime.module import UpdateContext, no_progress


def _run_script(name: str, folder: Path, per_class: int) -> float:
    write_data(name, folder, per_class)
    (folder / "script.py").write_text(script_text(name))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "script.py"], cwd=folder, capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench-serket: {name} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def _module_rows(folder: Path) -> list[tuple[str, str, str]]:
    """(module, last round's accuracy, mean seconds per update) per module folder."""
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    rows = []
    for module in sorted(p for p in folder.glob("module*") if p.is_dir()):
        accuracy = module / "acc_learn.txt"
        seconds = [h["seconds"] for h in history if h["module"] == module.name]
        rows.append((
            module.name,
            f"{float(np.loadtxt(accuracy)):.3f}" if accuracy.exists() else "-",
            f"{mean(seconds):.2f}" if seconds else "-",
        ))  # fmt: skip
    return rows


def _spoken_alone(folder: Path) -> tuple[float, float]:
    """Accuracy and seconds of an MLDA (Serket's settings) on the spoken counts alone."""
    counts, labels = np.loadtxt(folder / "data2.txt"), np.loadtxt(folder / "category.txt")
    began = time.perf_counter()
    update = MLDA(10, [200], category=labels.astype(int)).learn(
        [counts], None, UpdateContext("mlda", 1, [], no_progress)
    )
    return update.metrics["acc"], time.perf_counter() - began


def run(out: Path, per_class: int = 300, scripts: list[str] | None = None) -> None:
    names = scripts or sorted(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        raise SystemExit(f"bench-serket: unknown scripts {unknown}; choose from {sorted(SCRIPTS)}")
    print(f"Serket's scripts, imports changed only, {10 * per_class} digits; out: {out}")
    print(f"{'script':<18} {'module':<16} {'acc':>6} {'s/update':>9}")
    for name in names:
        folder = out / name
        seconds = _run_script(name, folder, per_class)
        for module, accuracy, per_update in _module_rows(folder):
            print(f"{name:<18} {module:<16} {accuracy:>6} {per_update:>9}")
        print(f"{name:<18} {'(whole script)':<16} {'':>6} {seconds:>9.1f}")
        if name == "vae_gmm_mlda":
            accuracy, took = _spoken_alone(folder)
            print(f"{'spoken alone':<18} {'MLDA [200]':<16} {accuracy:>6.3f} {took:>9.2f}")
