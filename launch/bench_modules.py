"""`serket-ray bench-modules`: the examples of Serket's HAC and NN modules, their accuracy.

HAC+LDA: Serket's documented example, nine recordings (three speakers each of "zero",
"one", "two", spoken by espeak-ng), HAC features into an MLDA of 3 classes; one line per
seed (the speakers chosen and the MLDA's start). VAE+GMM+NN: Serket's example on the
3,000 tutorial digits with their spoken counterparts (espeak-ng, 2,400-bin HAC
histograms) as the NN's second view, against VAE+GMM alone, per seed, side by side in
one run: the GMM's accuracy after the last round.
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import median

import numpy as np

import runtime as srk
from actors import gmm, hac, mlda, torch_nn, torch_vae
from launch.data import tutorial_digits
from launch.spoken_digits import spoken_histograms, synthesise


def _hac_lda(out: Path, seed: int) -> float:
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    wavs = synthesise(out / "speech", labels, seed)
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


def run(
    out: Path, seeds: list[int], rounds: int = 10, epochs: int = 200, itr1: int = 500,
    itr2: int = 2000, per_class: int = 300,
) -> None:  # fmt: skip
    print(
        f"HAC+LDA: nine espeak-ng recordings, ks [10,10,10], lags [5], MLDA(3, [100]); out: {out}"
    )
    scores = []
    for seed in seeds:
        scores.append(_hac_lda(out / f"hac_lda_{seed}", seed))
        print(f"  seed {seed}: acc {scores[-1]:.3f}")
    print(f"  median {median(scores):.3f}")
    digits = tutorial_digits(per_class)[0]
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
