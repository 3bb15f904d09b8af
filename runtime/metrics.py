"""Scores of an unsupervised classification against true labels (used only for scoring).

A sharded module scores from its contingency table, summed over its shards: the table
holds all that matched accuracy, NMI and ARI need, so no labels are gathered.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import comb
from sklearn.metrics import adjusted_rand_score, mutual_info_score, normalized_mutual_info_score
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


def contingency_table(
    labels_true: np.ndarray, labels_pred: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Counts of (true label, predicted class) pairs, labels 0..shape[0]-1 and
    0..shape[1]-1: a table of fixed shape, so shards' tables add up."""
    table = np.zeros(shape)
    np.add.at(table, (np.asarray(labels_true, dtype=int), np.asarray(labels_pred, dtype=int)), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def scores_from_table(table: np.ndarray) -> dict[str, float]:
    """`classification_scores` from a contingency table (true labels x classes).

    NMI with the arithmetic mean of the entropies and ARI as scikit-learn defines them
    (checked against it in the tests).
    """
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]  # labels never seen
    rows, cols = linear_sum_assignment(table, maximize=True)
    total = table.sum()
    h_true, h_pred = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    mutual = float(mutual_info_score(None, None, contingency=table))
    nmi = 1.0 if h_true == h_pred == 0 else mutual / max((h_true + h_pred) / 2, 1e-300)
    pairs = comb(table, 2).sum()
    pairs_true, pairs_pred = comb(table.sum(axis=1), 2).sum(), comb(table.sum(axis=0), 2).sum()
    expected = pairs_true * pairs_pred / comb(total, 2)
    top = (pairs_true + pairs_pred) / 2
    ari = 1.0 if top == expected else (pairs - expected) / (top - expected)
    return {"acc": float(table[rows, cols].sum() / total), "nmi": float(nmi), "ari": float(ari)}
