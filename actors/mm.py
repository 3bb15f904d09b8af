"""Serket's Markov model module: class transitions over the data sequence.

Connected above a classifier (a GMM), whose forward message is P(class | z) per element in
sequence order, it learns the class transition probabilities and sends back, for every
element, P(class) given its predecessor; the classifier then classifies with that prior.

Serket samples class sequences and counts them; this module takes the expected counts
(the sum over neighbours of P(c_{n-1}) P(c_n)^T), the mean of those samples without their
noise, as one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from runtime import Module, ModuleError, Resources, Update, UpdateContext

DEFAULT_PRIOR = 1.0
SERKET_PSEUDO_COUNT = 0.1  # Serket's initial count of every transition


class MarkovModel(Module):
    """First-order Markov chain over the classes of the module below.

    prior: the additive (Dirichlet) pseudo-count on every transition, so that unseen
    transitions keep a small probability. The first element's predecessor is unknown: it
    gets the classes' overall frequencies.
    num_samp: Serket's parameter: the class sequences Serket samples and counts, on top
    of its pseudo-count of 0.1 per transition. Expected counts are the mean of those
    samples, so num_samp weighs them num_samp times against 0.1: the same as
    prior = 0.1 / num_samp. Give one of the two.
    shards: actors the sequence is split over, in order; the expected transition counts
    include the pairs that straddle the shards' boundaries, so they equal unsharded ones.
    mode, load_dir: Serket's recognition mode: with load_dir a learned Markov model's
    folder, every update predicts over the connected sequence with its transitions.
    A message from a module above (P(class) per element) multiplies the prediction, as
    Serket's message does.
    """

    kind = "mm"
    # Light work that runs between the heavy updates: it reserves no CPU (as Ray's
    # actors do by default), so it fits beside a VAE and a GMM on a 2-core machine.
    resources = Resources(num_cpus=0)
    supports_shards = True

    def __init__(
        self,
        prior: float | None = None,
        num_samp: int | None = None,
        shards: int = 1,
        name: str | None = None,
        mode: str | None = None,
        load_dir: str | None = None,
    ) -> None:
        super().__init__(name, shards=shards, mode=mode, load_dir=load_dir)
        if num_samp is not None:
            self.require_positive_integers(num_samp=num_samp)
            serket_prior = SERKET_PSEUDO_COUNT / num_samp
            if prior is not None and prior != serket_prior:
                raise ModuleError(
                    self.full_name,
                    f"prior={prior!r} and num_samp={num_samp!r} set one thing (num_samp means "
                    f"prior={serket_prior:g}): give one of them",
                )
            prior = serket_prior
        self.prior = DEFAULT_PRIOR if prior is None else prior
        self.num_samp = None  # resolved into prior: a copy rebuilt from its parameters agrees
        if not np.isfinite(self.prior) or self.prior <= 0:
            raise ModuleError(self.full_name, f"prior must be a positive number, got {prior!r}")
        self.transitions_: np.ndarray | None = None  # (K, K): row i = P(next class | i)
        self.initial_: np.ndarray | None = None  # (K,): P(class) of an element with no past

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        if len(input_shapes) != 1 or len(input_shapes[0]) != 2:
            raise ValueError(
                f"needs one input of class probabilities (elements, K), got {list(input_shapes)}"
            )
        if input_shapes[0][0] < 2:
            raise ValueError("a sequence needs at least 2 elements")
        return input_shapes[0]

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        probabilities = _class_probabilities(inputs[0])
        before = _predecessor(probabilities, ctx)
        pairs = probabilities[:-1].T @ probabilities[1:]  # (K, K) expected transitions
        if before is not None:  # the pair that straddles this shard's first boundary
            pairs = pairs + np.outer(before, probabilities[0])
        totals = ctx.allreduce(
            {
                "pairs": pairs,
                "sums": probabilities.sum(axis=0),
                "count": np.array(len(probabilities)),
            }
        )
        counts = totals["pairs"] + self.prior
        self.transitions_ = counts / counts.sum(axis=1, keepdims=True)
        self.initial_ = totals["sums"] / totals["count"]
        predicted = self._predict(probabilities, before, backward)
        return Update(
            forward=predicted,
            backward=[predicted],
            files={"trans_prob_learn.txt": self.transitions_, self.model_file: self.state()},
            rows={"msg_learn.txt": predicted},
            metrics={"transition_entropy": _mean_entropy(self.transitions_)},
        )

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """P(class | predecessor) over a novel sequence with the learned transitions."""
        if self.transitions_ is None:
            raise ValueError("recognition needs a learned model: update the Markov model first")
        probabilities = _class_probabilities(inputs[0])
        predicted = self._predict(probabilities, _predecessor(probabilities, ctx), backward)
        return Update(forward=predicted, backward=[predicted], rows={"msg_recog.txt": predicted})

    def _predict(
        self, probabilities: np.ndarray, before: np.ndarray | None, above: np.ndarray | None
    ) -> np.ndarray:
        """Row n: sum_i P(c_{n-1} = i) P(c_n | i), times the message from above if any,
        normalised; the sequence's first row: the overall class frequencies (a later
        shard's first row follows the shard before's last)."""
        assert self.transitions_ is not None and self.initial_ is not None
        predicted = np.empty_like(probabilities)
        predicted[0] = self.initial_ if before is None else before @ self.transitions_
        predicted[1:] = probabilities[:-1] @ self.transitions_
        if above is not None:
            predicted = predicted * _class_probabilities(above)
            predicted /= np.maximum(predicted.sum(axis=1, keepdims=True), 1e-300)
        return predicted.astype(np.float32)

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        learned, classes = np.shape(state["transitions"]), input_shapes[0][1]
        if learned != (classes, classes):
            raise ValueError(f"it has {learned[0]} classes; its input has {classes}")

    def state(self) -> dict[str, np.ndarray]:
        if self.transitions_ is None or self.initial_ is None:
            return {}
        return {"transitions": self.transitions_, "initial": self.initial_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.transitions_ = np.array(state["transitions"]) if state else None
        self.initial_ = np.array(state["initial"]) if state else None


def _predecessor(probabilities: np.ndarray, ctx: UpdateContext) -> np.ndarray | None:
    """The class probabilities of the element before this shard's first: the last row
    of the shard before (each shard's last row gathered through a sum of zero-padded
    slots); None for the sequence's first element."""
    if not ctx.sharded:
        return None
    last = np.zeros((ctx.shard.count, probabilities.shape[1]))
    last[ctx.shard.index] = probabilities[-1]
    gathered = ctx.allreduce({"last": last})["last"]
    return None if ctx.shard.index == 0 else gathered[ctx.shard.index - 1]


def _class_probabilities(message: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(message, dtype=np.float64)
    if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1, atol=1e-3):
        raise ValueError("its input must be class probabilities: rows >= 0 that sum to 1")
    return probabilities


def _mean_entropy(transitions: np.ndarray) -> float:
    """Mean entropy (nats) of the rows: low when each class has a clear successor."""
    return float(-(transitions * np.log(transitions)).sum(axis=1).mean())
