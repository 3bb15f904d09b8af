"""Serket's multimodal LDA module: classifies elements from several modalities jointly.

Each element is a document whose words come from every connected input: count histograms
from an observation (bag of features) or class probabilities from a module below (a GMM's
P(class | z), read as pseudo-counts). All modalities share the element's class mixture
theta; each class has its own word distribution per modality. The module sends each
connected module back P(its class | element) = theta @ phi_m, its view of the element.

A module above (a Markov model) sends back P(class) per element; as in Serket, where it
multiplies every word's class probability when sampling, it multiplies the class mixture
in every word's responsibility here.

Fitted by batch variational EM (Blei et al. 2003; the updates of scikit-learn's
LatentDirichletAllocation), written here because scikit-learn's LDA has one vocabulary per
topic: multimodal LDA normalises each modality's word distribution on its own and weighs
the modalities. The counts are kept sparse (scipy), so an update costs in proportion to
the non-zero counts, not to elements x vocabulary: HAC histograms of 2,400 bins hold
about 5 % non-zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.special import psi

from actors import labels
from runtime import Module, ModuleError, Resources, Update, UpdateContext

WORDS_PER_ELEMENT = 100.0  # the default weight of every modality
_E_STEPS = 20  # theta updates per EM iteration at most, warm-started from the last
_E_TOL = 1e-3  # an element's mean change of gamma below which it has converged (scikit-learn's)


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
    mode, load_dir: Serket's recognition mode: with load_dir a learned MLDA's folder,
    every update infers the connected data's class mixtures with its word distributions
    and learns nothing (files ``*_recog.txt``).
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
        mode: str | None = None,
        load_dir: str | None = None,
    ) -> None:
        super().__init__(name, shards=shards, mode=mode, load_dir=load_dir)
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
        bias = self._bias(backward, weighted[0].shape[0])
        if self.topics_ is None:  # random start as scikit-learn's LDA; kept across rounds
            rng = np.random.default_rng(self.seed)
            self.topics_ = [rng.gamma(100.0, 0.01, (self.K, c.shape[1])) for c in weighted]
        gamma = np.ones((weighted[0].shape[0], self.K))
        for _ in range(self.itr):
            gamma, sufficient = self._e_step(weighted, gamma, bias)
            summed = ctx.allreduce({str(m): counts for m, counts in enumerate(sufficient)})
            self.topics_ = [self.beta + summed[str(m)] for m in range(len(sufficient))]
        own = labels.own_labels(self.category, len(gamma), ctx)
        down = self._messages_down(weighted, bias, ctx)
        return self._result(gamma, down, own, "learn", ctx, {self.model_file: self.state()})

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """Class mixtures of novel elements with the learned word distributions."""
        if self.topics_ is None:
            raise ValueError("recognition needs a learned model: update the MLDA first")
        weighted = self._words(inputs)
        bias = self._bias(backward, weighted[0].shape[0])
        gamma = np.ones((weighted[0].shape[0], self.K))
        for _ in range(self.itr):
            gamma, _ = self._e_step(weighted, gamma, bias)
        category = labels.recognition_labels(self.category, self.recognizing, len(gamma), ctx)
        down = self._messages_down(weighted, bias, ctx)
        return self._result(gamma, down, category, "recog", ctx)

    def _words(self, inputs: Sequence[np.ndarray]) -> list[sparse.csr_array]:
        """Each element's counts per modality, normalised and scaled to weights[m] words,
        as a sparse (N, V_m) array."""
        weights = self.weights or [WORDS_PER_ELEMENT] * len(inputs)
        words = []
        for position, (values, weight) in enumerate(zip(inputs, weights, strict=True)):
            counts = sparse.csr_array(np.asarray(values, dtype=np.float64))
            if (counts.data < 0).any():
                raise ValueError(f"input {position} holds negative values; MLDA reads counts")
            totals = np.asarray(counts.sum(axis=1)).ravel()
            scale = weight / np.where(totals > 0, totals, 1.0)
            words.append(sparse.csr_array(sparse.diags_array(scale) @ counts))
        return words

    def _bias(self, backward: np.ndarray | None, n: int) -> np.ndarray | None:
        """The message from above as a per-element class weight, (N, K); None without one."""
        if backward is None:
            return None
        bias = np.asarray(backward, dtype=np.float64)
        if bias.shape != (n, self.K) or (bias < 0).any() or not np.isfinite(bias).all():
            raise ValueError(
                f"the message from above must be class probabilities of shape {(n, self.K)}, "
                f"got {bias.shape}"
            )
        return bias / np.maximum(bias.sum(axis=1, keepdims=True), 1e-300)

    def _e_step(
        self,
        weighted: list[sparse.csr_array],
        gamma: np.ndarray,
        bias: np.ndarray | None,
        topics: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Variational class mixtures (N, K) and each modality's expected counts (K, V_m).

        Only the non-zero counts enter: the theta-weighted word probability of element d
        and word w, sum_k theta_dk phi_kw, is computed at those (d, w) alone. topics: the
        modalities' word distributions (default: all the learned ones)."""
        topics = self.topics_ if topics is None else topics
        assert topics is not None
        exp_log_phi = [np.exp(psi(t) - psi(t.sum(axis=1, keepdims=True))) for t in topics]
        # Per modality: each stored count's row repeats and its word's probabilities, (nnz, K)
        repeats = [np.diff(c.indptr) for c in weighted]
        phi_at = [p.T[c.indices] for c, p in zip(weighted, exp_log_phi, strict=True)]
        active = np.ones(len(gamma), dtype=bool)
        for _ in range(_E_STEPS):
            exp_log_theta = np.exp(psi(gamma) - psi(gamma.sum(axis=1, keepdims=True)))  # (N, K)
            if bias is not None:  # each word's class weighted by the message from above
                exp_log_theta = exp_log_theta * bias
            # ratio_m = counts / (theta-weighted word probabilities), sparse (N, V_m)
            ratios = [
                _with_values(c, c.data / (_dots(exp_log_theta, at, rep) + 1e-100))
                for c, at, rep in zip(weighted, phi_at, repeats, strict=True)
            ]
            updated = self.alpha + exp_log_theta * sum(
                r @ p.T for r, p in zip(ratios, exp_log_phi, strict=True)
            )
            # An element that has converged keeps its gamma (scikit-learn's per-document
            # test): each element's steps then do not depend on the others, nor on shards.
            change = np.abs(updated - gamma).mean(axis=1)
            gamma = np.where(active[:, None], updated, gamma)
            active &= change >= _E_TOL
            if not active.any():
                break
        sufficient = [p * (r.T @ exp_log_theta).T for r, p in zip(ratios, exp_log_phi, strict=True)]
        return gamma, sufficient

    def _messages_down(
        self, weighted: list[sparse.csr_array], bias: np.ndarray | None, ctx: UpdateContext
    ) -> list[np.ndarray | None]:
        """To each connected module, P(its class | element) as the other inputs (and the
        message from above) see it: theta inferred without that module's own words, times
        its word distribution. Belief propagation's extrinsic message: with the module's
        own words in theta, the message echoes what the module sent, and the module and
        the MLDA lock each other in (measured: a GMM fed the full view stayed at 0.70
        over rounds, fed this one it rose to 0.88; docs/quality.md). Observations take
        no message: none is computed for them."""
        assert self.topics_ is not None
        n, messages = weighted[0].shape[0], []
        for m, phi in enumerate(self.topics_):
            if ctx.backward_taken and not ctx.backward_taken[m]:
                messages.append(None)
                continue
            others = [i for i in range(len(weighted)) if i != m]
            if others:
                gamma, _ = self._e_step(
                    [weighted[i] for i in others], np.ones((n, self.K)), bias,
                    [self.topics_[i] for i in others],
                )  # fmt: skip
                theta = gamma / gamma.sum(axis=1, keepdims=True)
            else:  # nothing else to go by: the message from above, or no preference
                theta = np.full((n, self.K), 1 / self.K) if bias is None else bias
            messages.append((theta @ (phi / phi.sum(axis=1, keepdims=True))).astype(np.float32))
        return messages

    def _result(
        self,
        gamma: np.ndarray,
        down: list[np.ndarray | None],
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
        generated = [(theta @ phi).astype(np.float32) for phi in phis]  # P(word | element)
        metrics: dict[str, float] = {}
        if category is not None:
            if len(category) != len(classes):
                raise ValueError(f"category has {len(category)} labels for {len(classes)} elements")
            metrics = labels.scores(np.asarray(category), classes, self.K, ctx)
            files[f"acc_{mode}.txt"] = metrics["acc"]
        return Update(
            forward=theta.astype(np.float32),
            backward=down,
            files=files,
            metrics=metrics,
            rows={
                f"categories_{mode}.txt": classes,
                f"Pdz_{mode}.txt": theta,
                **{f"Pmdw[{m}]_{mode}.npy": words for m, words in enumerate(generated)},
            },
        )

    def state(self) -> dict[str, np.ndarray]:
        if self.topics_ is None:
            return {}
        return {f"topics{m}": t for m, t in enumerate(self.topics_)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.topics_ = [np.array(state[f"topics{m}"]) for m in range(len(state))] or None

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        learned = [np.shape(state[f"topics{m}"]) for m in range(len(state))]
        wanted = [(self.K, shape[1]) for shape in input_shapes]
        if learned != wanted:
            raise ValueError(
                f"it has (classes, words) {learned} per modality; this MLDA has K={self.K} "
                f"and its inputs need {wanted}"
            )


def _dots(theta: np.ndarray, phi_at: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """sum_k theta[d, k] phi[k, w] at each stored (d, w), in CSR order: (nnz,). The rows
    of CSR storage come in order, so theta's rows are repeated, not gathered."""
    return np.einsum("ik,ik->i", np.repeat(theta, repeats, axis=0), phi_at)


def _with_values(counts: sparse.csr_array, values: np.ndarray) -> sparse.csr_array:
    """A CSR array of `counts`' pattern holding `values`."""
    return sparse.csr_array((values, counts.indices, counts.indptr), shape=counts.shape)
