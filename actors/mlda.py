"""Serket's multimodal LDA module: classifies elements from several modalities jointly.

Each element is a document whose words come from every connected input: count histograms
from an observation (bag of features) or class probabilities from a module below (a GMM's
P(class | z), read as pseudo-counts). All modalities share the element's class mixture
theta; each class has its own word distribution per modality. The module sends each
connected module back P(its class | element) = theta @ phi_m, its view of the element.

Fitted by batch variational EM (Blei et al. 2003; the updates of scikit-learn's
LatentDirichletAllocation), written here because scikit-learn's LDA has one vocabulary per
topic: multimodal LDA normalises each modality's word distribution on its own and weighs
the modalities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import psi

from actors import labels
from runtime import Module, ModuleError, Resources, Update, UpdateContext

WORDS_PER_ELEMENT = 100.0  # the default weight of every modality
_E_STEPS = 20  # theta updates per EM iteration, warm-started from the last


class MLDA(Module):
    """Multimodal LDA with K classes over one or more connected inputs.

    weights: one per connected input: the number of words each element has in that
    modality. As in Serket, each element's counts are normalised, then multiplied by the
    weight, so a modality counts by its weight, not by its raw totals; a module's class
    probabilities (summing to 1) become weight pseudo-words. Default: 100 for each.
    alpha, beta: Dirichlet priors of the class mixtures and of the word distributions.
    category: true labels, used only to score (accuracy, NMI, ARI), never to learn: an
    array, or a folder or glob of `.npy` label files.
    shards: actors the elements are split over. Each infers its own elements' class
    mixtures; the expected word counts are summed over the shards (all-reduce), so every
    shard holds the same word distributions, those of an unsharded run.
    """

    kind = "mlda"
    # Light work at tutorial sizes that runs between the heavy updates: it reserves no
    # CPU (as Ray's actors do by default), so it fits beside a VAE and a GMM on 2 cores.
    resources = Resources(num_cpus=0)
    supports_shards = True

    def __init__(
        self,
        K: int,
        weights: Sequence[float] | None = None,
        itr: int = 100,
        alpha: float = 1.0,
        beta: float = 0.1,
        category: labels.Labels | None = None,
        seed: int = 0,
        shards: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(name, shards=shards)
        self.K = K
        self.weights = weights
        self.itr = itr
        self.alpha = alpha
        self.beta = beta
        self.category = category
        self.seed = seed
        self.require_positive_integers(K=K, itr=itr)
        for field, value in (("alpha", alpha), ("beta", beta)):
            if not np.isfinite(value) or value <= 0:
                raise ModuleError(self.full_name, f"{field} must be positive, got {value!r}")
        if weights is not None and (
            np.ndim(weights) != 1 or not np.all(np.isfinite(weights)) or np.any(np.less(weights, 0))
        ):
            raise ModuleError(
                self.full_name, f"weights must be a list of numbers >= 0, got {weights!r}"
            )
        self.topics_: list[np.ndarray] | None = None  # per modality (K, V_m): lambda

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        if any(len(shape) != 2 for shape in input_shapes):
            raise ValueError(f"every input must be (elements, features), got {list(input_shapes)}")
        rows = {shape[0] for shape in input_shapes}
        if len(rows) != 1:
            raise ValueError(f"inputs must describe the same elements, got {list(input_shapes)}")
        if self.weights is not None and len(self.weights) != len(input_shapes):
            raise ValueError(
                f"has {len(self.weights)} weights for {len(input_shapes)} connected inputs"
            )
        n = input_shapes[0][0]
        labels.checked_length(self.category, n)
        return (n, self.K)

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        weighted = self._words(inputs)
        if self.topics_ is None:  # random start as scikit-learn's LDA; kept across rounds
            rng = np.random.default_rng(self.seed)
            self.topics_ = [rng.gamma(100.0, 0.01, (self.K, c.shape[1])) for c in weighted]
        gamma = np.ones((len(weighted[0]), self.K))
        for _ in range(self.itr):
            gamma, sufficient = self._e_step(weighted, gamma)
            summed = ctx.allreduce({str(m): counts for m, counts in enumerate(sufficient)})
            self.topics_ = [self.beta + summed[str(m)] for m in range(len(sufficient))]
        own = labels.own_labels(self.category, len(gamma), ctx)
        return self._result(gamma, own, "learn", ctx, {"mlda_params.npz": self.state()})

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """Class mixtures of novel elements with the learned word distributions."""
        if self.topics_ is None:
            raise ValueError("recognition needs a learned model: update the MLDA first")
        weighted = self._words(inputs)
        gamma = np.ones((len(weighted[0]), self.K))
        for _ in range(self.itr):
            gamma, _ = self._e_step(weighted, gamma)
        return self._result(gamma, ctx.category, "recog", ctx)

    def _words(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each element's counts per modality, normalised and scaled to weights[m] words."""
        weights = self.weights or [WORDS_PER_ELEMENT] * len(inputs)
        words = []
        for position, (values, weight) in enumerate(zip(inputs, weights, strict=True)):
            counts = np.asarray(values, dtype=np.float64)
            if (counts < 0).any():
                raise ValueError(f"input {position} holds negative values; MLDA reads counts")
            totals = counts.sum(axis=1, keepdims=True)
            words.append(weight * counts / np.where(totals > 0, totals, 1.0))
        return words

    def _e_step(
        self, weighted: list[np.ndarray], gamma: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Variational class mixtures (N, K) and each modality's expected counts (K, V_m)."""
        assert self.topics_ is not None
        exp_log_phi = [np.exp(psi(t) - psi(t.sum(axis=1, keepdims=True))) for t in self.topics_]
        for _ in range(_E_STEPS):
            exp_log_theta = np.exp(psi(gamma) - psi(gamma.sum(axis=1, keepdims=True)))  # (N, K)
            # ratio_m = counts / (theta-weighted word probabilities), (N, V_m) per modality
            ratios = [
                c / (exp_log_theta @ p + 1e-100) for c, p in zip(weighted, exp_log_phi, strict=True)
            ]
            gamma = self.alpha + exp_log_theta * sum(
                r @ p.T for r, p in zip(ratios, exp_log_phi, strict=True)
            )
        sufficient = [p * (exp_log_theta.T @ r) for r, p in zip(ratios, exp_log_phi, strict=True)]
        return gamma, sufficient

    def _result(
        self,
        gamma: np.ndarray,
        category: np.ndarray | Sequence[int] | None,
        mode: str,
        ctx: UpdateContext,
        extra_files: Mapping[str, object] | None = None,
    ) -> Update:
        assert self.topics_ is not None
        theta = gamma / gamma.sum(axis=1, keepdims=True)  # (N, K)
        phis = [t / t.sum(axis=1, keepdims=True) for t in self.topics_]
        classes = theta.argmax(axis=1)
        files: dict[str, object] = {f"phi{m}_{mode}.txt": phi for m, phi in enumerate(phis)}
        files.update(extra_files or {})
        metrics: dict[str, float] = {}
        if category is not None:
            if len(category) != len(classes):
                raise ValueError(f"category has {len(category)} labels for {len(classes)} elements")
            metrics = labels.scores(np.asarray(category), classes, self.K, ctx)
            files[f"acc_{mode}.txt"] = metrics["acc"]
        return Update(
            forward=theta.astype(np.float32),
            backward=[(theta @ phi).astype(np.float32) for phi in phis],
            files=files,
            metrics=metrics,
            rows={f"class_{mode}.txt": classes, f"Pdz_{mode}.txt": theta},
        )

    def state(self) -> dict[str, np.ndarray]:
        if self.topics_ is None:
            return {}
        return {f"topics{m}": t for m, t in enumerate(self.topics_)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.topics_ = [np.array(state[f"topics{m}"]) for m in range(len(state))] or None
