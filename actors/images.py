"""Label-free image transforms for a VAE on digits: deskewing and jitter.

Each takes (N, side*side) square images as rows and resample them under one affine map per
image (bilinear, zeros outside the image), in chunks so that memory stays bounded on
large data sets. They run on the tensor's device, GPU included.

- `deskew` (the VAE's ``preprocess``): straightens each digit's slant and centres it on its
  centre of ink, a classic normalisation of handwritten digits. Measured on the tutorial
  digits (README, `make bench-quality`) it lifts every configuration: PCA + GMM and the
  coupled VAE + GMM alike.
- `image_jitter` (the VAE's ``augment``): the encoder sees each digit slightly rotated,
  scaled and moved while the decoder must still reconstruct the original, so z learns to
  ignore those nuisances. Measured: it did not lift the coupled model.
- `elastic_distortion`: new digits from old ones, for large data sets made offline
  (`launch/deformed_digits.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

_CHUNK = 8192  # images resampled at once


def deskew(x: torch.Tensor) -> torch.Tensor:
    """Each image sheared so that its ink has no slant, and moved so that its centre of
    ink is the image's centre.

    The slant is the regression of x on y over the ink (cov(x, y) / var(y)); the output
    pixel at offset (u, v) from the centre samples the input at the centre of ink plus
    (u + slant * v, v). A blank image is left as it is.
    """
    side = _side(x, "deskew")
    return _by_chunks(x, lambda chunk: _deskew(chunk, side))


def image_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    rotation: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
) -> torch.Tensor:
    """Each image under its own random rotation, scaling and shift.

    rotation in degrees, scale as a fraction, shift in pixels: each drawn uniformly in
    [-value, +value].
    """
    side = _side(x, "image_jitter")
    return _by_chunks(x, lambda chunk: _jitter(chunk, side, generator, rotation, scale, shift))


def _by_chunks(x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`transform` over `x` chunk by chunk, in order, into one output tensor: memory is the
    output and one chunk's work (torch.cat would hold every chunk's result and their
    concatenation at once: twice the data)."""
    out = torch.empty_like(x)
    for start in range(0, len(x), _CHUNK):
        out[start : start + _CHUNK] = transform(x[start : start + _CHUNK])
    return out


def _side(x: torch.Tensor, who: str) -> int:
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"{who} needs square images, got {x.shape[1]} features per element")
    return side


def _resample(
    images: torch.Tensor, theta: torch.Tensor, side: int, shift: torch.Tensor | None = None
) -> torch.Tensor:
    """Output pixel at normalised position p (in [-1, 1]^2, x then y) samples the input at
    theta @ (p, 1), plus shift[p] where a per-pixel shift is given; theta: (B, 2, 3),
    shift: (B, side, side, 2) in the same normalised units."""
    b = len(images)
    grid = F.affine_grid(theta, [b, 1, side, side], align_corners=False)
    if shift is not None:
        grid = grid + shift
    warped = F.grid_sample(images.view(b, 1, side, side), grid, align_corners=False)
    return warped.view(b, side * side)


def _deskew(images: torch.Tensor, side: int) -> torch.Tensor:
    b = len(images)
    coordinate = torch.arange(side, dtype=images.dtype, device=images.device)
    ink = images.view(b, side, side)  # (B, y, x)
    total = ink.sum(dim=(1, 2))  # (B,)
    has_ink = total > 0
    weight = ink / torch.where(has_ink, total, 1.0)[:, None, None]
    centre = (side - 1) / 2
    mean_y = torch.where(has_ink, (weight.sum(2) * coordinate).sum(1), centre)
    mean_x = torch.where(has_ink, (weight.sum(1) * coordinate).sum(1), centre)
    dy = coordinate[None, :, None] - mean_y[:, None, None]  # (B, y, 1)
    dx = coordinate[None, None, :] - mean_x[:, None, None]  # (B, 1, x)
    var_y = (weight * dy.square()).sum(dim=(1, 2))
    cov_xy = (weight * dx * dy).sum(dim=(1, 2))
    slant = torch.where(var_y > 0, cov_xy / var_y.clamp_min(1e-12), 0.0)
    half = side / 2  # pixels per unit of affine_grid's normalised coordinates
    ones, zeros = torch.ones_like(slant), torch.zeros_like(slant)
    theta = torch.stack(
        [
            torch.stack([ones, slant, (mean_x - centre) / half], 1),
            torch.stack([zeros, ones, (mean_y - centre) / half], 1),
        ],
        1,
    )  # (B, 2, 3)
    return _resample(images, theta, side)


def _random_affine(
    b: int,
    side: int,
    generator: torch.Generator,
    rotation: float,
    scale: float,
    shift: float,
    device: torch.device,
) -> torch.Tensor:
    """(B, 2, 3) maps of a random rotation (degrees), scaling (fraction) and shift (pixels),
    each drawn uniformly in [-value, +value]."""

    def uniform(*shape: int) -> torch.Tensor:
        return 2 * torch.rand(*shape, generator=generator, device=device) - 1

    angle = uniform(b) * math.radians(rotation)
    zoom = 1 + uniform(b) * scale
    offset = uniform(b, 2) * shift * 2 / side  # affine_grid's coordinates span [-1, 1]
    cos, sin = zoom * torch.cos(angle), zoom * torch.sin(angle)
    return torch.stack(
        [torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1
    )  # (B, 2, 3)


def _jitter(
    images: torch.Tensor,
    side: int,
    generator: torch.Generator,
    rotation: float,
    scale: float,
    shift: float,
) -> torch.Tensor:
    theta = _random_affine(len(images), side, generator, rotation, scale, shift, images.device)
    return _resample(images, theta, side)


def elastic_distortion(
    x: torch.Tensor,
    generator: torch.Generator,
    alpha: float = 34.0,
    sigma: float = 4.0,
    rotation: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
) -> torch.Tensor:
    """Each image under its own random elastic distortion and affine map (as MNIST8M was
    made from MNIST: Loosli, Canu and Bottou 2007, after Simard, Steinkraus and Platt 2003).

    The distortion moves each pixel by a random field, uniform in [-1, 1] per pixel and
    coordinate, smoothed by a Gaussian of `sigma` pixels (scipy's, zeros beyond the
    image) and scaled by `alpha` pixels (Simard's values by default); rotation, scale and
    shift as in `image_jitter`. The field is drawn and smoothed on the CPU.
    """
    side = _side(x, "elastic_distortion")
    return _by_chunks(
        x, lambda chunk: _elastic(chunk, side, generator, alpha, sigma, rotation, scale, shift)
    )


def _elastic(
    images: torch.Tensor,
    side: int,
    generator: torch.Generator,
    alpha: float,
    sigma: float,
    rotation: float,
    scale: float,
    shift: float,
) -> torch.Tensor:
    b = len(images)
    theta = _random_affine(b, side, generator, rotation, scale, shift, images.device)
    field = 2 * torch.rand(b, 2, side, side, generator=generator) - 1
    smooth = gaussian_filter(field.numpy(), sigma, axes=(2, 3), mode="constant")
    smooth = torch.from_numpy(smooth).to(images.device, images.dtype)
    pixels = alpha * smooth.permute(0, 2, 3, 1)  # (B, y, x, (dx, dy))
    return _resample(images, theta, side, shift=pixels * 2 / side)
