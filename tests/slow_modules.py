"""Modules for fault tests: a GMM whose update takes a while, so it can be hit mid-update."""

import time

from actors.gmm import GMM


class SlowGMM(GMM):
    def __init__(self, K: int, delay: float = 3.0, seed: int = 0, name: str | None = None):
        super().__init__(K, seed=seed, name=name)
        self.delay = delay

    def learn(self, inputs, backward, ctx):
        time.sleep(self.delay)
        return super().learn(inputs, backward, ctx)
