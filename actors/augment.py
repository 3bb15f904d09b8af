"""Label-free input jitter for a VAE on images.

The encoder sees each digit slightly rotated, scaled and moved while the decoder must
still reconstruct the original, so z learns to ignore those nuisances. Measured on the
tutorial digits (README, `make bench-quality`): it lifts the uncoupled VAE+GMM, and makes
the coupled one vary more from seed to seed.
Pass ``augment="actors.augment:image_jitter"`` to the VAE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_CHUNK = 8192  # images warped at once: bounds the temporary memory on large data sets


def image_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    rotation: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
) -> torch.Tensor:
    """(N, side*side) square images -> the same, each under its own random affine map.

    rotation in degrees, scale as a fraction, shift in pixels: each drawn uniformly in
    [-value, +value]. Bilinear resampling, zeros outside the image.
    """
    pixels = x.shape[1]
    side = math.isqrt(pixels)
    if side * side != pixels:
        raise ValueError(f"image_jitter needs square images, got {pixels} features per element")
    return torch.cat(
        [_warp(chunk, side, generator, rotation, scale, shift) for chunk in x.split(_CHUNK)]
    )


def _warp(
    images: torch.Tensor,
    side: int,
    generator: torch.Generator,
    rotation: float,
    scale: float,
    shift: float,
) -> torch.Tensor:
    b = len(images)

    def uniform(*shape: int) -> torch.Tensor:
        draws = torch.rand(*shape, generator=generator, device=images.device)
        return 2 * draws - 1

    angle = uniform(b) * math.radians(rotation)
    zoom = 1 + uniform(b) * scale
    offset = uniform(b, 2) * shift * 2 / side  # affine_grid's coordinates span [-1, 1]
    cos, sin = zoom * torch.cos(angle), zoom * torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, 1, side, side], align_corners=False)
    warped = F.grid_sample(images.view(b, 1, side, side), grid, align_corners=False)
    return warped.view(b, side * side)
