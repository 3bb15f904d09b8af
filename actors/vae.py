"""Serket's VAE module: compresses observations to latent variables z.

Loss per element: reconstruction + alpha * KL(q(z|o) || N(mu, I)), where mu is the mean of
the element's class sent back by the module above (zeros until a message arrives); or
KL(q(z|o) || N(mu, diag var)) when the message also carries the class's variances (a GMM
built with message="gaussian": Inter-GMM+VAE's prior). The networks and the optimizer live
on across rounds, so every round refines the last.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from actors.vae_net import (
    GaussianVAE,
    PairEncoder,
    kl_to_prior,
    mlp,
    reconstruct,
    reconstruction_error,
)
from runtime import Module, ModuleError, Resources, Update, UpdateContext

LOSSES = ("bce", "mse")
SERKET_LOSSES = {"BCE": "bce", "MSE": "mse"}  # Serket's RE= and ours
DEVICES = (None, "cpu", "cuda")
_EVAL_CHUNK = 65_536  # rows encoded at once when computing z for the whole data set
# Reconstructions written to x_hat_*.npy: the first this many elements' (a sample to look
# at; all of them would be as large as the data). The backward message holds them all.
RECONSTRUCTIONS_KEPT = 10_000
DEFAULT_HIDDEN = (128,)


def _content_key(array: np.ndarray) -> bytes:
    """A digest of an array's dtype, shape and bytes, for telling whether data changed."""
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.blake2b(f"{contiguous.dtype.str}{contiguous.shape}".encode(), digest_size=16)
    digest.update(memoryview(contiguous).cast("B"))
    return digest.digest()


def _reconstructed_rows(n: int, ctx: UpdateContext) -> int:
    """Reconstructions to make: all n when the input takes them as its backward message
    (a module below; or unknown), else only the first RECONSTRUCTIONS_KEPT, for the file
    (an observation takes none: at scale, all of them would be as large as the data)."""
    if not ctx.backward_taken or ctx.backward_taken[0]:
        return n
    return min(n, RECONSTRUCTIONS_KEPT)


def _shared_tensor(observations: np.ndarray, device: torch.device) -> torch.Tensor:
    """The observations as a float32 tensor on `device`, sharing their memory where it
    can (float32 on the CPU): no second copy of data as large as the data set. The VAE
    only reads it."""
    with warnings.catch_warnings():
        # Rows memory-mapped from a shard file are read-only: torch warns that the tensor
        # could be written to through; nothing does.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(observations, dtype=torch.float32, device=device)


