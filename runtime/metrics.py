"""Scores of an unsupervised classification against true labels (used only for scoring)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def matched_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of predicted classes to true labels.

    The Hungarian matching is optimal, unlike the original Serket's greedy label swaps.
    """
    counts = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def classification_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """Matched accuracy, normalised mutual information and adjusted Rand index."""
    return {
        "acc": matched_accuracy(labels_true, labels_pred),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
    }
