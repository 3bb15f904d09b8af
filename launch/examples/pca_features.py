"""An example of a module written by a user: PCA features of its input, shardable.

The complete contract, in one file a user would write beside their script:

* store every constructor parameter under its own name (the actor rebuilds the module
  from them, without pickle), learned state in attributes ending in ``_``;
* `output_shape` checks the inputs' shapes at connect time and gives the forward shape;
* `learn` gets the inputs' forward messages (one array per connected input) and the
  backward message from above (or None), and returns an `Update`: the forward message,
  one backward message per input (None: nothing to send), files, element-wise results
  (`rows`) and metrics;
* `recognize` does the same for novel data with what was learned;
* `state` / `load_state` give and take the learned state as named arrays, for the
  checkpoints written after every update;
* `resources` says what its actor needs; `place()` pins it further (a custom resource
  that only some nodes advertise, a node label);
* `supports_shards = True` and a `shards` parameter let it run as many actors, each
  owning a range of the elements: `learn` sums what it needs over them with
  `ctx.allreduce` (here the data's sum and scatter), so it is the same code for one
  shard or many, and no Ray code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

import runtime as srk

BLOCK_ROWS = 16_384  # rows whose float64 copy is held at once (scatter, projection)


class PCAFeatures(srk.Module):
    """Projects its input onto its first `n_components` principal components.

    From the covariance (summed over shards) rather than scikit-learn's PCA, which needs
    all the rows in one process.
    """

    kind = "pca"
    resources = srk.Resources(num_cpus=1)
    supports_shards = True

    def __init__(self, n_components: int, shards: int = 1, name: str | None = None) -> None:
        super().__init__(name, shards=shards)
        self.n_components = n_components
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None  # (n_components, features)

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        (elements, features), *others = input_shapes
        if others or features < self.n_components:
            raise ValueError(f"needs one input with >= {self.n_components} features")
        return (elements, self.n_components)

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: srk.UpdateContext
    ) -> srk.Update:
        data = inputs[0]
        totals = ctx.allreduce(
            {"sum": data.sum(axis=0, dtype=np.float64), "n": np.array(len(data))}
        )
        self.mean_ = totals["sum"] / totals["n"]
        scatter = np.zeros((data.shape[1], data.shape[1]))
        for start in range(0, len(data), BLOCK_ROWS):
            block = data[start : start + BLOCK_ROWS] - self.mean_
            scatter += block.T @ block
        covariance = ctx.allreduce({"scatter": scatter})["scatter"] / (totals["n"] - 1)
        variances, vectors = np.linalg.eigh(covariance)  # ascending
        top = vectors[:, ::-1][:, : self.n_components].T
        # One sign per component (its largest entry positive): shards and runs agree.
        largest = np.abs(top).argmax(axis=1)
        self.components_ = top * np.sign(top[np.arange(len(top)), largest])[:, None]
        explained = float(variances[::-1][: self.n_components].sum() / variances.sum())
        features = self._project(data)
        return srk.Update(
            forward=features,
            backward=[None],  # nothing to send to the observation below
            files={"pca_params.npz": self.state()},
            rows={"features_learn.txt": features},
            metrics={"explained_variance": explained},
        )

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: srk.UpdateContext
    ) -> srk.Update:
        if self.components_ is None:
            raise ValueError("recognition needs a learned model: update it first")
        features = self._project(inputs[0])
        return srk.Update(forward=features, backward=[None], rows={"features_recog.txt": features})

    def _project(self, data: np.ndarray) -> np.ndarray:
        """In blocks of rows: no full-size centred copy of the data is made."""
        assert self.mean_ is not None and self.components_ is not None
        features = np.empty((len(data), len(self.components_)), dtype=np.float32)
        for start in range(0, len(data), BLOCK_ROWS):
            block = data[start : start + BLOCK_ROWS] - self.mean_
            features[start : start + BLOCK_ROWS] = block @ self.components_.T
        return features

    def state(self) -> dict[str, np.ndarray]:
        if self.components_ is None:
            return {}
        return {"mean": self.mean_, "components": self.components_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.mean_ = np.array(state["mean"]) if state else None
        self.components_ = np.array(state["components"]) if state else None
