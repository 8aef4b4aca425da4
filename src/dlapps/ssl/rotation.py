r"""Rotation prediction (Gidaris, Singh & Komodakis, ICLR 2018: "Unsupervised representation
learning by predicting image rotations").

Each image x is turned by k·90°, k ∈ {0, 1, 2, 3}, and the network classifies which turn it saw::

    L = (1/B) Σ_b CE(k_b, h(f(rot(x_b, k_b)))),      pretext_acc = (1/B) Σ_b 1[argmax h(f(·)) = k_b]

with f the shared encoder and h a small head (features → 4 logits). To tell an upright shirt
from a turned one the encoder has to find the object, its parts and their usual orientation,
which is the point of the task; rotations by multiples of 90° are exact on the pixel grid (no
interpolation artefacts that would give the answer away). ``k`` counts *counter-clockwise*
quarter turns, as :func:`torch.rot90` over the (H, W) axes does; turning back by (4 − k) mod 4
recovers the image.

Choices (options ``rotation.*``):

* ``all_rotations`` (default false): false draws one random k per image per step (one encoder
  pass per image, like every other method here, so methods are compared at equal cost); true
  feeds all four rotations of every image in the same step (4× the encoder passes). The paper
  found the latter better ("feed the network with all four rotated copies of an image
  simultaneously instead of each time randomly sampling a single rotation"), at 4× the cost.
* ``hidden`` (default 256): the head is Linear(D → hidden) → BN → ReLU → Linear(hidden → 4);
  0 gives a linear head. A non-linear head keeps the encoder's last features less specific to
  rotation (the features a linear probe then reads).

Images must be square (a quarter turn of a non-square image changes its shape); the experiment's
images always are, and :func:`rotate_batch` refuses others.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError
from dlapps.ssl.base import MIN_SIDE, Encoder, PretrainInfo, SslMethod, check_whole

#: the number of classes of the pretext task: 0°, 90°, 180°, 270°
ROTATIONS = 4


def rotate_batch(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Image b of a square batch (N, C, S, S) turned k[b]·90° counter-clockwise (k ∈ 0..3, a
    LongTensor (N,)): :func:`torch.rot90` over the last two axes, applied once per value of k
    (four batched calls, no loop over images)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotate_batch needs square images, got {tuple(x.shape)}")
    if k.shape != x.shape[:1]:
        raise ValueError(f"rotate_batch needs one k per image: {tuple(k.shape)} for {tuple(x.shape)}")
    k = k.to(x.device)
    out = torch.empty_like(x)
    for r in range(ROTATIONS):
        sel = k == r
        out[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
    return out


def rotation_labels(n: int, all_rotations: bool) -> torch.Tensor:
    """The k of each rotated copy: one random k per image (n,), drawn from torch's global RNG,
    or, with ``all_rotations``, 0 for the first n copies, 1 for the next n, ... (4n,)."""
    if all_rotations:
        return torch.arange(ROTATIONS).repeat_interleave(n)
    return torch.randint(0, ROTATIONS, (n,))


def mlp_head(dim: int, hidden: int, out: int) -> nn.Module:
    """Linear(dim → hidden) → BN → ReLU → Linear(hidden → out); a linear layer when hidden = 0."""
    if hidden <= 0:
        return nn.Linear(dim, out)
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out))


class Rotation(SslMethod):
    name = "rotation"
    description = "predict which of 4 quarter turns an image was given (Gidaris et al. 2018)"
    family = "pretext"
    options = {"all_rotations": False, "hidden": 256}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.all_rotations = bool(self.option("all_rotations"))
        self.head = mlp_head(encoder.dim, int(self.option("hidden")), ROTATIONS)

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        if not isinstance(options.get("all_rotations"), bool):
            raise ConfigError(f"rotation.all_rotations must be true or false, got "
                              f"{options.get('all_rotations')!r}; use --option rotation.all_rotations=true")
        check_whole(cls.name, "hidden", options.get("hidden"), 0, hint=" (0: a linear head)")
        if size < MIN_SIDE:
            raise ConfigError(f"rotation needs images of side ≥ {MIN_SIDE}: got {size}; use --image-size 28")

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        k = rotation_labels(len(x), self.all_rotations).to(x.device)
        if self.all_rotations:
            x = x.repeat(ROTATIONS, 1, 1, 1)
        logits = self.head(self.encoder(rotate_batch(x, k)))
        loss = F.cross_entropy(logits, k)
        return {"loss": loss, "pretext_acc": (logits.argmax(1) == k).float().mean()}
