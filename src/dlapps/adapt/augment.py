"""Batched image perturbations for the methods that train on a perturbed view of the target.

They work on whole batches of tensors (no per-sample PIL) and draw from torch's global RNG, so a
seeded run, and a resumed one (the engine checkpoints the RNG), draws the same perturbations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
