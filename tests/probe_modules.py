"""Modules for tests of sharded modules: a VAE whose every shard reports its state, and
a module that does not run sharded; a GMM that dies in a naming game."""

import dataclasses
import hashlib
import os
import time

import numpy as np

from actors.gmm import GMM
from actors.vae import VAE
from runtime import Module


def state_digest(state) -> int:
    """A number (exact in float64) standing for a module's state: weights and moments."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(state[key]).tobytes())
    return int.from_bytes(digest.digest()[:6], "little")


class ProbedVAE(VAE):
    """A VAE whose shards each write a digest of their weights and Adam's moments as an
    element-wise result (`state_digest`, one row per element: so every shard writes
    its own), after waiting `delay` seconds at the start of every update."""

    def __init__(self, latent_dim, itr=2, batch_size=40, delay=0.0, shards=1, encoder=None,
                 decoder=None, name=None):  # fmt: skip
        super().__init__(latent_dim, itr=itr, batch_size=batch_size, loss="mse", shards=shards,
                         num_threads=1, encoder=encoder, decoder=decoder, name=name)  # fmt: skip
        self.delay = delay

    def learn(self, inputs, backward, ctx):
        time.sleep(self.delay)
        update = super().learn(inputs, backward, ctx)
        digest = np.full(len(update.forward), state_digest(self.state()), dtype=np.int64)
        return dataclasses.replace(update, rows={**update.rows, "state_digest.npy": digest})


class Whole(Module):
    """A module written for one actor (no `supports_shards`)."""

    def __init__(self, latent_dim=2, shards=1, name=None):
        super().__init__(name, shards=shards)
        self.latent_dim = latent_dim


class DyingGMM(GMM):
    """A GMM whose actor's process exits the first time it is asked to listen in a naming
    game at round `die_at` (a file at `marker` remembers that it did, across restarts)."""

    def __init__(self, K, category=None, seed=0, message="mean", marker="", die_at=2,
                 name=None):  # fmt: skip
        super().__init__(K, category=category, seed=seed, message=message, name=name)
        self.marker = marker
        self.die_at = die_at

    def join(self, inputs, ctx):
        super().join(inputs, ctx)
        self._round = ctx.round

    def answer(self, question, arrays):
        if question == "listen" and self._round == self.die_at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().answer(question, arrays)
