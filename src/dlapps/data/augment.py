"""Batched image perturbations: the weak and strong views of semi-supervised learning and of
domain adaptation's self-training.

* :func:`random_translate` — FixMatch's *weak* augmentation for digits (Sohn et al. 2020: shifts
  of up to 12.5% of the side; no flips, which would turn digits into other symbols).
* :func:`strong_augment` — FixMatch's *strong* view: RandAugment-style distortions drawn per image
  (affine: rotation, shear, scale, translation; brightness/contrast; sharpness; posterize) and
  then Cutout, built from kornia's batched augmentations (parameters drawn per sample, all on the
  tensor's device).
* :func:`contrastive_view` — SimCLR's view (Chen et al. 2020), shared by the contrastive
  self-supervised methods (SimCLR, MoCo v2): two calls give an image's two views.

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


@functools.cache
def _contrastive(channels: int, height: int, width: int) -> nn.Module:
    import kornia.augmentation as K

    steps: list[nn.Module] = [
        # resample: one batched affine warp for the whole batch (slice loops over the images)
        K.RandomResizedCrop((height, width), scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3),
                            cropping_mode="resample"),
        K.RandomHorizontalFlip(p=0.5),
    ]
    if channels == 3:
        steps += [K.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
                  K.RandomGrayscale(p=0.2)]
    else:  # saturation, hue and grey-scale mean nothing on one channel
        steps.append(K.ColorJitter(brightness=0.4, contrast=0.4, p=0.8))
    return K.AugmentationSequential(*steps)


def contrastive_view(x: torch.Tensor) -> torch.Tensor:
    """One random view of each image of a float batch in [0, 1] (N, C, H, W), drawn per image:
    SimCLR's augmentation (Chen et al. 2020, appendix A), sized for 28×28 images. Two calls
    give the two views of a positive pair. The result has ``x``'s shape and stays in [0, 1].

    Chen et al.'s list, and what is kept:

    * random crop (area 8–100%, aspect 3/4–4/3) resized back to the side, and a horizontal flip
      (p = ½): kept, with the area drawn in **30–100%** — 8% of a 28×28 image is an 8×8 patch, a
      piece of a sleeve or a sole that no longer says which garment it is (Fashion-MNIST has
      no background to spare; CIFAR re-implementations use 20–100% on 32×32). Flips keep a
      garment a garment (they would not keep a digit a digit).
    * colour jitter, p = 0.8, strength s = 0.5 (their CIFAR-10 value): brightness, contrast,
      saturation 0.8·s = 0.4, hue 0.2·s = 0.1; on one channel only brightness and contrast.
    * random grey-scale, p = 0.2: RGB only (a grey image already is).
    * Gaussian blur: left out, as Chen et al. leave it out on 32×32 CIFAR-10 — on 28 pixels a
      blur wipes the texture the crops leave.

    Draws come from torch's global RNG, so ``torch.manual_seed`` reproduces them.
    """
    if x.ndim != 4:
        raise ValueError(f"contrastive_view takes a batch (N, C, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        return _contrastive(x.shape[1], x.shape[2], x.shape[3])(x).clamp_(0.0, 1.0)
