"""A module for fault tests: a GMM that takes a while, so it can be hit mid-call."""

import time

from actors.gmm import GMM


class SlowGMM(GMM):
    """A GMM whose `slow_in` call ("learn" or "recognize") takes `delay` seconds longer."""

    def __init__(
        self,
        K: int,
        delay: float = 3.0,
        seed: int = 0,
        name: str | None = None,
        slow_in: str = "learn",
        algorithm: str = "gibbs",
        shards: int = 1,
    ):
        super().__init__(K, seed=seed, name=name, algorithm=algorithm, shards=shards)
        self.delay = delay
        self.slow_in = slow_in

    def learn(self, inputs, backward, ctx):
        if self.slow_in == "learn":
            time.sleep(self.delay)
        return super().learn(inputs, backward, ctx)

    def recognize(self, inputs, backward, ctx):
        if self.slow_in == "recognize":
            time.sleep(self.delay)
        return super().recognize(inputs, backward, ctx)
