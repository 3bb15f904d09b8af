"""Calls from one module to others it talks to (its peers), through their actors.

A module connected to peers rather than to inputs (`Module.connect_peers`: a naming
game and the agents' classifiers) receives no forward messages. Instead its update asks
its peers questions and reads their answers, each a small msgpack message of named
arrays. A peer answers from what it holds on its own node (its latent variables stay
there), so only what the questions and answers carry crosses between nodes: every byte
of it is counted here, for the update's report.

The peer side (`Module.join`, `Module.answer`, `Module.settle`): the coordinator has
each peer `join` before the update (it hands the peer its inputs again, by reference),
the update asks, and each peer then `settle`s: it returns its new state and messages,
which the coordinator checkpoints as that peer's round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime import cluster, codec


@dataclass
class PeerCalls:
    """`UpdateContext.peers` of a module that talks to peers (in its actor).

    names: the peers' module names, in connect order; handles: their actors.
    timeout_s: the deadline of one answer.
    """

    names: Sequence[str]
    handles: Sequence[Any]
    timeout_s: float | None = None
    bytes_sent: int = 0  # every question, encoded
    bytes_received: int = 0  # every answer, encoded
    largest_message: int = 0  # bytes of the largest question or answer
    questions: dict[str, int] = field(default_factory=dict)  # asked, by question

    def ask(self, peer: int, question: str, **arrays: Any) -> dict[str, np.ndarray]:
        """Peer `peer`'s answer to `question` about `arrays` (numbers or numeric arrays)."""
        message = codec.pack(arrays)
        reply = cluster.wait(
            self.handles[peer].answer.remote(question, message),
            who=self.names[peer],
            what=f"its answer to {question!r}",
            timeout_s=self.timeout_s,
        )
        self.bytes_sent += len(message)
        self.bytes_received += len(reply)
        self.largest_message = max(self.largest_message, len(message), len(reply))
        self.questions[question] = self.questions.get(question, 0) + 1
        return codec.unpack(reply)

    def traffic(self) -> Mapping[str, float]:
        """What crossed between this module and its peers, for the update's metrics."""
        return {
            "bytes_between_peers": float(self.bytes_sent + self.bytes_received),
            "largest_peer_message_bytes": float(self.largest_message),
        }
