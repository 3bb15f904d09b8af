"""True labels of a module's elements, used only to score it, sharded or not."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime import UpdateContext, data_files, data_inspection
from runtime.metrics import classification_scores, contingency_table, scores_from_table

# An array, a folder or glob of label files, or a ray.data.Dataset of labels (in the
# module's actors: its blocks, as parts): no narrower type covers the dataset.
Labels = Any


def own_labels(category: Labels | None, n: int, ctx: UpdateContext) -> np.ndarray | None:
    """The labels of this actor's n elements (its shard's rows of them), if any."""
    if category is None:
        return None
    start, stop = (ctx.shard.start, ctx.shard.stop) if ctx.sharded else (0, n)
    if data_files.is_pattern(category):
        return data_files.rows(str(category), start, stop)
    if data_files.is_block_parts(category):
        return data_inspection.block_rows(category, start, stop)
    return np.asarray(category)[start:stop]


def scores(
    labels: np.ndarray, classes: np.ndarray, n_classes: int, ctx: UpdateContext
) -> dict[str, float]:
    """Matched accuracy, NMI and ARI of this module's classes; sharded, from the
    contingency table summed over its shards (no labels gathered), so every shard
    reports the same. The largest label is found first, each shard's in a slot of its
    own."""
    if not ctx.sharded:
        return classification_scores(labels, classes)
    if labels.size and (labels.min() < 0 or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError("a sharded module's category must be labels 0, 1, 2, ...")
    largest = np.zeros(ctx.shard.count)
    largest[ctx.shard.index] = labels.max(initial=0)
    n_labels = int(ctx.allreduce({"largest": largest})["largest"].max()) + 1
    table = contingency_table(labels, classes, (n_labels, n_classes))
    return scores_from_table(ctx.allreduce({"table": table})["table"])


def checked_length(category: Labels | None, n: int) -> None:
    """At connect time: labels given as an array must cover every element (files and
    datasets are checked on the cluster). More may be given: the labels of elements a
    growing observation has still to take in (`runtime.growing`); the first n score n."""
    if category is not None and data_files.is_in_memory(category) and len(category) < n:
        raise ValueError(f"category has {len(category)} labels for {n} elements")


def recognition_labels(
    category: Labels | None, recognizing: bool, n: int, ctx: UpdateContext
) -> np.ndarray | None:
    """The labels to score a recognition with: the novel data's (`srk.recognize` passes
    them in ctx); in Serket's recognition mode, the module's own `category`, which then
    labels the data it is connected to."""
    if ctx.category is not None:
        return ctx.category
    return own_labels(category, n, ctx) if recognizing else None
