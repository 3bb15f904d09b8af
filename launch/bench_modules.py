"""`serket-ray bench-modules`: the examples of Serket's HAC and NN modules and of data
that grow, their accuracy.

Growing: VAE+GMM while the tutorial digits arrive through a queue, 500 before each
round; per round, the digits so far and the GMM's accuracy over them.

HAC+LDA: Serket's documented example, nine recordings of "zero", "one", "two" spoken by
espeak-ng, HAC features into an MLDA of 3 classes: by one speaker (three takes of each
word at other rates and pitches, as Serket's recordings are one speaker's), then by nine
speakers; per seed (the takes chosen and the MLDA's start). VAE+GMM+NN: Serket's example on the
3,000 tutorial digits with their spoken counterparts (espeak-ng, 2,400-bin HAC
histograms) as the NN's second view, against VAE+GMM alone, per seed, side by side in
one run: the GMM's accuracy after the last round.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

import runtime as srk
from actors import gmm, hac, mlda, torch_nn, torch_vae, vae
from launch.data import tutorial_digits
from launch.spoken_digits import spoken_histograms, synthesise

EXAMPLES = ("growing", "hac_lda", "nn")


ONE_VOICE = ("en-us", "m3")  # Serket's example: one speaker's takes


def _hac_lda(out: Path, seed: int, voice: tuple[str, str] | None) -> float:
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    wavs = synthesise(out / "speech", labels, seed, voice=voice)
    srk.init(out, display="off")
    try:
        obs = hac.HACFeatureExtractor(wavs, [10, 10, 10], lags=[5], seed=seed)
        mlda1 = mlda.MLDA(3, [100], category=labels, seed=seed)
        mlda1.connect(obs)
        return mlda1.update()["metrics"]["acc"]
    finally:
        srk.shutdown()


def _vae_gmm(
    out: Path, images: np.ndarray, labels: np.ndarray, spoken: np.ndarray | None, seed: int,
    rounds: int, epochs: int, itr1: int, itr2: int,
) -> float:  # fmt: skip
    """The GMM's accuracy after `rounds` rounds of VAE, GMM (and NN, given `spoken`)."""
    srk.init(out, display="off")
    try:
        first = srk.Observation(images)
        second = None if spoken is None else srk.Observation(spoken)
        vae1 = torch_vae.TorchVAE(784, 10, epoch=epochs, batch_size=500, seed=seed)
        gmm1 = gmm.GMM(10, category=labels, seed=seed)
        vae1.connect(first)
        gmm1.connect(vae1)
        modules = [vae1, gmm1]
        if second is not None:
            nn1 = torch_nn.TorchNN(500, 500, itr1=itr1, itr2=itr2, seed=seed)
            nn1.connect(gmm1, second)
            modules.append(nn1)
        for _ in range(rounds):
            for module in modules:
                report = module.update()
                if module is gmm1:
                    accuracy = report["metrics"]["acc"]
        return accuracy
    finally:
        srk.shutdown()


def _growing(out: Path, images: np.ndarray, labels: np.ndarray, batch: int, rounds: int,
             epochs: int, seed: int) -> list[tuple[int, float, float]]:  # fmt: skip
    """VAE+GMM over digits that arrive `batch` at a time, one batch before each round
    (a sensor's pace), fed through a queue: per round, the elements taken in so far,
    the GMM's accuracy over them and the VAE's seconds."""
    arrivals: queue.Queue[np.ndarray] = queue.Queue()
    arrivals.put(images[:batch])
    rows = []
    srk.init(out, display="off")
    try:
        obs = srk.GrowingObservation(arrivals)
        vae1 = vae.VAE(18, itr=epochs, batch_size=500, seed=seed)
        gmm1 = gmm.GMM(10, category=labels, seed=seed)
        vae1.connect(obs)
        gmm1.connect(vae1)
        for round_ in range(rounds):
            if round_ > 0 and round_ * batch < len(images):
                arrivals.put(images[round_ * batch : (round_ + 1) * batch])
            seconds = vae1.update()["seconds"]
            accuracy = gmm1.update()["metrics"]["acc"]
            rows.append((obs.shape[0], accuracy, seconds))
    finally:
        srk.shutdown()
    return rows


