"""An example of a module written by a user: PCA features of its input.

The complete contract, in one file a user would write beside their script:

* store every constructor parameter under its own name (the actor rebuilds the module
  from them, without pickle), learned state in attributes ending in ``_``;
* `output_shape` checks the inputs' shapes at connect time and gives the forward shape;
* `learn` gets the inputs' forward messages (one array per connected input) and the
  backward message from above (or None), and returns an `Update`: the forward message,
  one backward message per input (None: nothing to send), files and metrics;
* `recognize` does the same for novel data with what was learned;
* `state` / `load_state` give and take the learned state as named arrays, for the
  checkpoints written after every update;
* `resources` says what its actor needs; `place()` pins it further (a custom resource
  that only some nodes advertise, a node label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.decomposition import PCA

import runtime as srk


class PCAFeatures(srk.Module):
    """Projects its input onto its first `n_components` principal components."""

    kind = "pca"
    resources = srk.Resources(num_cpus=1)

    def __init__(self, n_components: int, name: str | None = None) -> None:
        super().__init__(name)
        self.n_components = n_components
        self.pca_: PCA | None = None

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        (elements, features), *others = input_shapes
        if others or features < self.n_components:
            raise ValueError(f"needs one input with >= {self.n_components} features")
        return (elements, self.n_components)

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: srk.UpdateContext
    ) -> srk.Update:
        self.pca_ = PCA(self.n_components, random_state=0).fit(inputs[0])
        features = self.pca_.transform(inputs[0]).astype(np.float32)
        explained = float(self.pca_.explained_variance_ratio_.sum())
        return srk.Update(
            forward=features,
            backward=[None],  # nothing to send to the observation below
            files={"features_learn.txt": features, "pca_params.npz": self.state()},
            metrics={"explained_variance": explained},
        )

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: srk.UpdateContext
    ) -> srk.Update:
        if self.pca_ is None:
            raise ValueError("recognition needs a learned model: update it first")
        features = self.pca_.transform(inputs[0]).astype(np.float32)
        return srk.Update(forward=features, backward=[None], files={"features_recog.txt": features})

    def state(self) -> dict[str, np.ndarray]:
        if self.pca_ is None:
            return {}
        return {"mean": self.pca_.mean_, "components": self.pca_.components_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        if not state:
            self.pca_ = None
            return
        self.pca_ = PCA(len(state["components"]))
        self.pca_.mean_ = np.array(state["mean"])
        self.pca_.components_ = np.array(state["components"])
