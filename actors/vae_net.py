"""The VAE's networks and loss terms, in plain PyTorch (nothing here knows about messages).

Shapes: B batch, D observed features, L latent dimensions, H hidden units.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for width_in, width_out in itertools.pairwise(sizes):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class GaussianVAE(nn.Module):
    """Encoder to a diagonal Gaussian q(z|o); decoder from z to the observation's space.

    The encoder must output 2L numbers per element (mean, then log-variance); the decoder
    outputs D numbers: logits for a BCE reconstruction (or, with
    decodes_probabilities, the probabilities themselves, as Serket's decoders end in a
    sigmoid), values for an MSE one.
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, decodes_probabilities: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.decodes_probabilities = decodes_probabilities

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, L), (B, L)
        return mean, logvar

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        z = mean + noise * torch.exp(0.5 * logvar)  # reparameterisation, (B, L)
        return self.decoder(z), mean, logvar  # (B, D), (B, L), (B, L)


class PairEncoder(nn.Module):
    """An encoder in Serket's style, whose forward returns (mean, log-variance), as the
    one 2L-wide output GaussianVAE reads."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = self.encoder(x)
        return torch.cat([mean, logvar], dim=1)


def kl_to_prior(mean: torch.Tensor, logvar: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(logvar)) || prior), summed over the batch.

    prior: (B, L) means, the prior N(mean_k, I) of Serket's tutorial; or (B, 2L) means
    then variances, the class Gaussian N(mean_k, diag var_k) of Inter-GMM+VAE."""
    latent = mean.shape[1]
    if prior.shape[1] == latent:
        return 0.5 * ((mean - prior).square() + logvar.exp() - 1.0 - logvar).sum()
    prior_mean, prior_var = prior[:, :latent], prior[:, latent:]
    return (
        0.5
        * (
            prior_var.log()
            - logvar
            + (logvar.exp() + (mean - prior_mean).square()) / prior_var
            - 1.0
        ).sum()
    )


def reconstruction_error(
    output: torch.Tensor, x: torch.Tensor, kind: str, probabilities: bool = False
) -> torch.Tensor:
    """Negative log-likelihood of x, summed over the batch: Bernoulli (BCE) or Gaussian
    (MSE). probabilities: the BCE output is probabilities, not logits."""
    if kind == "bce":
        if probabilities:
            return F.binary_cross_entropy(output, x, reduction="sum")
        return F.binary_cross_entropy_with_logits(output, x, reduction="sum")
    return 0.5 * F.mse_loss(output, x, reduction="sum")


def reconstruct(output: torch.Tensor, kind: str, probabilities: bool = False) -> torch.Tensor:
    """The decoder's output as an observation: probabilities for BCE, values for MSE."""
    return torch.sigmoid(output) if kind == "bce" and not probabilities else output
