"""Benchmark: the tutorial through Ray actors, then the same modules in one fresh process.

Both runs use the same data, settings and seed, one after the other in one command, so
their ratio is the cost of Ray and messaging (start-up reported apart). Both start from
fresh processes (the module actors; a child process for the baseline), so both pay
torch's first-round warm-up, as any user's run does.

On an embedded instance a third run splits that cost: the one-process run again, while
a Ray instance with nothing on it is up. Ray's own daemons wake hundreds of times a
second (timers, pollers); on a small machine that slows any busy process beside them,
one without Ray in it too. What remains is the cost of the actors and the messages.

With repeats, each repeat runs the arms back to back, the one-process run in the middle
and the order reversed every other repeat; the overhead is also given per repeat,
against that repeat's one-process run, and as the median of those: a shared VM's speed
drifts by several per cent over minutes, which the ratio of two arms' best runs, taken
minutes apart, does not cancel and neighbouring runs' ratio mostly does.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean, median
from typing import Any

import numpy as np
import ray
import torch

import runtime as srk
from launch import data, local_run, recipes
from runtime import cluster


@dataclass
class Timing:
    whole: float = 0.0
    startup: float = 0.0
    plumbing: float = 0.0  # per update: coordinator's wall time minus the module's learn()
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"vae": [], "gmm": []})
    scores: dict[str, float] = field(default_factory=dict)


def time_ray(
    images: np.ndarray,
    labels: np.ndarray,
    settings: recipes.TutorialSettings,
    args: Any,
    placement: dict[str, Any],
) -> Timing:
    timing = Timing()
    began = time.perf_counter()
    session = srk.init(
        args.out, address=args.address, num_cpus=args.num_cpus, start_timeout_s=args.start_timeout
    )
    try:
        modules = recipes.build_vae_gmm(images, labels, settings, placement)
        session.placements()  # returns once every actor has started
        timing.startup = time.perf_counter() - began
        reports = recipes.run_rounds(list(modules), settings.rounds)
        timing.whole = time.perf_counter() - began
    finally:
        srk.shutdown()
    for report in reports:
        timing.seconds[report["module"].split("_", 1)[1]].append(report["wall_seconds"])
    timing.plumbing = fmean(r["wall_seconds"] - r["seconds"] for r in reports)
    timing.scores = reports[-1]["metrics"]
    return timing


def time_in_process(settings: recipes.TutorialSettings) -> Timing:
    """The modules' own `learn` calls, chained by hand in a fresh process: no Ray, no
    messages, no files (see `local_run.run_in_fresh_process`)."""
    run = local_run.run_in_fresh_process(settings)
    return Timing(whole=run["whole"], seconds=run["seconds"], scores=run["scores"])


def time_beside_idle_ray(settings: recipes.TutorialSettings, args: argparse.Namespace) -> Timing:
    """The one-process run while an embedded Ray instance, with no actor on it, is up."""
    cluster.connect(num_cpus=args.num_cpus)
    try:
        return time_in_process(settings)
    finally:
        ray.shutdown()


def overhead(hosted: Timing, local: Timing) -> float:
    """A run's wall time after start-up (none outside the Ray actors' arm) against the
    one-process run's, minus one."""
    return (hosted.whole - hosted.startup) / local.whole - 1


def _print_pairs(ratios: list[float]) -> None:
    listed = ", ".join(f"{ratio:+.1%}" for ratio in ratios)
    print(f"  per repeat (each against the one-process run of that repeat): {listed}; "
          f"median {median(ratios):+.1%}")  # fmt: skip


def run(
    settings: recipes.TutorialSettings, args: argparse.Namespace, placement: dict[str, Any]
) -> None:
    digits, _ = data.tutorial_digits()
    images, labels = digits.images, digits.labels
    threads = settings.vae_threads or torch.get_num_threads()
    threads_named = f"{threads} thread" if threads == 1 else f"{threads} threads"
    device = "CUDA" if torch.cuda.is_available() else f"CPU ({threads_named})"
    print(f"benchmark: {len(images)} digits, {settings}, VAE on {device}", flush=True)
    embedded = not (args.address or os.environ.get("RAY_ADDRESS"))  # daemons on this machine
    arms: dict[str, tuple[str, Callable[[], Timing]]] = {
        "ray": ("Ray actors", lambda: time_ray(images, labels, settings, args, placement)),
        "local": ("one process", lambda: time_in_process(settings)),
    }
    if embedded:
        arms["beside"] = (
            "one process beside an idle Ray",
            lambda: time_beside_idle_ray(settings, args),
        )
    runs: dict[str, list[Timing]] = {arm: [] for arm in arms}
    for repeat in range(1, args.repeats + 1):
        # The one-process run in the middle, the order reversed every other repeat: each
        # arm's drifts and turn hit the others alike.
        for arm in list(arms) if repeat % 2 else reversed(arms):
            label, time_arm = arms[arm]
            runs[arm].append(time_arm())
            startup = f" ({runs[arm][-1].startup:.1f} s start-up)" if arm == "ray" else ""
            print(f"[{repeat}/{args.repeats}] {label}: {runs[arm][-1].whole:.1f} s{startup}",
                  flush=True)  # fmt: skip
    hosted_runs, local_runs, beside_runs = runs["ray"], runs["local"], runs.get("beside", [])
    hosted = min(hosted_runs, key=lambda t: t.whole)
    local = min(local_runs, key=lambda t: t.whole)
    rows = [
        ("whole run (s)", f"{hosted.whole:.1f}", f"{local.whole:.1f}"),
        ("  of which Ray start-up (s)", f"{hosted.startup:.1f}", "-"),
        *(
            (f"{name.upper()} update, mean (s)", f"{fmean(hosted.seconds[name]):.3f}",
             f"{fmean(local.seconds[name]):.3f}")
            for name in ("vae", "gmm")
        ),
        *(
            (f"final {k}", f"{hosted.scores[k]:.3f}", f"{local.scores[k]:.3f}")
            for k in ("acc", "nmi", "ari")
        ),
    ]  # fmt: skip
    best = f" (best of {args.repeats})" if args.repeats > 1 else ""
    print(f"\n{'':30}{'Ray actors':>12}{'one process':>14}{best}")
    for label, ray_value, local_value in rows:
        print(f"{label:30}{ray_value:>12}{local_value:>14}")
    print(f"\nRay + messaging overhead, start-up excluded: {overhead(hosted, local):+.1%}{best}")
    if args.repeats > 1:
        _print_pairs([overhead(h, one) for h, one in zip(hosted_runs, local_runs, strict=True)])
    if beside_runs:
        beside = min(beside_runs, key=lambda t: t.whole)
        print(
            f"  the one-process run beside an idle Ray instance ({beside.whole:.1f} s; Ray's "
            f"daemons only, no actors, no messages): {overhead(beside, local):+.1%}"
        )
        if args.repeats > 1:
            _print_pairs([overhead(b, one) for b, one in zip(beside_runs, local_runs, strict=True)])
    print(f"Ray + messaging overhead, start-up included: {hosted.whole / local.whole - 1:+.1%}")
    print(
        f"dispatch and messages per update (coordinator's wall time minus learn(); result "
        f"files and checkpoints are written behind): {hosted.plumbing * 1000:.0f} ms"
    )