def _factory(path: str) -> object:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class VAE(Module):
    """Variational autoencoder; its forward message is z (N x latent_dim).

    encoder / decoder: optional import paths ``"package.file:function"`` of factories
    ``f(input_dim, latent_dim) -> nn.Module`` (encoder: D -> 2L) and
    ``f(latent_dim, input_dim) -> nn.Module`` (decoder: L -> D); or subclass and override
    `build_networks`. preprocess: optional import path of ``f(x) -> x``, a label-free
    transform applied to the observations before learning and before recognition alike;
    the VAE then encodes and reconstructs the transformed data (e.g.
    ``"actors.images:deskew"`` for digits). augment: optional import path of
    ``f(x, generator) -> x`` that perturbs observations; each round makes `augment_copies`
    perturbed copies of the data (memory: that many times the data) and every epoch feeds
    the encoder a random copy of each element, while the decoder must still reconstruct the
    unperturbed x, so z learns to ignore the perturbation (e.g.
    ``"actors.images:image_jitter"`` for digits).
    num_threads: CPU threads for torch (default: all the node's cores, since the modules
    of a round run one after another; sharded, the CPUs each shard reserved).
    shards: actors the elements are split over, training one model data-parallel (torch
    DistributedDataParallel over the shards' process group: gradients all-reduced every
    step, so weights and Adam's moments stay alike on every shard). The global batch is
    `batch_size`: every step each shard takes its share of it from its own elements, so
    an epoch has the single actor's number of steps and visits every element once. Each
    shard encodes its own elements; one copy of the weights is checkpointed.
    Files: z per element (z_learn.txt; .npy beyond 100,000 elements), the loss per
    epoch (loss.txt), the weights (model.npz), and the reconstructions of the first
    10,000 elements.
    Serket's names, with Serket's meaning: epoch (= itr), KL_param and KLD_weight
    (= alpha), RE="BCE"|"MSE" (= loss), hidden_encoder_dim / hidden_decoder_dim (one
    hidden layer each, in place of hidden), batch_size=None (the whole data set in each
    step), device ("cpu": no GPU, "cuda": one; default: one when the cluster has one),
    mode / load_dir (recognition mode: every update encodes the connected data with the
    networks learned in load_dir, and learns nothing).
    """

    kind = "vae"
    resources = Resources(num_cpus=1, num_gpus="auto")
    supports_shards = True
    replicated_state = True

    def __init__(
        self,
        latent_dim: int,
        itr: int | None = None,
        batch_size: int | None = 500,
        alpha: float | None = None,
        loss: str | None = None,
        hidden: Sequence[int] | None = None,
        lr: float = 1e-3,
        encoder: str | None = None,
        decoder: str | None = None,
        preprocess: str | None = None,
        augment: str | None = None,
        augment_copies: int = 8,
        seed: int = 0,
        num_threads: int | None = None,
        shards: int = 1,
        name: str | None = None,
        epoch: int | None = None,
        KL_param: float | None = None,  # Serket's name
        KLD_weight: float | None = None,  # Serket's name
        RE: str | None = None,  # Serket's name
        hidden_encoder_dim: int | None = None,
        hidden_decoder_dim: int | None = None,
        device: str | None = None,
        mode: str | None = None,
        load_dir: str | None = None,
    ) -> None:
        # Serket's device: "cpu" asks for no GPU, "cuda" for one (default: one if there is)
        gpus = (
            None
            if device not in ("cpu", "cuda")
            else replace(type(self).resources, num_gpus=int(device == "cuda"))
        )
        super().__init__(name, resources=gpus, shards=shards, mode=mode, load_dir=load_dir)
        self.latent_dim = latent_dim
        self.itr = self._one_setting(200, itr=itr, epoch=epoch)
        self.batch_size = batch_size
        self.alpha = self._one_setting(1.0, alpha=alpha, KL_param=KL_param, KLD_weight=KLD_weight)
        if RE is not None and RE not in SERKET_LOSSES:
            raise ModuleError(self.full_name, f'RE must be "BCE" or "MSE", got {RE!r}')
        self.loss = self._one_setting(
            "bce", loss=loss, RE=None if RE is None else SERKET_LOSSES[RE]
        )
        # Serket's names are kept as given (so a copy rebuilt from them agrees); the
        # settings above are what the module uses.
        self.epoch, self.KL_param, self.KLD_weight, self.RE = epoch, KL_param, KLD_weight, RE
        self.hidden = hidden
        self.hidden_encoder_dim = hidden_encoder_dim
        self.hidden_decoder_dim = hidden_decoder_dim
        if hidden is not None and (hidden_encoder_dim or hidden_decoder_dim):
            raise ModuleError(
                self.full_name,
                "give hidden, or Serket's hidden_encoder_dim / hidden_decoder_dim, not both",
            )
        self.lr = lr
        self.encoder = encoder
        self.decoder = decoder
        self.preprocess = preprocess
        self.augment = augment
        self.augment_copies = augment_copies
        self.seed = seed
        self.num_threads = num_threads
        self.device = device
        self.require_positive_integers(
            latent_dim=latent_dim, itr=self.itr, augment_copies=augment_copies
        )
        if batch_size is not None:  # None: Serket's whole data set in one batch
            self.require_positive_integers(batch_size=batch_size)
        if self.loss not in LOSSES:
            raise ModuleError(self.full_name, f"loss must be one of {LOSSES}, got {loss!r}")
        if self.alpha < 0:
            raise ModuleError(self.full_name, f"alpha (KL weight) must be >= 0, got {self.alpha!r}")
        if num_threads is not None:
            self.require_positive_integers(num_threads=num_threads)
        if device not in DEVICES:
            raise ModuleError(self.full_name, f"device must be one of {DEVICES}, got {device!r}")
        self.net_: GaussianVAE | None = None
        self.optimizer_: torch.optim.Optimizer | None = None
        self._restored: dict[str, np.ndarray] = {}  # applied once the device is known
        # The last observations learned from and their preprocessed tensor: learning gets
        # the same data every round, so `preprocess` runs once (see `_prepared`).
        self._preprocessed: tuple[bytes, torch.Tensor] | None = None

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        if len(input_shapes) != 1 or len(input_shapes[0]) != 2:
            raise ValueError(
                f"needs one input of shape (elements, features), got {list(input_shapes)}"
            )
        return (input_shapes[0][0], self.latent_dim)

    def backward_shapes(self, output_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Class means (N, L), or means then variances (N, 2L)."""
        n, latent = output_shape
        return [(n, latent), (n, 2 * latent)]

    def _check_prior(self, prior: np.ndarray, n: int) -> None:
        if prior.shape not in self.backward_shapes((n, self.latent_dim)):
            raise ValueError(
                f"the prior from above must be class means {(n, self.latent_dim)} or means "
                f"and variances {(n, 2 * self.latent_dim)}, got {prior.shape}"
            )
        if prior.shape[1] > self.latent_dim and not (prior[:, self.latent_dim :] > 0).all():
            raise ValueError("the prior's class variances from above must be positive")

    def _one_setting(self, default: Any, **names: Any) -> Any:
        """The value of a setting that has several names (ours and Serket's): the one
        given, or `default`; two given with different values are an error."""
        given = {name: value for name, value in names.items() if value is not None}
        if len(set(map(repr, given.values()))) > 1:
            listed = ", ".join(f"{name}={value!r}" for name, value in given.items())
            raise ModuleError(self.full_name, f"{listed} name one setting: give one of them")
        return next(iter(given.values()), default)

    def build_networks(self, input_dim: int) -> GaussianVAE:
        """The encoder and decoder. For other architectures: Serket's way, a subclass
        that defines `build_encoder(input_dim, latent_dim)` (a module whose forward
        returns (mu, log_var)) and `build_decoder(input_dim, latent_dim)` (its forward
        returns the reconstruction: probabilities for BCE, values for MSE), where
        input_dim is the shape of one observation, as Serket passes it; or factories
        (`encoder=`, `decoder=`); or override this method."""
        if hasattr(self, "build_encoder") or hasattr(self, "build_decoder"):
            if not (hasattr(self, "build_encoder") and hasattr(self, "build_decoder")):
                raise ValueError("a VAE subclass defines both build_encoder and build_decoder")
            shape = (input_dim,)
            return GaussianVAE(
                PairEncoder(self.build_encoder(shape, self.latent_dim)),
                self.build_decoder(shape, self.latent_dim),
                decodes_probabilities=self.loss == "bce",
            )
        if self.encoder is not None and self.decoder is not None:
            encoder = _factory(self.encoder)(input_dim, self.latent_dim)
            decoder = _factory(self.decoder)(self.latent_dim, input_dim)
            return GaussianVAE(encoder, decoder)
        widths = list(self.hidden or DEFAULT_HIDDEN)
        encoder_widths = [self.hidden_encoder_dim] if self.hidden_encoder_dim else widths
        decoder_widths = [self.hidden_decoder_dim] if self.hidden_decoder_dim else widths[::-1]
        encoder = mlp([input_dim, *encoder_widths, 2 * self.latent_dim])
        decoder = mlp([self.latent_dim, *decoder_widths, input_dim])
        return GaussianVAE(encoder, decoder)

    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        observations = inputs[0]
        n, input_dim = observations.shape
        if self.loss == "bce" and (observations.min() < 0 or observations.max() > 1):
            raise ValueError(
                f"a BCE reconstruction needs observations in [0, 1], got values in "
                f"[{observations.min():g}, {observations.max():g}]: scale them or use loss='mse'"
            )
        if backward is not None:
            self._check_prior(backward, n)
        device = self._device(ctx)
        if self.net_ is None:
            self._build(input_dim, device)
        x = self._prepared(observations, device, reuse=True)  # (N, D)
        prior = (
            torch.zeros(n, self.latent_dim, device=device)
            if backward is None
            else torch.tensor(backward, dtype=torch.float32, device=device)
        )  # (N, L) means, or (N, 2L) means and variances
        losses = self._train(ctx.data_parallel(self.net_), self.optimizer_, x, prior, ctx)
        z, x_hat = self._encode_all(self.net_, x, _reconstructed_rows(n, ctx))
        return Update(
            forward=z,
            backward=[x_hat if len(x_hat) == n else None],
            files={
                "x_hat_learn.npy": x_hat[:RECONSTRUCTIONS_KEPT],
                "loss.txt": losses[:, 0],
                self.model_file: self.weights(),
            },
            rows={"z_learn.txt": z},
            metrics={"loss": losses[-1, 0], "reconstruction": losses[-1, 1], "kl": losses[-1, 2]},
        )

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """z of novel data from the learned encoder (no training); the prior is unused."""
        if self.net_ is None and not self._restored:
            raise ValueError("recognition needs a learned model: update the VAE first")
        device = self._device(ctx)
        if self.net_ is None:
            self._build(inputs[0].shape[1], device)
        assert self.net_ is not None
        n = len(inputs[0])
        z, x_hat = self._encode_all(self.net_, self._prepared(inputs[0], device),
                                    _reconstructed_rows(n, ctx))  # fmt: skip
        return Update(
            forward=z,
            backward=[x_hat if len(x_hat) == n else None],
            files={"x_hat_recog.npy": x_hat[:RECONSTRUCTIONS_KEPT]},
            rows={"z_recog.txt": z},
        )

    def _device(self, ctx: UpdateContext) -> torch.device:
        """CUDA when Ray gave this actor a GPU; sets torch's CPU threads either way: a
        shard's, the CPUs it reserved (shards sharing a node would contend otherwise)."""
        reserved = int(ctx.num_cpus or 0) if ctx.sharded else 0
        torch.set_num_threads(self.num_threads or reserved or len(os.sched_getaffinity(0)))
        return torch.device("cuda" if ctx.gpu_ids and torch.cuda.is_available() else "cpu")

    def _prepared(
        self, observations: np.ndarray, device: torch.device, *, reuse: bool = False
    ) -> torch.Tensor:
        """The observations as a float32 tensor on `device`, through `preprocess` if set.

        reuse: keep a preprocessed result and return it again while the observations have
        the same content (an actor decodes each round's message anew, so identity says
        nothing). Learning gets the same data every round, and hashing it costs about half
        of deskewing it; a plain tensor copy is cheaper than the hash, so only a
        `preprocess` is cached.
        """
        if self.preprocess is None:
            return _shared_tensor(observations, device)
        key = _content_key(observations) if reuse else None
        cached = self._preprocessed
        if key is not None and cached is not None and cached[0] == key:
            return cached[1].to(device)
        x = torch.tensor(observations, dtype=torch.float32, device=device)
        x = _factory(self.preprocess)(x)
        if key is not None:
            self._preprocessed = (key, x)
        return x

    def _train(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        prior: torch.Tensor,
        ctx: UpdateContext,
    ) -> np.ndarray:
        """Runs `itr` epochs; returns per-epoch mean (loss, reconstruction, KL) per element,
        over every shard's elements."""
        n = x.shape[0]
        batches = _Batches.of(n, self.batch_size or ctx.shard.total or n, ctx)
        seed = self.seed * 100_003 + ctx.round + 7_919 * ctx.shard.index  # a stream per shard
        generator = torch.Generator(device=x.device).manual_seed(seed)
        net.train()
        copies = None  # (C, N, D): perturbed copies for the encoder; the decoder gives back x
        if self.augment is not None:
            augment = _factory(self.augment)
            copies = torch.stack([augment(x, generator) for _ in range(self.augment_copies)])
        totals = torch.zeros(self.itr, 2, device=x.device)  # summed (reconstruction, KL)
        assert self.net_ is not None
        probabilities = self.net_.decodes_probabilities
        progress = ctx.progress(self.itr, "epochs")
        for epoch in range(self.itr):
            order = torch.randperm(n, device=x.device, generator=generator)
            if copies is not None:
                copy_of = torch.randint(len(copies), (n,), device=x.device, generator=generator)
            for index, divisor in batches.split(order):
                batch = x[index]  # (B, D)
                noise = torch.randn(
                    len(index), self.latent_dim, device=x.device, generator=generator
                )
                seen = batch if copies is None else copies[copy_of[index], index]
                output, mean, logvar = net(seen, noise)
                reconstruction = reconstruction_error(output, batch, self.loss, probabilities)
                kl = kl_to_prior(mean, logvar, prior[index])
                loss = (reconstruction + self.alpha * kl) / divisor
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals[epoch] += torch.stack([reconstruction.detach(), kl.detach()])
            progress.update(1)
        progress.close()
        if ctx.sharded:
            summed = ctx.allreduce({"totals": totals.cpu().numpy()})["totals"]
            per_element = (summed / ctx.shard.total).astype(np.float32)
        else:
            per_element = (totals / n).cpu().numpy()
        total = per_element[:, :1] + self.alpha * per_element[:, 1:]
        return np.hstack([total, per_element])

    @torch.no_grad()
    def _encode_all(
        self, net: GaussianVAE, x: torch.Tensor, reconstructed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """z of every row and the reconstructions of the first `reconstructed` rows."""
        net.eval()
        # Filled chunk by chunk: a list of parts and its concatenation would hold the
        # reconstructions (as large as the data) twice.
        z = torch.empty(len(x), self.latent_dim)
        x_hat = torch.empty((reconstructed, *x.shape[1:]), dtype=torch.float32)
        for start in range(0, len(x), _EVAL_CHUNK):
            rows = slice(start, start + _EVAL_CHUNK)
            mean, _ = net.encode(x[rows])  # the posterior mean is the element's z
            z[rows] = mean.cpu()
            if start < reconstructed:
                kept = mean[: reconstructed - start]
                decoded = reconstruct(net.decoder(kept), self.loss, net.decodes_probabilities)
                x_hat[start : start + len(kept)] = decoded.cpu()
        return z.numpy(), x_hat.numpy()

    def _build(self, input_dim: int, device: torch.device) -> None:
        torch.manual_seed(self.seed)
        self.net_ = self.build_networks(input_dim).to(device)
        self.optimizer_ = torch.optim.Adam(self.net_.parameters(), lr=self.lr, fused=True)
        if self._restored:
            restored = self._restored
            self.net_.load_state_dict(
                {
                    k[len("net/") :]: torch.from_numpy(v)
                    for k, v in restored.items()
                    if k.startswith("net/")
                }
            )
            moments: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in restored.items():
                if key.startswith("optim/"):
                    _, index, name = key.split("/")
                    moments.setdefault(int(index), {})[name] = torch.from_numpy(value)
            groups = self.optimizer_.state_dict()["param_groups"]
            self.optimizer_.load_state_dict({"state": moments, "param_groups": groups})
            self._restored = {}

    def weights(self) -> dict[str, np.ndarray]:
        """The networks' parameters by name (the module's model file)."""
        if self.net_ is None:
            return {}
        return {key: value.detach().cpu().numpy() for key, value in self.net_.state_dict().items()}

    def state(self) -> dict[str, np.ndarray]:
        """Weights and Adam's moments, so a resumed run trains on as if never stopped."""
        if self.net_ is None or self.optimizer_ is None:
            return dict(self._restored)
        state = {f"net/{key}": value for key, value in self.weights().items()}
        for index, moments in self.optimizer_.state_dict()["state"].items():
            for name, value in moments.items():
                state[f"optim/{index}/{name}"] = torch.as_tensor(value).detach().cpu().numpy()
        return state

    def learned_state(self, model: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model file holds the weights alone: a fresh optimizer learns on from them."""
        return {f"net/{key}": value for key, value in model.items()}

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        """The learned weights against the networks this VAE builds for its input."""
        expected = {
            f"net/{key}": tuple(value.shape)
            for key, value in self.build_networks(input_shapes[0][1]).state_dict().items()
        }
        learned = {key: tuple(np.shape(value)) for key, value in state.items()}
        if learned != expected:
            differ = sorted(k for k in expected.keys() | learned.keys()
                            if expected.get(k) != learned.get(k))  # fmt: skip
            first = differ[0].removeprefix("net/")
            raise ValueError(
                f"its weights differ from the networks built for {input_shapes[0][1]} features "
                f"and latent_dim={self.latent_dim}: {first} is "
                f"{learned.get(differ[0], 'missing')} there, {expected.get(differ[0], 'absent')} "
                "here"
            )

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.net_, self.optimizer_ = None, None
        self._restored = {key: np.array(value) for key, value in state.items()}


class _Batches:
    """The minibatches of an epoch. Unsharded: `batch_size` rows at a time. Sharded: the
    single actor's number of steps, ceil(N / batch_size), each shard splitting its own
    elements into that many near-equal batches. A step's summed loss is divided so that
    the gradient DistributedDataParallel averages over the S shards is the mean over the
    step's global batch, as one actor's would be: by the global batch's size / S."""

    def __init__(self, batch_size: int, divisors: np.ndarray | None) -> None:
        self.batch_size, self.divisors = batch_size, divisors

    @classmethod
    def of(cls, n: int, batch_size: int, ctx: UpdateContext) -> _Batches:
        if not ctx.sharded:
            return cls(batch_size, None)
        own = np.zeros(ctx.shard.count)
        own[ctx.shard.index] = n
        counts = ctx.allreduce({"counts": own})["counts"].astype(int)
        steps = -(-ctx.shard.total // batch_size)
        step = np.arange(steps)
        global_sizes = sum(count // steps + (step < count % steps) for count in counts)
        return cls(batch_size, global_sizes / ctx.shard.count)

    def split(self, order: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """(rows, divisor of their summed loss) per step, for this epoch's order."""
        if self.divisors is None:
            return [(index, len(index)) for index in torch.split(order, self.batch_size)]
        chunks = torch.tensor_split(order, len(self.divisors))
        return list(zip(chunks, self.divisors.tolist(), strict=True))
