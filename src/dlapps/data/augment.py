"""Batched image perturbations: the weak and strong views of semi-supervised learning and of
domain adaptation's self-training.

* :func:`random_translate` — FixMatch's *weak* augmentation for digits (Sohn et al. 2020: shifts
  of up to 12.5% of the side; no flips, which would turn digits into other symbols).
* :func:`strong_augment` — FixMatch's *strong* view: RandAugment-style distortions drawn per image
  (affine: rotation, shear, scale, translation; brightness/contrast; sharpness; posterize) and
  then Cutout, built from kornia's batched augmentations (parameters drawn per sample, all on the
  tensor's device).

They work on whole batches of float tensors in [0, 1] (no per-sample PIL) and draw from torch's
global RNG, so a seeded run, and a resumed one (the engine checkpoints the RNG), draws the same
perturbations.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def random_translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image shifted by its own whole number of pixels in [−max_shift, max_shift] along each
    axis; the border row/column is repeated into the space the shift opens (no black bars on
    coloured backgrounds). ``max_shift`` = 0 returns ``x`` unchanged."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2)).to(x.device, torch.float32)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="nearest", padding_mode="border",
                         align_corners=False).to(x.dtype)


@functools.cache
def _strong() -> nn.Module:
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomAffine(degrees=30, translate=(0.125, 0.125), scale=(0.8, 1.2),
                       shear=(-20.0, 20.0, -20.0, 20.0), p=1.0),
        K.ColorJitter(brightness=0.4, contrast=0.4, p=0.8),
        K.RandomSharpness(0.5, p=0.5),
        K.RandomPosterize(bits=(3, 8), p=0.3),
        K.RandomErasing(scale=(0.02, 0.15), ratio=(0.5, 2.0), value=0.5, p=1.0),  # Cutout
    )


def strong_augment(x: torch.Tensor) -> torch.Tensor:
    """A strongly distorted copy of a float batch in [0, 1] (N, C, H, W), drawn per image; the
    result stays in [0, 1] and has ``x``'s shape."""
    if x.ndim != 4:
        raise ValueError(f"strong_augment takes a batch (N, C, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        return _strong()(x).clamp_(0.0, 1.0)
