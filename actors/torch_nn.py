"""Serket's NN module: a neural network between a classifier and a second observation.

`nn1.connect(gmm1, obs2)`. Each update, first the network learns to map the classifier's
forward message, P(class | z) per element, to the element's second observation. Then,
with the network fixed, a softmax-weighted copy of the class probabilities is optimised
so that the network explains each element's second observation; those weights, softmax(w)
per element, go back to the classifier, which multiplies them into its classification
(as it does a Markov model's prior). So the second view tells the first which classes fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from runtime import Module, ModuleError, Resources, Update, UpdateContext

DEVICES = ("cpu", "cuda")


class TorchNN(Module):
    """Serket's `torch_nn.TorchNN`, with Serket's parameters and subclass hook.

    batch_size1: minibatch of the network's training (itr1 epochs over the elements).
    batch_size2: elements per chunk in the second phase (itr2 full-batch steps of Adam
    over the weights w, as Serket takes them; chunks only bound memory). lr: Adam's rate
    in both phases. device: "cpu" or "cuda" (a GPU is asked for). load_dir: a learned
    NN's folder: its network is kept fixed and only the second phase runs on the
    connected data (Serket's parameter; recognition mode). build_model(input_dim,
    output_dim): the network, as Serket's subclasses define it; by default Serket
    example's: one hidden layer of 64 ReLUs, sigmoid outputs (for observations in [0, 1]).
    The network is built anew at every update, as Serket's is.
    Files: message.txt (softmax(w), the message back), weight.txt (w), loss.txt (the
    training loss per epoch), model.npz (the network's weights).
    """

    kind = "nn"
    # Its update runs between the VAE's and the GMM's, never beside them: it reserves no
    # CPU (as the Markov model), so VAE+GMM+NN fits a 2-core machine.
    resources = Resources(num_cpus=0)

    def __init__(
        self,
        batch_size1: int,
        batch_size2: int,
        itr1: int = 5000,
        itr2: int = 5000,
        lr: float = 1e-3,
        device: str = "cpu",
        name: str | None = None,
        load_dir: str | None = None,
        seed: int = 0,
        mode: str | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ModuleError(name or self.kind, f"device must be one of {DEVICES}, got {device!r}")
        gpus = Resources(num_cpus=0, num_gpus=int(device == "cuda"))
        super().__init__(name, resources=gpus, mode=mode, load_dir=load_dir)
        self.require_positive_integers(
            batch_size1=batch_size1, batch_size2=batch_size2, itr1=itr1, itr2=itr2
        )
        if not lr > 0:
            raise ModuleError(self.full_name, f"lr must be positive, got {lr!r}")
        self.batch_size1, self.batch_size2 = batch_size1, batch_size2
        self.itr1, self.itr2 = itr1, itr2
        self.lr = lr
        self.device = device
        self.seed = seed
        self.model_: nn.Module | None = None
        self._restored: dict[str, np.ndarray] = {}

    def build_model(self, input_dim: int, output_dim: int) -> nn.Module:
        """The network from class probabilities to the second observation; override it."""
        return nn.Sequential(
            nn.Linear(input_dim, 64), nn.ReLU(), nn.Linear(64, output_dim), nn.Sigmoid()
        )

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        if len(input_shapes) != 2 or any(len(s) != 2 for s in input_shapes):
            raise ValueError(
                "connects to two inputs: a classifier (elements, K) and an observation "
                f"(elements, features); got {list(input_shapes)}"
            )
        (n, classes), (m, _) = input_shapes
        if n != m:
            raise ValueError(f"its inputs have {n} and {m} elements; they must match")
        return (n, classes)

    # ---- actor side -------------------------------------------------------------------
    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        device = _device(ctx)
        torch.manual_seed(self.seed + ctx.round)
        probabilities, targets = _tensors(inputs, device)
        self.model_ = self.build_model(probabilities.shape[1], targets.shape[1]).to(device)
        losses = self._train(probabilities, targets, ctx)
        return self._explained(probabilities, targets, ctx, {"loss.txt": np.asarray(losses)})

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """The second phase alone, through the learned network."""
        device = _device(ctx)
        probabilities, targets = _tensors(inputs, device)
        self._restore(probabilities.shape[1], targets.shape[1], device)
        return self._explained(probabilities, targets, ctx, {})

    def _train(
        self, probabilities: torch.Tensor, targets: torch.Tensor, ctx: UpdateContext
    ) -> list[float]:
        """Phase 1: the network from P(class | z) to the observation, MSE, Adam."""
        assert self.model_ is not None
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        loss_of = nn.MSELoss(reduction="sum")
        n, losses = len(probabilities), []  # per epoch, on the device until the end
        progress = ctx.progress(self.itr1, "network")
        for _ in range(self.itr1):
            total = torch.zeros((), device=probabilities.device)
            for batch in torch.randperm(n, device=probabilities.device).split(self.batch_size1):
                predicted, wanted = self.model_(probabilities[batch]), targets[batch]
                loss = loss_of(predicted, wanted) / wanted.numel()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch)
            losses.append(total / n)
            progress.update()
        progress.close()
        return [float(loss) for loss in losses]  # one device sync, not one per epoch

    def _explained(
        self,
        probabilities: torch.Tensor,
        targets: torch.Tensor,
        ctx: UpdateContext,
        files: dict[str, np.ndarray],
    ) -> Update:
        """Phase 2: w (elements x K) such that the fixed network, fed softmax(w) * P(class
        | z), explains each element's observation; softmax(w) is the message back."""
        assert self.model_ is not None
        self.model_.requires_grad_(False)
        w = torch.ones_like(probabilities, requires_grad=True)
        optimizer = torch.optim.Adam([w], lr=self.lr)
        scale = 1.0 / targets.numel()  # MSE over all elements, as one batch
        progress = ctx.progress(self.itr2, "message")
        for _ in range(self.itr2):
            optimizer.zero_grad()
            for rows in torch.arange(len(w), device=w.device).split(self.batch_size2):
                weighted = torch.softmax(w[rows], dim=1) * probabilities[rows]
                loss = ((self.model_(weighted) - targets[rows]) ** 2).sum() * scale
                loss.backward()
            optimizer.step()
            progress.update()
        progress.close()
        self.model_.requires_grad_(True)
        message = torch.softmax(w, dim=1).detach().cpu().numpy().astype(np.float32)
        suffix = "_recog" if self.recognizing else ""
        return Update(
            forward=message,
            backward=[message, None],
            files={
                **files,
                f"message{suffix}.txt": message,
                f"weight{suffix}.txt": w.detach().cpu().numpy(),
                **({} if self.recognizing else {self.model_file: self.state()}),
            },
        )

    def _restore(self, input_dim: int, output_dim: int, device: torch.device) -> None:
        if self.model_ is None:
            if not self._restored:
                raise ValueError("recognition needs a learned network (load_dir=)")
            self.model_ = self.build_model(input_dim, output_dim)
            self.model_.load_state_dict({k: torch.from_numpy(v) for k, v in self._restored.items()})
        self.model_.to(device)

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The network's weights (Serket saves model.pth; these are named arrays)."""
        if self.model_ is None:
            return dict(self._restored)
        return {k: v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.model_ = None
        self._restored = {k: np.array(v) for k, v in state.items()}

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        (_, classes), (_, features) = input_shapes
        expected = {
            k: tuple(v.shape) for k, v in self.build_model(classes, features).state_dict().items()
        }
        learned = {k: tuple(np.shape(v)) for k, v in state.items()}
        if learned != expected:
            raise ValueError(
                f"its network's weights {learned} do not fit {classes} classes and "
                f"{features} features (the network built here has {expected})"
            )


def _tensors(inputs: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    return [torch.tensor(np.asarray(a), dtype=torch.float32, device=device) for a in inputs]


def _device(ctx: UpdateContext) -> torch.device:
    return torch.device("cuda" if ctx.gpu_ids and torch.cuda.is_available() else "cpu")
