"""User-supplied networks for the VAE, imported by path in the tests."""

from torch import nn


def encoder(input_dim: int, latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(input_dim, 16), nn.Tanh(), nn.Linear(16, 2 * latent_dim)
    )


def decoder(latent_dim: int, input_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(latent_dim, 16), nn.Tanh(), nn.Linear(16, input_dim))
