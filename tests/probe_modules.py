"""Modules for tests of sharded modules: a VAE whose every shard reports its state, and
a module that does not run sharded."""

import dataclasses
import hashlib
import time

import numpy as np

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
