"""Modules for fault tests: GMMs that take a while, so they can be hit mid-call."""

import time

from actors.gmm import GMM


class SlowGMM(GMM):
    def __init__(self, K: int, delay: float = 3.0, seed: int = 0, name: str | None = None):
        super().__init__(K, seed=seed, name=name)
        self.delay = delay

    def learn(self, inputs, backward, ctx):
        time.sleep(self.delay)
        return super().learn(inputs, backward, ctx)


class SlowRecognizingGMM(GMM):
    """Learns as fast as a GMM; recognition takes `delay` seconds longer."""

    def __init__(self, K: int, delay: float = 3.0, seed: int = 0, name: str | None = None):
        super().__init__(K, seed=seed, name=name)
        self.delay = delay

    def recognize(self, inputs, backward, ctx):
        time.sleep(self.delay)
        return super().recognize(inputs, backward, ctx)
