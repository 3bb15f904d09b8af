"""Spoken digits synthesised offline with espeak-ng: recordings for the HAC examples.

Serket's HAC+LDA example ships nine recordings of one speaker; ours are made here, with
the speaker varied as a corpus would vary it: espeak-ng's English accents, its voice
variants (male and female), speaking rates and pitches, each recording one combination.
espeak-ng comes from Debian's packages (`make test` installs it).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4", "f5")
SPEEDS = (120, 150, 180)  # words per minute (espeak-ng's default is 175)
PITCHES = (35, 65)  # 0-99 (default 50)


def speakers(
    count: int, seed: int = 0, voice: tuple[str, str] | None = None
) -> list[tuple[str, str, int, int]]:
    """`count` distinct (accent, variant, speed, pitch) settings, in a seeded order;
    voice: one (accent, variant) for all, as one person's takes, of other rates and
    pitches."""
    accents, variants = ACCENTS, VARIANTS
    if voice is not None:
        accents, variants = (voice[0],), (voice[1],)
    every = list(itertools.product(accents, variants, SPEEDS, PITCHES))
    if count > len(every):
        raise ValueError(f"at most {len(every)} distinct speakers, asked for {count}")
    order = np.random.default_rng(seed).permutation(len(every))[:count]
    return [every[i] for i in order]


def synthesise(
    folder: str | Path,
    labels: Sequence[int],
    seed: int = 0,
    workers: int = 4,
    names: Sequence[str] | None = None,
    voice: tuple[str, str] | None = None,
) -> list[str]:
    """One WAV file per label (a digit 0-9), each digit's recordings by distinct speaker
    settings; returns their paths in order. names: the files' names (default
    ``00000_zero.wav``, ...). voice: one speaker's takes (see `speakers`)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError(
            "espeak-ng is not installed: `make test` installs it (apt-get install espeak-ng)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = [int(y) for y in labels]
    per_digit = max(np.bincount(labels, minlength=10))
    voices = speakers(int(per_digit), seed, voice)
    seen = [0] * 10
    jobs = []
    for index, digit in enumerate(labels):
        accent, variant, speed, pitch = voices[seen[digit]]
        seen[digit] += 1
        path = folder / (names[index] if names else f"{index:05d}_{WORDS[digit]}.wav")
        command = [espeak, "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch)]
        jobs.append((path, [*command, "-w", str(path), WORDS[digit]]))

    def speak(job: tuple[Path, list[str]]) -> str:
        path, command = job
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        return str(path)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(speak, jobs))


def spoken_histograms(
    labels: Sequence[int],
    folder: str | Path,
    ks: Sequence[int] = (20, 20, 20),
    lags: Sequence[int] = (5, 2),
    seed: int = 0,
) -> np.ndarray:
    """HAC histograms of the digits `labels` spoken by espeak-ng into `folder`: Serket's
    spoken-digit modality (2,400 bins with the default ks and lags, as Serket's data).
    Computed here, in this process, by the HAC module's functions."""
    from actors import hac

    streams = [
        hac.read_streams(path, lags, hac.MFCC_PARAMS, path)
        for path in synthesise(folder, labels, seed)
    ]
    return hac.histograms(streams, hac.learned_codebooks(streams, ks, seed), lags)
