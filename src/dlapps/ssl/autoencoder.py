r"""Autoencoders that must fill in what was taken away: denoising (Vincent et al., ICML 2008:
"Extracting and composing robust features with denoising autoencoders") and inpainting
(Pathak et al., CVPR 2016: "Context encoders: feature learning by inpainting").

Both corrupt the image, x̃ = c(x), encode the corrupted image with the shared encoder f, and
decode the clean one from the code alone::

    x̂ = g(f(x̃)),    L = ‖x̂ − x‖² (averaged)

**The code is the bottleneck**: the decoder g reads only the encoder's pooled feature vector
f(x̃) ∈ ℝᴰ — the very features that are judged (linear probe, k-NN, fine-tuning) — never the
encoder's spatial map, so everything the decoder needs has to pass through them. g is
Linear(D → 64·m·m) → ReLU → a (64, m, m) map, m = ⌈S/4⌉ (7 on 28 px) → ConvTranspose(64 → 32,
4, stride 2) → BN → ReLU → ConvTranspose(32 → C, 4, stride 2) (side 4m) → bilinear resize to
S when S is not a multiple of 4 → sigmoid (pixels in [0, 1]). The decoder is thrown away after
pretraining; only ``self.encoder`` is kept.

* :class:`DenoisingAE` (``denoising-ae``): the corruption is additive Gaussian noise,
  x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I) (``noise`` = "gaussian", ``sigma`` default 0.3: strong
  enough that the identity is no answer, weak enough that a garment stays legible), or Vincent
  et al.'s masking noise (``noise`` = "mask"): each pixel (all its channels together) is set
  to 0 with probability ``drop`` (default 0.25). Clipping keeps x̃ in the encoder's input range.
  The loss is the MSE over the whole image; "recon_mse" logs it.
* :class:`InpaintingAE` (``inpainting-ae``): a square hole of side h = round(``hole``·S)
  (default ``hole`` = 0.33: 9 px on 28) at a random place in each image is filled with 0.5 (the
  middle grey, as the context encoder fills its hole with the mean pixel value); the loss is
  the MSE inside the hole plus ``outside_weight`` (default 0.1) times the MSE outside it, as the
  context encoder weights its reconstruction loss mostly on the missing region (its adversarial
  term, which sharpens the fill, is left out: the features are judged, not the fill).
  "recon_mse" logs the MSE inside the hole, what the task is about.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError
from dlapps.ssl.base import MIN_SIDE, Encoder, PretrainInfo, SslMethod

NOISES = ("gaussian", "mask")


class Decoder(nn.Module):
    """A feature vector (N, D) → an image (N, C, S, S) in [0, 1]; see the module docstring."""

    def __init__(self, dim: int, channels: int, size: int, width: int = 64) -> None:
        super().__init__()
        self.size, self.width, self.m = size, width, max(1, math.ceil(size / 4))
        self.fc = nn.Sequential(nn.Linear(dim, width * self.m * self.m), nn.ReLU(inplace=True))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width // 2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width // 2, channels, 4, stride=2, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.up(self.fc(z).view(len(z), self.width, self.m, self.m))
        if y.shape[-1] != self.size:
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(y)


def add_noise(x: torch.Tensor, noise: str, sigma: float = 0.3, drop: float = 0.25) -> torch.Tensor:
    """The denoising autoencoder's corruption of a batch in [0, 1]: clip(x + σ ε, 0, 1)
    ("gaussian") or each pixel, all channels together, zeroed with probability ``drop``
    ("mask"). Draws from torch's global RNG (on the CPU, then moved: the same on any device)."""
    if noise == "gaussian":
        return (x + sigma * torch.randn(x.shape).to(x.device, x.dtype)).clamp(0.0, 1.0)
    if noise == "mask":
        n, _, h, w = x.shape
        keep = (torch.rand(n, 1, h, w) >= drop).to(x.device, x.dtype)
        return x * keep
    raise ValueError(f"unknown noise {noise!r}: one of {', '.join(NOISES)}")


def hole_side(size: int, hole: float) -> int:
    """The side of the inpainting hole: round(hole · size), at least 1 px."""
    return max(1, round(hole * size))


