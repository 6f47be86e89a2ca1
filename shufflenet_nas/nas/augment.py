"""Training augmentation on a whole batch at once: random-resized crop and horizontal flip.

Each image gets its own crop: an area fraction drawn uniformly from ``[min_scale, 1]`` and an aspect ratio drawn
log-uniformly from ``[3/4, 4/3]`` (the Inception / ImageNet recipe the ShuffleNet papers train with), the crop's
sides clamped to the image, its position uniform over the places it fits; the crop is resampled bilinearly to the
input size, and mirrored with probability 1/2. One affine grid per image does all of it in one ``grid_sample``
call. The random numbers come from a CPU generator, so a batch is the same on every device for a seed.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

ASPECT_RATIOS = (3 / 4, 4 / 3)


def crop_and_flip(images: torch.Tensor, generator: torch.Generator, min_scale: float, flip: bool) -> torch.Tensor:
    """Randomly cropped (``min_scale`` < 1) and flipped (``flip``) float copies of ``images`` (N, C, H, W)."""
    count = images.shape[0]
    draws = torch.rand(count, 5, generator=generator, dtype=torch.float64)
    area = min_scale + (1 - min_scale) * draws[:, 0]
    log_low, log_high = math.log(ASPECT_RATIOS[0]), math.log(ASPECT_RATIOS[1])
    ratio = torch.exp(log_low + (log_high - log_low) * draws[:, 1]) if min_scale < 1 else torch.ones(count)
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image's side
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # In grid_sample's coordinates the image spans [-1, 1]: a crop of side w fits centres within +-(1 - w).
    centre_x = (1 - width) * (2 * draws[:, 2] - 1)
    centre_y = (1 - height) * (2 * draws[:, 3] - 1)
    mirror = torch.where(draws[:, 4] < 0.5, -1.0, 1.0) if flip else torch.ones(count, dtype=torch.float64)
    theta = torch.zeros(count, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    floats = images.float()
    grid = F.affine_grid(theta.to(floats), list(floats.shape), align_corners=False)
    return F.grid_sample(floats, grid, mode="bilinear", padding_mode="border", align_corners=False)
