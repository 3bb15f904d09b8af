"""Serket's GMM module: classifies the latent variables of the module below.

Forward message: P(class | z) per element (N x K). Backward message: the mean of each
element's class (N x d), which the VAE uses as its prior mean; with message="gaussian",
the mean and then the diagonal of the class's covariance (N x 2d), the VAE's prior
N(mean, diag var) of Inter-GMM+VAE. A per-element class prior
from a module above (N x K) takes the place of the mixing weights in the classification
(`mixture.e_step`); without one the learned weights serve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from actors import labels, mixture, mixture_gibbs, naming_player
from runtime import Module, ModuleError, Resources, Update, UpdateContext, data_files

ALGORITHMS = ("gibbs", "em")
MESSAGES = ("mean", "gaussian")  # what the backward message carries of each element's class
DEFAULT_ITERATIONS = {"gibbs": 50, "em": 100}  # itr when not given, per algorithm


class GMM(Module):
    """Gaussian mixture over K classes, fitted by EM or by Gibbs sampling.

    algorithm: "gibbs" (Bayesian: a Gauss-Wishart prior per class, as the original Serket
    GMM, sampled by blocked Gibbs; see `mixture_gibbs`) or "em" (maximum likelihood).
    Gibbs is the default: coupled with the VAE it classified the tutorial digits better
    on every seed measured (README, `make bench-quality`).
    Each update runs from `n_init` k-means++ starts and, after the first round, from the
    previous round's solution too, and keeps the fit of highest likelihood (after a
    naming game, renumbered to the signs its elements hold: `mixture.renamed`). itr: Gibbs
    sweeps (default 50, where the original samples 100: coupled with the VAE, 50 sweeps
    classified as well in half the time; README), or EM iterations at most (default 100).
    category: true labels, used only to score (accuracy, NMI, ARI), never to learn: an
    array, or a folder or glob of `.npy` label files (each shard reads its own rows).
    num_threads: how many fits (chains) run at once, each on one BLAS thread; the actor
    reserves that many CPUs. Each chain has its own seed, so the fits do not depend on
    it. More BLAS threads in one chain only contend at tutorial sizes (measured: 0.5 s vs
    2.6 s per update on 2 cores); parallel chains pay off from tens of thousands of
    elements (README, bench-gmm).
    shards: actors the elements are split over. Each computes its elements' share of
    every class's count, sum and scatter; the shards sum them (all-reduce) and all hold
    the same parameters; each classifies its own elements. Sharded EM gives unsharded
    EM's result (to rounding); sharded Gibbs samples the same posterior.
    message: the backward message, "mean" (Serket's: the class mean, the VAE's prior
    N(mean, I)) or "gaussian" (the class mean and covariance diagonal, its prior
    N(mean, diag var)); README, "Classification quality", measures both.
    mode, load_dir: Serket's recognition mode: with load_dir a learned GMM's folder,
    every update classifies the connected data with that mixture and learns nothing
    (files ``*_recog.txt``; `category` scores it).
    """

    kind = "gmm"
    resources = Resources(num_cpus=1)
    supports_shards = True

    def __init__(
        self,
        K: int,
        itr: int | None = None,
        algorithm: str = "gibbs",
        category: Sequence[int] | np.ndarray | str | None = None,
        n_init: int = 3,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        seed: int = 0,
        num_threads: int = 1,
        message: str = "mean",
        shards: int = 1,
        name: str | None = None,
        mode: str | None = None,
        load_dir: str | None = None,
    ) -> None:
        super().__init__(
            name, resources=Resources(num_cpus=num_threads), shards=shards, mode=mode,
            load_dir=load_dir,
        )  # fmt: skip
        if algorithm not in ALGORITHMS:
            raise ModuleError(
                self.full_name, f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}"
            )
        if message not in MESSAGES:
            raise ModuleError(self.full_name, f"message must be one of {MESSAGES}, got {message!r}")
        self.K = K
        self.message = message
        self.itr = DEFAULT_ITERATIONS[algorithm] if itr is None else itr
        self.algorithm = algorithm
        self.category = category
        self.n_init = n_init
        self.tol = tol
        self.reg_covar = reg_covar
        self.seed = seed
        self.num_threads = num_threads
        self.require_positive_integers(K=K, itr=self.itr, n_init=n_init, num_threads=num_threads)
        if category is not None and data_files.is_in_memory(category) and np.ndim(category) != 1:
            raise ModuleError(
                self.full_name, f"category must be 1-D labels, got shape {np.shape(category)}"
            )
        self.params_: mixture.MixtureParams | None = None
        self._player: naming_player.Player | None = None  # in a naming game (`actors.naming`)
        self.games_ = 0  # naming games settled: from the first, its classes are names
        self.signs_: np.ndarray | None = None  # its elements' names, from its last game

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        if len(input_shapes) != 1 or len(input_shapes[0]) != 2:
            raise ValueError(f"needs one input of shape (elements, dims), got {list(input_shapes)}")
        n = input_shapes[0][0]
        if n < self.K:
            raise ValueError(f"cannot split {n} elements into K={self.K} classes (need N >= K)")
        labels.checked_length(self.category, n)
        return (n, self.K)

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        with threadpool_limits(self.num_threads):
            return self._learn(inputs[0], backward, ctx)

    def _learn(
        self, latents: np.ndarray, backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        z = np.asarray(latents, dtype=np.float64)
        log_prior = None if backward is None else self._log_prior(backward, len(z))
        shard = ctx.shard if ctx.sharded else None
        starts = [
            mixture.kmeans_responsibilities(
                z, self.K, self.seed + 1000 * ctx.round + i, shard, ctx.allreduce
            )
            for i in range(self.n_init)
        ]
        if self.params_ is not None:
            starts.append(mixture.e_step(z, self.params_, log_prior, ctx.allreduce)[0])
        fits = self._fit_chains(z, starts, log_prior, ctx)
        best = max(fits, key=lambda f: f.log_likelihood)
        if self.games_ > 0:  # its classes are names shared in a naming game: kept
            best = mixture.renamed(best, self._held_names(starts[-1]), ctx.allreduce)
        self.params_ = best.params
        category = labels.own_labels(self.category, len(z), ctx)
        return self._result(
            best.responsibilities,
            category,
            "learn",
            {"log_likelihood": best.log_likelihood, "iterations": best.iterations},
            ctx,
            {self.model_file: self.state()},
        )

    def _held_names(self, warm_start: np.ndarray) -> np.ndarray:
        """The name each element holds: the sign it settled on in the last game (its z has
        moved since, so its last mixture's class may differ), or that class where the
        game did not see it (data grown since, a checkpoint from before signs were kept)."""
        if self.signs_ is not None and len(self.signs_) == len(warm_start):
            return self.signs_
        return warm_start.argmax(axis=1)

    def _fit_chains(
        self,
        z: np.ndarray,
        starts: list[np.ndarray],
        log_prior: np.ndarray | None,
        ctx: UpdateContext,
    ) -> list[mixture.MixtureFit]:
        """One fit per start, `num_threads` at a time: numpy releases the GIL in the
        products and element-wise passes that take a fit's time. Each chain draws from its
        own seed, so the fits are the same whatever the number of threads.

        With one thread (the default) they run in this thread: with a one-worker pool,
        one of four Ray runs of the tutorial ended on another GMM solution (cause not
        pinned: rounding that depends on where a thread's arrays land is the suspect);
        in this thread ten of ten repeated bit for bit. Sharded, the chains run one after
        another: the shards' collectives must come in the same order on every shard.
        """
        reduce = ctx.allreduce
        if self.algorithm == "em":

            def fit(chain: int, start: np.ndarray) -> mixture.MixtureFit:
                return mixture.fit(
                    z, start, log_prior, max_iter=self.itr, tol=self.tol,
                    reg_covar=self.reg_covar, reduce=reduce,
                )  # fmt: skip
        else:
            data = mixture_gibbs.GibbsData.of(z, reduce=reduce if ctx.sharded else None)

            def fit(chain: int, start: np.ndarray) -> mixture.MixtureFit:
                rng = np.random.default_rng([self.seed, ctx.round, chain])
                # Sharded: the parameters from `rng`, alike on every shard; each shard's
                # elements from a stream of its own.
                elements = (
                    np.random.default_rng([self.seed, ctx.round, chain, 1 + ctx.shard.index])
                    if ctx.sharded
                    else None
                )
                return mixture_gibbs.sample(
                    data, start, log_prior, sweeps=self.itr, rng=rng, reduce=reduce,
                    element_rng=elements,
                )  # fmt: skip

        workers = 1 if ctx.sharded else min(self.num_threads, len(starts))
        if workers == 1:  # in this thread: a Ray actor's runs then repeat bit for bit
            return [fit(chain, start) for chain, start in enumerate(starts)]
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fit, range(len(starts)), starts))

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """Classifies novel latent variables with the learned mixture (no EM)."""
        if self.params_ is None:
            raise ValueError("recognition needs a learned model: update the GMM first")
        z = np.asarray(inputs[0], dtype=np.float64)
        log_prior = None if backward is None else self._log_prior(backward, len(z))
        with threadpool_limits(self.num_threads):
            responsibilities, log_likelihood = mixture.e_step(
                z, self.params_, log_prior, ctx.allreduce
            )
        category = labels.recognition_labels(self.category, self.recognizing, len(z), ctx)
        return self._result(
            responsibilities, category, "recog", {"log_likelihood": log_likelihood}, ctx
        )

    def _result(
        self,
        responsibilities: np.ndarray,
        category: np.ndarray | Sequence[int] | None,
        mode: str,
        metrics: dict[str, float],
        ctx: UpdateContext,
        extra_files: Mapping[str, object] | None = None,
        classes: np.ndarray | None = None,
    ) -> Update:
        """Messages, files (``class_<mode>.txt``, ...) and scores of a classification:
        of `classes`, by default each element's most probable."""
        assert self.params_ is not None
        classes = responsibilities.argmax(axis=1) if classes is None else classes
        class_means = self.params_.means[classes].astype(np.float32)  # (N, d)
        files: dict[str, object] = dict(extra_files or {})
        if category is not None:
            if len(category) != len(classes):
                raise ValueError(f"category has {len(category)} labels for {len(classes)} elements")
            scores = labels.scores(np.asarray(category), classes, self.K, ctx)
            files[f"acc_{mode}.txt"] = scores["acc"]
            metrics.update(scores)
        return Update(
            forward=responsibilities.astype(np.float32),
            backward=[self.prior_message(classes)],
            files=files,
            metrics=metrics,
            rows={
                f"class_{mode}.txt": classes,
                f"Pdz_{mode}.txt": responsibilities,
                f"mu_{mode}.txt": class_means,
            },
        )

    # ---- a naming game's peer (`actors.naming`, `runtime.peers`) --------------------
    def join(self, inputs: Sequence[np.ndarray], ctx: UpdateContext) -> None:
        """Play from the z of its last update and the mixture it learned from them."""
        if self.params_ is None:
            raise ValueError("a naming game needs a learned mixture: update the GMM first")
        z = np.asarray(inputs[0], dtype=np.float64)
        category = labels.own_labels(self.category, len(z), ctx)
        self._player = naming_player.Player.of(
            z, self.params_, category, [self.seed, ctx.round], named=self.games_ > 0
        )

    def answer(self, question: str, arrays: Mapping[str, np.ndarray]) -> dict[str, object]:
        if self._player is None:
            raise ValueError("asked before the naming game began")
        with threadpool_limits(self.num_threads):
            return self._player.answer(question, arrays)

    def settle(self, ctx: UpdateContext) -> Update:
        """The game's mixture becomes its own; the VAE's prior from the signs it adopted."""
        if self._player is None:
            raise ValueError("settled before the naming game began")
        player, self._player = self._player, None
        self.params_, self.signs_ = player.params, player.signs
        self.games_ += int(player.named)  # a game it only spoke in named nothing
        responsibilities, log_likelihood = mixture.e_step(player.z, player.params, None)
        per_iteration = {f"naming_{name}.txt": v for name, v in player.per_iteration().items()}
        return self._result(
            responsibilities, player.labels, "game", {"log_likelihood": log_likelihood}, ctx,
            {self.model_file: self.state(), **per_iteration}, classes=player.signs,
        )  # fmt: skip

    def prior_message(self, classes: np.ndarray) -> np.ndarray:
        """The backward message for elements of these classes: their class means (N, d),
        or means and covariance diagonals (N, 2d) (`message`)."""
        assert self.params_ is not None
        means = self.params_.means[classes]
        if self.message == "mean":
            return means.astype(np.float32)
        variances = np.diagonal(self.params_.covariances, axis1=1, axis2=2)[classes]
        return np.concatenate([means, variances], axis=1).astype(np.float32)

    def _log_prior(self, prior: np.ndarray, n: int) -> np.ndarray:
        if prior.shape != (n, self.K):
            raise ValueError(
                f"class prior from above must have shape {(n, self.K)}, got {prior.shape}"
            )
        if not np.isfinite(prior).all() or (prior < 0).any() or (prior.sum(axis=1) <= 0).any():
            raise ValueError(
                "class prior from above must be finite, >= 0, with a positive sum per element"
            )
        return np.log(np.maximum(prior.astype(np.float64), 1e-300))  # float32 has no 1e-300

    def state(self) -> dict[str, np.ndarray]:
        if self.params_ is None:
            return {}
        return {
            "weights": self.params_.weights,
            "means": self.params_.means,
            "covariances": self.params_.covariances,
            "games": np.array(self.games_),
            **({"signs": self.signs_} if self.signs_ is not None else {}),
        }

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        learned, dims = np.shape(state["means"]), input_shapes[0][1]
        if learned != (self.K, dims):
            raise ValueError(
                f"it has {learned[0]} classes of {learned[1]} dimensions; this GMM has K="
                f"{self.K} and its input {dims} dimensions"
            )

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.params_ = mixture.MixtureParams(
            np.array(state["weights"]), np.array(state["means"]), np.array(state["covariances"])
        ) if state else None  # fmt: skip
        self.games_ = int(state.get("games", 0)) if state else 0
        self.signs_ = np.array(state["signs"]) if state and "signs" in state else None
