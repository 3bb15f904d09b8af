"""The Metropolis-Hastings naming game: agents come to share signs (Inter-GMM+VAE).

Each agent is a model of its own (a VAE and a GMM, say, on its own node, seeing its own
view of the data); the game connects their classifiers as peers (`runtime.peers`):

    game = naming.NamingGame(iterations=100, mode="mh")
    game.connect(gmm_a, gmm_b)          # or more agents
    for round_ in ...: vae_a.update(); gmm_a.update(); vae_b.update(); gmm_b.update(); game.update()

Every iteration, for each (speaker, listener) pair: the speaker draws a sign per element
from its posterior, the listener adopts each by the MH rule and re-estimates its mixture
(`actors.naming_player`). After the game each classifier settles on the signs it holds:
its VAE's next update learns with the prior of that sign's class (the mutual-learning
phase). Only signs (N int32) and counts cross between the agents.

Modes: "mh" (the game), "none" (no communication: each agent keeps its own signs),
"all" (every sign accepted). Topology, from three agents: "ring" (agent i speaks to
i + 1) or "all-pairs" (every agent to every other); with two both are A->B, B->A.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, permutations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from actors.naming_player import MODES
from runtime import Module, ModuleError, Resources, Update, UpdateContext
from runtime.peers import PeerCalls

TOPOLOGIES = ("ring", "all-pairs")
SCORES = ("acc", "ari")  # per agent and iteration, in the game's files


def speaker_listener_pairs(agents: int, topology: str) -> list[tuple[int, int]]:
    """Who speaks to whom in one iteration, in order."""
    if topology == "all-pairs" or agents == 2:
        return list(permutations(range(agents), 2))
    return [(i, (i + 1) % agents) for i in range(agents)]


def mean_kappa(signs: np.ndarray) -> tuple[float, dict[str, float]]:
    """Cohen's kappa between the agents' signs (columns of (N, A)): the mean over pairs,
    and each pair's as "kappa_<i>_<j>" (agents numbered from 0)."""
    pairs = {
        f"kappa_{i}_{j}": float(cohen_kappa_score(signs[:, i], signs[:, j]))
        for i, j in combinations(range(signs.shape[1]), 2)
    }
    return float(np.mean(list(pairs.values()))), pairs


class NamingGame(Module):
    """The game between two or more classifiers; see the module docstring.

    iterations: MH iterations per game. 100 by default: on the tutorial digits (seeds
    0-2), games of 20 left the agents' signs at kappa 0.69-0.87 from the second round
    on, of 50 one seed at 0.73, of 100 every seed at 0.98 or more (docs/naming.md).
    Forward message: the signs each agent holds after the game (N, agents), float32.
    Report metrics: kappa (mean over agent pairs), kappa_<i>_<j>, and per agent i (its
    classifier's name in `agents` of the files): acceptance_<i> (the share of signs it
    adopted as listener), acc_<i>, ari_<i> (of the signs it holds, if it has labels), and
    the bytes that crossed between the agents. Files: per iteration, acceptance.txt
    (iterations x agents), acc.txt, ari.txt and kappa.txt; each agent's classifier
    writes its own column of them in its folder (`GMM.settle`).
    """

    kind = "naming"
    resources = Resources(num_cpus=0)  # it only routes signs: no core of its own

    def __init__(
        self,
        iterations: int = 100,
        mode: str = "mh",
        topology: str = "ring",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.require_positive_integers(iterations=iterations)
        if mode not in MODES:
            raise ModuleError(self.full_name, f"mode must be one of {MODES}, got {mode!r}")
        if topology not in TOPOLOGIES:
            raise ModuleError(
                self.full_name, f"topology must be one of {TOPOLOGIES}, got {topology!r}"
            )
        self.iterations = iterations
        self.mode = mode  # under its own name, as every parameter (`Module.get_params`)
        self.topology = topology

    def connect(self, *classifiers: Module) -> None:  # type: ignore[override]
        """The agents' classifiers (each connected to its own model already)."""
        self.connect_peers(*classifiers)

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        elements = {shape[0] for shape in input_shapes}
        if len(elements) > 1 or any(len(shape) != 2 for shape in input_shapes):
            raise ValueError(
                f"the agents must classify the same elements, (N, K) each; got {input_shapes}"
            )
        return (elements.pop(), len(input_shapes))

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        peers = ctx.peers
        if peers is None:
            raise ValueError("a naming game runs only connected to its agents (connect())")
        agents = len(peers.names)
        pairs = speaker_listener_pairs(agents, self.topology)
        played = 0 if self.mode == "none" else self.iterations
        accepted = np.zeros((played, agents))  # signs adopted per iteration and listener
        listeners = [listener for _, listener in pairs]
        offered = np.maximum(np.bincount(listeners, minlength=agents) * ctx.shard.total, 1)
        scores = {score: np.full((played, agents), np.nan) for score in SCORES}
        kappas = np.zeros(played)
        held, finals = self._signs(peers, agents) if played == 0 else (None, [])
        progress = ctx.progress(played, "naming-game iterations")
        for iteration in range(played):
            for speaker, listener in pairs:
                signs = peers.ask(speaker, "speak", iteration=iteration)["signs"]
                reply = peers.ask(listener, "listen", signs=signs, iteration=iteration,
                                  mode=self.mode)  # fmt: skip
                accepted[iteration, listener] += reply["accepted"]
                for score in SCORES:
                    scores[score][iteration, listener] = reply.get(score, np.nan)
            held, finals = self._signs(peers, agents)  # the last iteration's are the game's
            kappas[iteration] = mean_kappa(held)[0]
            progress.update(1)
        progress.close()
        for i in range(agents) if played else ():  # for each agent's own files
            peers.ask(i, "kappa", kappa=kappas)
        assert held is not None
        kappa, pair_kappas = mean_kappa(held)
        rates = accepted / offered  # (iterations, agents)
        metrics = {"kappa": kappa, **pair_kappas, **peers.traffic()}
        for i in range(agents):
            metrics[f"acceptance_{i}"] = float(rates[:, i].mean()) if played else 0.0
            metrics.update({f"{s}_{i}": finals[i][s] for s in SCORES if s in finals[i]})
        return Update(
            forward=held.astype(np.float32),
            files={
                "agents.json": list(peers.names),
                "acceptance.txt": rates,
                "kappa.txt": kappas,
                **{f"{score}.txt": scores[score] for score in SCORES},
            },
            metrics=metrics,
        )

    @staticmethod
    def _signs(peers: PeerCalls, agents: int) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The signs each agent holds (N, agents) and its scores of them."""
        replies = [peers.ask(i, "signs") for i in range(agents)]
        held = np.stack([np.asarray(r.pop("signs")) for r in replies], axis=1)
        return held, [{k: float(v) for k, v in r.items()} for r in replies]