def random_square_mask(n: int, size: int, side: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 1, size, size) bool: one side×side square of True per image, at a uniformly random
    place fully inside it (from torch's global RNG)."""
    top = torch.randint(0, size - side + 1, (n, 1, 1, 1)).to(device)
    left = torch.randint(0, size - side + 1, (n, 1, 1, 1)).to(device)
    grid = torch.arange(size, device=device)
    rows = (grid.view(1, 1, -1, 1) >= top) & (grid.view(1, 1, -1, 1) < top + side)
    cols = (grid.view(1, 1, 1, -1) >= left) & (grid.view(1, 1, 1, -1) < left + side)
    return rows & cols


def _number(options: dict[str, Any], key: str) -> float:
    value = options.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return float(value)


class ReconstructionAE(SslMethod):
    """Common base: the shared encoder, a :class:`Decoder` from its code, and the side check."""

    family = "pretext"

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.decoder = Decoder(encoder.dim, info.channels, info.size)

    def reconstruct(self, x_corrupted: torch.Tensor) -> torch.Tensor:
        """g(f(x̃)): the decoder reads only the pooled code."""
        return self.decoder(self.encoder(x_corrupted))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        if size < MIN_SIDE:
            raise ConfigError(f"{cls.name} needs images of side ≥ {MIN_SIDE}: got {size}; "
                              f"use --image-size 28")


class DenoisingAE(ReconstructionAE):
    name = "denoising-ae"
    description = "reconstruct the clean image from the code of a noisy one (Vincent et al. 2008)"
    options = {"noise": "gaussian", "sigma": 0.3, "drop": 0.25}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.noise = str(self.option("noise"))
        self.sigma, self.drop = float(self.option("sigma")), float(self.option("drop"))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        super().check(options, size)
        if options.get("noise") not in NOISES:
            raise ConfigError(f"denoising-ae.noise must be one of {', '.join(NOISES)}, got "
                              f"{options.get('noise')!r}; use --option denoising-ae.noise=gaussian")
        try:
            sigma, drop = _number(options, "sigma"), _number(options, "drop")
        except ConfigError as e:
            raise ConfigError(f"denoising-ae.{e}") from None
        if sigma <= 0:
            raise ConfigError(f"denoising-ae.sigma must be > 0 (the noise's standard deviation), got {sigma}")
        if not 0 < drop < 1:
            raise ConfigError(f"denoising-ae.drop must be a fraction of pixels in (0, 1), got {drop}")

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        recon = self.reconstruct(add_noise(x, self.noise, self.sigma, self.drop))
        loss = F.mse_loss(recon, x)
        return {"loss": loss, "recon_mse": loss.detach()}


class InpaintingAE(ReconstructionAE):
    name = "inpainting-ae"
    description = "fill a square hole from the code of its surroundings (Pathak et al. 2016)"
    options = {"hole": 0.33, "outside_weight": 0.1}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.hole = float(self.option("hole"))
        self.outside_weight = float(self.option("outside_weight"))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        super().check(options, size)
        try:
            hole, weight = _number(options, "hole"), _number(options, "outside_weight")
        except ConfigError as e:
            raise ConfigError(f"inpainting-ae.{e}") from None
        if not 0 < hole < 1:
            raise ConfigError(f"inpainting-ae.hole is the hole's side as a fraction of the image's, "
                              f"in (0, 1): got {hole}; e.g. --option inpainting-ae.hole=0.33")
        if weight < 0:
            raise ConfigError(f"inpainting-ae.outside_weight must be ≥ 0, got {weight}")

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        n, c, h, w = x.shape
        if h != w:
            raise ValueError(f"inpainting-ae needs square images, got {tuple(x.shape)}")
        mask = random_square_mask(n, h, min(hole_side(h, self.hole), h - 1), x.device)
        recon = self.reconstruct(torch.where(mask, 0.5, x))
        err = (recon - x).pow(2)
        inside = mask.to(x.dtype)
        hole_mse = (err * inside).sum() / (inside.sum() * c)
        outside_mse = (err * (1 - inside)).sum() / ((1 - inside).sum() * c)
        loss = hole_mse + self.outside_weight * outside_mse
        return {"loss": loss, "recon_mse": hole_mse.detach(), "outside_mse": outside_mse.detach()}