def run(
    out: Path, seeds: list[int], rounds: int = 10, epochs: int = 200, itr1: int = 500,
    itr2: int = 2000, per_class: int = 300, examples: list[str] | None = None,
    batch: int = 500,
) -> None:  # fmt: skip
    chosen = examples or list(EXAMPLES)
    unknown = sorted(set(chosen) - set(EXAMPLES))
    if unknown:
        raise SystemExit(f"bench-modules: unknown examples {unknown}; choose from {EXAMPLES}")
    digits = tutorial_digits(per_class)[0]
    if "growing" in chosen:
        print(
            f"VAE+GMM over digits arriving {batch} before each round (a queue), "
            f"{len(digits.labels)} in all, VAE {epochs} epochs/round, seed {seeds[0]}"
        )
        print(f"{'round':>5} {'digits':>7} {'GMM acc':>8} {'VAE s':>7}")
        grown = _growing(out / "growing", digits.images, digits.labels, batch, rounds, epochs,
                         seeds[0])  # fmt: skip
        for round_, (elements, accuracy, seconds) in enumerate(grown, 1):
            print(f"{round_:>5} {elements:>7} {accuracy:>8.3f} {seconds:>7.1f}")
    if "hac_lda" in chosen:
        _print_hac_lda(out, seeds)
    if "nn" in chosen:
        _print_nn(out, digits, seeds, rounds, epochs, itr1, itr2)


def _print_hac_lda(out: Path, seeds: list[int]) -> None:
    print(
        "HAC+LDA: nine espeak-ng recordings of 'zero', 'one', 'two', ks [10,10,10], lags [5], "
        "MLDA(3, [100]): accuracy per seed"
    )
    for label, voice in (("one speaker's takes", ONE_VOICE), ("nine speakers", None)):
        scores = [_hac_lda(out / f"hac_lda_{seed}_{voice is None}", seed, voice) for seed in seeds]
        listed = " ".join(f"{score:.3f}" for score in scores)
        print(f"  {label:<20} {listed}   median {median(scores):.3f}")


def _print_nn(
    out: Path, digits: Any, seeds: list[int], rounds: int, epochs: int, itr1: int, itr2: int
) -> None:
    began = time.perf_counter()
    spoken = spoken_histograms(digits.labels, out / "speech")
    print(f"spoken digits: {spoken.shape} HAC histograms in {time.perf_counter() - began:.0f} s")
    # Serket's NN sees its counts through a sigmoid: in [0, 1], as presence of each bin.
    view = np.minimum(spoken, 1.0)
    print(
        f"VAE+GMM+NN vs VAE+GMM, {len(digits.labels)} digits, {rounds} rounds, VAE {epochs} "
        f"epochs, NN itr1 {itr1}, itr2 {itr2}: the GMM's accuracy after the last round"
    )
    print(f"{'seed':>5} {'VAE+GMM':>8} {'+NN':>8} {'s (both)':>9}")
    pairs = []
    for seed in seeds:
        began = time.perf_counter()
        alone = _vae_gmm(out / f"vae_gmm_{seed}", digits.images, digits.labels, None, seed,
                         rounds, epochs, itr1, itr2)  # fmt: skip
        with_nn = _vae_gmm(out / f"vae_gmm_nn_{seed}", digits.images, digits.labels, view,
                           seed, rounds, epochs, itr1, itr2)  # fmt: skip
        pairs.append((alone, with_nn))
        print(f"{seed:>5} {alone:>8.3f} {with_nn:>8.3f} {time.perf_counter() - began:>9.0f}")
    alone, with_nn = zip(*pairs, strict=True)
    print(f"{'median':>5} {median(alone):>8.3f} {median(with_nn):>8.3f}")
