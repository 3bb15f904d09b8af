"""One agent's side of the Metropolis-Hastings naming game: its classifier's answers.

The agent keeps its latent variables z and its mixture here, on its own node; what it
says (a sign per element) and what it answers (how many signs it adopted, its scores)
are all that leave it. Taniguchi et al. 2023 (Inter-GMM+VAE), per element n:

* speak: a sign drawn from the agent's posterior P(class | z_n, its mixture);
* listen: the speaker's sign s adopted over the agent's own sign c with probability
  min(1, N(z_n | mu_s, Sigma_s) / N(z_n | mu_c, Sigma_c)) (the MH ratio of the agent's own
  class densities), then the mixture re-estimated from z and the signs now held.

An agent's first game begins from classes it formed alone, whose numbering is its own:
no other agent's 3 is its 3. MH alone cannot renumber them (a sign of another numbering
is improbable under every class but one, and rejected), so, measured, agents that met
with their own numberings stayed at kappa near 0. So an agent that has never played
takes the first signs it hears (it has no names yet to weigh them against, as the
random initial signs of Inter-GMM+VAE's agents have none), and the MH rule decides from
then on.

The re-estimate is the Gauss-Wishart posterior mean given those signs (the weak prior of
the agent's Gibbs GMM, `mixture_gibbs`), which keeps a class no element holds finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from actors import mixture, mixture_gibbs
from runtime.metrics import classification_scores

MODES = ("mh", "none", "all")  # the game, no communication, every sign accepted


def acceptance(
    log_density: np.ndarray, own: np.ndarray, proposed: np.ndarray, uniform: np.ndarray, mode: str
) -> np.ndarray:
    """Which proposed signs a listener adopts, per element (bool).

    log_density: the listener's log N(z_n | class k) (N, K); own, proposed: its signs and
    the speaker's (N,); uniform: one draw in [0, 1) per element. "mh": u < min(1, ratio);
    "all": every sign; "none": none.
    """
    if mode == "all":
        return np.ones(len(own), dtype=bool)
    if mode == "none":
        return np.zeros(len(own), dtype=bool)
    rows = np.arange(len(own))
    log_ratio = log_density[rows, proposed] - log_density[rows, own]
    return uniform < np.exp(np.minimum(log_ratio, 0.0))


@dataclass(frozen=True)
class Listening:
    """One sign array an agent heard: the game's iteration, signs adopted and offered,
    and its scores of the signs it held afterwards."""

    iteration: int
    adopted: int
    offered: int
    scores: dict[str, float]


@dataclass
class Player:
    """An agent in one game: z (N, d), its mixture, the signs it holds (N,)."""

    z: np.ndarray
    params: mixture.MixtureParams
    signs: np.ndarray
    data: mixture_gibbs.GibbsData  # z's statistics and the prior of the re-estimates
    labels: np.ndarray | None  # only to score the signs it holds
    seed: list[int]  # its seed and round: every draw of the game repeats on a re-run
    named: bool = True  # whether its signs are names (heard in a game) or its own classes
    heard: list[Listening] = field(default_factory=list)  # its listenings, in order
    kappa: np.ndarray | None = None  # per iteration, between the agents (the game's)

    @classmethod
    def of(
        cls, z: np.ndarray, params: mixture.MixtureParams, labels: np.ndarray | None,
        seed: list[int], named: bool = True,
    ) -> Player:  # fmt: skip
        """An agent that starts holding its most probable class for each element; named:
        whether it has played before (else its first listening adopts every sign)."""
        responsibilities, _ = mixture.e_step(z, params, None)
        signs = responsibilities.argmax(axis=1)
        return cls(z, params, signs, mixture_gibbs.GibbsData.of(z), labels, seed, named)

    def answer(self, question: str, arrays: Mapping[str, Any]) -> dict[str, Any]:
        if question == "speak":
            return {"signs": self.speak(int(arrays["iteration"]))}
        if question == "listen":
            signs = np.asarray(arrays["signs"])
            iteration = int(arrays["iteration"])
            accepted = self.listen(signs, iteration, str(arrays["mode"]))
            scores = self.scores()
            self.heard.append(Listening(iteration, accepted, len(signs), scores))
            return {"accepted": accepted, **scores}
        if question == "signs":
            return {"signs": self.signs.astype(np.int32), **self.scores()}
        if question == "kappa":
            self.kappa = np.asarray(arrays["kappa"], dtype=np.float64)
            return {}
        raise ValueError(
            f"the naming game asks 'speak', 'listen', 'signs' or 'kappa', not {question!r}"
        )

    def speak(self, iteration: int) -> np.ndarray:
        """A sign per element, drawn from P(class | z, mixture) (int32)."""
        responsibilities, _ = mixture.e_step(self.z, self.params, None)
        rng = np.random.default_rng([*self.seed, iteration, 1])
        cumulative = np.cumsum(responsibilities, axis=1)
        uniform = rng.random(len(self.z))[:, None] * cumulative[:, -1:]
        signs = np.minimum((cumulative < uniform).sum(axis=1), len(self.params.means) - 1)
        return signs.astype(np.int32)

    def listen(self, proposed: np.ndarray, iteration: int, mode: str) -> int:
        """Adopt signs by `acceptance`, re-estimate the mixture; returns how many."""
        k = len(self.params.means)
        if proposed.shape != self.signs.shape or proposed.min() < 0 or proposed.max() >= k:
            raise ValueError(f"signs must be {len(self.signs)} classes in 0..{k - 1}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        log_density = mixture.log_gaussian(self.z, self.params.means, self.params.covariances)
        uniform = np.random.default_rng([*self.seed, iteration, 2]).random(len(self.z))
        adopted = acceptance(
            log_density, self.signs, proposed, uniform, mode if self.named else "all"
        )
        self.named = True
        self.signs = np.where(adopted, proposed, self.signs)
        self.params = self.reestimated()
        return int(adopted.sum())

    def reestimated(self) -> mixture.MixtureParams:
        """The mixture given z and the signs held: the posterior mean of each class."""
        k = len(self.params.means)
        stats = mixture_gibbs.class_statistics(self.data.features, self.signs, k)
        centred = mixture_gibbs.posterior_mean(
            mixture_gibbs.posterior(stats, self.data.prior), self.data.prior
        )
        return replace(centred, means=centred.means + self.data.origin)

    def per_iteration(self) -> dict[str, np.ndarray]:
        """Its game per MH iteration it listened in, for its own folder: acceptance (the
        share of the signs offered to it that it adopted), its scores of the signs it
        held after its last listening of the iteration, and kappa, if the game said it."""
        rows: dict[int, list[Listening]] = {}
        for listening in self.heard:
            rows.setdefault(listening.iteration, []).append(listening)
        if not rows:
            return {}
        table = {
            "acceptance": np.array(
                [sum(h.adopted for h in row) / sum(h.offered for h in row) for row in rows.values()]
            ),
            **{name: np.array([row[-1].scores[name] for row in rows.values()])
               for name in self.heard[-1].scores},
        }  # fmt: skip
        if self.kappa is not None:
            table["kappa"] = self.kappa[list(rows)]
        return table

    def scores(self) -> dict[str, float]:
        """Accuracy, NMI and ARI of the signs held (none without labels)."""
        if self.labels is None:
            return {}
        return classification_scores(self.labels, self.signs)
