"""A second modality for Serket's multimodal tutorials, made offline: HAC-like count
histograms of spoken digits.

Serket's VAE+GMM+MLDA tutorials pair the digits with HAC features of spoken digits:
histograms of 2,400 bins, about 5 % of them non-zero per element. These are synthetic
histograms of that shape and sparsity, made by class: each digit has its own acoustic
words, shares a background of words with every digit (what all speech has in common)
and some with a confusable digit (as "five" and "nine" share a vowel), so the modality
classifies well, not perfectly, on its own.
"""

from __future__ import annotations

import numpy as np

BINS = 2400
COUNTS = 150  # counts per element: about 5 % of 2,400 bins end up non-zero


def hac_like_histograms(
    labels: np.ndarray,
    seed: int = 0,
    bins: int = BINS,
    background: float = 0.75,
    confusion: float = 0.15,
) -> np.ndarray:
    """(N, bins) float32 counts for elements of the given classes (0, 1, ...).

    background, confusion: the shares of each element's counts drawn from the words
    every digit uses and from the words of digit (c + 1) % 10; the rest from its own.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    classes = int(labels.max()) + 1
    per_digit, in_background = bins // 15, bins // 6  # the bins a digit uses; all digits
    shared = rng.choice(bins, in_background, replace=False)
    own_pool = np.setdiff1d(np.arange(bins), shared)
    words = np.zeros((classes, bins))
    for digit in range(classes):
        chosen = rng.choice(own_pool, per_digit, replace=False)
        words[digit, chosen] = rng.dirichlet(np.full(per_digit, 0.3))
    background_words = np.zeros(bins)
    background_words[shared] = rng.dirichlet(np.full(in_background, 0.3))
    own_share = 1.0 - background - confusion
    # (classes, bins): row c mixes digit c's words, digit c+1's and the background
    mixtures = (
        own_share * words + confusion * np.roll(words, -1, axis=0) + background * background_words
    )
    counts = np.stack([rng.multinomial(COUNTS, mixtures[c]) for c in labels])
    return counts.astype(np.float32)
