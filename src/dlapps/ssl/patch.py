r"""Relative patch position (Doersch, Gupta & Efros, ICCV 2015: "Unsupervised visual
representation learning by context prediction").

A 3×3 grid is laid over the image; the centre patch and one of its 8 neighbours, drawn at random,
go through the shared encoder f, and a head h on the pair's concatenated features says where the
neighbour lies (8 classes: up-left, up, up-right, left, right, down-left, down, down-right, in
that order, labels 0..7)::

    L = (1/B) Σ_b CE(ℓ_b, h([f(P_centre,b), f(P_ℓ_b,b)])),    pretext_acc = mean 1[argmax h = ℓ_b]

To answer, the encoder has to recognise parts (a collar is above a sleeve) rather than follow
low-level cues, so the paper keeps the answer out of the pixels: a gap between patches and a
random jitter of each patch inside its cell, so that lines running across the border and exact
edge alignment do not give the position away.

Geometry, for an image of side S: cells of side s = ⌊S/3⌋; patches of side p = s − ``gap``;
the 3s × 3s grid is placed at a random origin in the image (0..S − 3s px on each axis: 0 or 1
on 28 px) and every patch at a random offset of 0..``gap`` px inside its cell, so that two
neighbouring patches are 0..2·gap px apart (gap px on average) and never overlap. The paper's
96-px patches had 48 px between them and up to 7 px of jitter; the encoder here needs patches of
at least 8 px (:data:`~dlapps.ssl.base.MIN_SIDE`), so on 28 px images (s = 9) the default
``gap`` = 1 gives 8-px patches, 0–2 px apart: the gap is as wide as the image allows, and the
jitter alone keeps the edges from lining up exactly. (The paper's other shortcut, chromatic
aberration, concerns photographs; the default data is grey.)

Options (``relative-patch.*``): ``gap`` (default 1 px) and ``hidden`` (default 256 = 2·D at the
default width): the head is Linear(2D → hidden) → BN → ReLU → Linear(hidden → 8), the paper's
late fusion of the two patches' features. Both patches of every image go through the encoder
in one call (2 passes on 8×8 patches per image: fewer pixels than one 28×28 image).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dlapps.errors import ConfigError
from dlapps.ssl.base import MIN_SIDE, Encoder, PretrainInfo, SslMethod, check_whole
from dlapps.ssl.rotation import mlp_head

#: the 3×3 grid cells (raster order, 4 is the centre) of labels 0..7
NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)
CENTRE = 4


def patch_side(size: int, gap: int) -> int:
    """The side of each patch of a 3×3 grid over an image of side ``size``: ⌊size/3⌋ − gap."""
    return size // 3 - gap


def require_grid(method: str, size: int, gap: int, setting: str) -> None:
    """Raise :class:`ConfigError` when a 3×3 grid of patches of side ⌊size/3⌋ − gap would give
    patches smaller than the encoder reads (:data:`~dlapps.ssl.base.MIN_SIDE`)."""
    if patch_side(size, gap) >= MIN_SIDE:
        return
    need = 3 * (MIN_SIDE + gap)
    fit = min((s for s in (28, 32, 48, 64, 96, 128, 256) if s >= need), default=need)
    raise ConfigError(f"{method} needs images of side ≥ {need} (3 cells of ≥ {MIN_SIDE + gap} px with "
                      f"{setting} {gap}): got {size}; use --image-size {fit}")


def grid_tiles(x: torch.Tensor, gap: int) -> torch.Tensor:
    """The 9 patches of a 3×3 grid over each image (N, C, H, W) → (N, 9, C, p, p), raster order,
    p = ⌊min(H, W)/3⌋ − gap. The grid is placed at a random origin (0..H − 3s, 0..W − 3s) and each
    patch at a random offset 0..gap inside its cell (per image and patch, from torch's global
    RNG); all patches are read in one gather."""
    n, _, h, w = x.shape
    s = min(h, w) // 3
    p = s - gap
    if gap < 0 or p < 1:
        raise ValueError(f"a 3×3 grid with gap {gap} does not fit images of {h}×{w}")
    origin = torch.stack([torch.randint(0, h - 3 * s + 1, (n,)), torch.randint(0, w - 3 * s + 1, (n,))], 1)
    offset = torch.randint(0, gap + 1, (n, 9, 2))
    cell = torch.arange(9)
    top = origin[:, None, 0] + (cell // 3) * s + offset[..., 0]  # (N, 9)
    left = origin[:, None, 1] + (cell % 3) * s + offset[..., 1]
    steps = torch.arange(p)
    rows = (top[..., None] + steps).to(x.device)  # (N, 9, p)
    cols = (left[..., None] + steps).to(x.device)
    b = torch.arange(n, device=x.device)[:, None, None, None]
    # advanced indices around a slice: the broadcast index dims come first → (N, 9, p, p, C)
    tiles = x[b, :, rows[..., :, None], cols[..., None, :]]
    return tiles.permute(0, 1, 4, 2, 3)


def sample_patches(x: torch.Tensor, gap: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image the centre patch, one of its 8 neighbours drawn at random, and the neighbour's
    label ℓ ∈ 0..7 (its cell is :data:`NEIGHBOURS`[ℓ]): (N, C, p, p), (N, C, p, p), (N,)."""
    tiles = grid_tiles(x, gap)
    label = torch.randint(0, len(NEIGHBOURS), (len(x),)).to(x.device)
    cells = torch.tensor(NEIGHBOURS, device=x.device)[label]
    rows = torch.arange(len(x), device=x.device)
    return tiles[:, CENTRE], tiles[rows, cells], label


class RelativePatch(SslMethod):
    name = "relative-patch"
    description = "predict where a patch lies around the centre one, 8 ways (Doersch et al. 2015)"
    family = "pretext"
    options = {"gap": 1, "hidden": 256}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.gap = int(self.option("gap"))
        self.head = mlp_head(2 * encoder.dim, int(self.option("hidden")), len(NEIGHBOURS))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        check_whole(cls.name, "gap", options.get("gap"), 0, unit=" of pixels")
        check_whole(cls.name, "hidden", options.get("hidden"), 1)
        require_grid(cls.name, size, options["gap"], "gap")

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        centre, neighbour, label = sample_patches(x, self.gap)
        features = self.encoder(torch.cat([centre, neighbour]))
        logits = self.head(torch.cat(features.chunk(2), dim=1))
        loss = F.cross_entropy(logits, label)
        return {"loss": loss, "pretext_acc": (logits.argmax(1) == label).float().mean()}
