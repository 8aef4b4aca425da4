"""The settings of one GAN training run: :class:`GanConfig`, saved as ``config.json``.

``dlapps gan train --config FILE`` (and ``dlapps gan``, ``dlapps gan compare``) read one back
through :func:`dlapps.config.merge`; given options override it. The fingerprint leaves out the
number of epochs, so a finished run can be trained further from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import ClassVar

from dlapps.errors import ConfigError, UnknownNameError
from dlapps.generate.dcgan import INITS, SIZES
from dlapps.generate.losses import is_nonsaturating


@dataclass
class GanConfig:
    """Everything that defines one GAN training run (saved as ``config.json``)."""

    kind: ClassVar[str] = "generate"

    data: str = "mnist5k"
    size: int = 32
    channels: int = 1
    conditional: bool = False
    d_conditional: bool = True  # False: the cD(x) ablation (G gets y, D does not)
    nz: int = 100
    ngf: int = 32
    ndf: int = 32
    init: str = "dcgan"
    loss: str = "nonsat"
    batch_size: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1_g: float = 0.5
    beta1_d: float = 0.5
    epochs: int = 5
    seed: int = 0
    # G and D in the channels_last memory format: 1.27x the DCGAN step on a CPU
    # (bench/results/peers.md); a speed setting, left out of the fingerprint
    channels_last: bool = True

    def validate(self) -> GanConfig:
        if self.size not in SIZES:
            raise ConfigError(f"--size must be one of {SIZES}, got {self.size}")
        if self.init not in INITS:
            raise ConfigError(f"--init must be one of {INITS}, got {self.init!r}")
        is_nonsaturating(self.loss)
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError(f"need epochs >= 1 and batch size >= 2, got {self.epochs}, {self.batch_size}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("beta1_g", "beta1_d"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not self.conditional and not self.d_conditional:
            raise ConfigError("D without y (--cdx, d_conditional=false) only makes sense for a conditional "
                              "GAN (--conditional)")
        return self

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: everything but the number of epochs and the
        memory format."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("epochs", "channels_last")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _check_common(config) -> None:
    """What every generative model's config shares: size, epochs, batch, learning rate."""
    if config.size not in SIZES:
        raise ConfigError(f"--size must be one of {SIZES}, got {config.size}")
    if config.epochs < 1 or config.batch_size < 2:
        raise ConfigError(f"need epochs >= 1 and batch size >= 2, got {config.epochs}, {config.batch_size}")
    if not config.lr > 0:
        raise ConfigError(f"lr must be positive, got {config.lr}")


def _fingerprint(config) -> str:
    fields = {k: v for k, v in asdict(config).items() if k != "epochs"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class VaeConfig:
    """One VAE (or conditional VAE) training run (Kingma & Welling 2014); see vae.py.

    Pixels are dynamically binarised (a fresh Bernoulli draw of every training image per step)
    and modelled as Bernoulli, so the ELBO and the IWAE bound are in nats per image."""

    kind: ClassVar[str] = "generate"

    model: str = "vae"
    data: str = "mnist5k"
    size: int = 32
    channels: int = 1
    conditional: bool = False
    nz: int = 16
    width: int = 32
    beta: float = 1.0  # β-VAE: loss = reconstruction + β·KL (β = 1: the ELBO)
    batch_size: int = 64
    lr: float = 1e-3
    epochs: int = 20
    iwae_k: int = 100  # importance samples of the test log-likelihood bound (Burda et al.: 5,000)
    eval_images: int = 1000  # test images the ELBO and the IWAE bound are averaged over
    seed: int = 0

    def validate(self) -> VaeConfig:
        _check_common(self)
        if self.model != "vae":
            raise ConfigError(f"a VaeConfig has model 'vae', got {self.model!r}")
        if self.nz < 1 or self.width < 1:
            raise ConfigError(f"nz and width must be at least 1, got {self.nz}, {self.width}")
        if not self.beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.iwae_k < 1 or self.eval_images < 1:
            raise ConfigError(f"iwae_k and eval_images must be at least 1, got {self.iwae_k}, "
                              f"{self.eval_images}")
        return self

    def fingerprint(self) -> str:
        return _fingerprint(self)


DDPM_SCHEDULES = ("linear", "cosine")
DDPM_SAMPLERS = ("ddim", "ddpm")


@dataclass
class DdpmConfig:
    """One DDPM (or class-conditional DDPM with classifier-free guidance) run (Ho et al. 2020);
    see ddpm.py for the math and the sampler."""

    kind: ClassVar[str] = "generate"

    model: str = "ddpm"
    data: str = "mnist5k"
    size: int = 32
    channels: int = 1
    conditional: bool = False
    timesteps: int = 1000  # T
    schedule: str = "linear"  # linear (Ho et al.) or cosine (Nichol & Dhariwal 2021)
    beta_start: float = 1e-4  # β_1 of the linear schedule
    beta_end: float = 0.02  # β_T of the linear schedule
    width: int = 32  # the U-Net's channels at its first resolution (x1, x2, x2 below)
    patch: int = 2  # pixels folded into channels before the U-Net (2: 1x32x32 -> 4x16x16)
    p_uncond: float = 0.1  # conditional: labels dropped to the null class in training (CFG)
    guidance: float = 3.0  # conditional: ε = ε(x, ∅) + s·(ε(x, y) − ε(x, ∅)); 1 = no guidance
    sampler: str = "ddim"  # what the metrics sample with: ddim (η = 0) or ddpm (ancestral)
    sample_steps: int = 50  # DDIM steps (ancestral sampling always takes T)
    ema: float = 0.999  # decay of the weights' exponential average sampled from (0: none)
    batch_size: int = 64
    lr: float = 1e-3
    epochs: int = 20
    seed: int = 0

    def validate(self) -> DdpmConfig:
        _check_common(self)
        if self.model != "ddpm":
            raise ConfigError(f"a DdpmConfig has model 'ddpm', got {self.model!r}")
        if self.timesteps < 2:
            raise ConfigError(f"a diffusion needs T >= 2 steps, got {self.timesteps}")
        if self.schedule not in DDPM_SCHEDULES:
            raise UnknownNameError("noise schedule", self.schedule, DDPM_SCHEDULES)
        if self.sampler not in DDPM_SAMPLERS:
            raise UnknownNameError("sampler", self.sampler, DDPM_SAMPLERS)
        if not (0 < self.beta_start < 1 and 0 < self.beta_end < 1 and self.beta_start <= self.beta_end):
            raise ConfigError(f"β endpoints must satisfy 0 < beta_start <= beta_end < 1, got "
                              f"{self.beta_start}, {self.beta_end}")
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ConfigError(f"sample_steps must lie in [1, T={self.timesteps}], got {self.sample_steps}")
        if not self.guidance >= 0:
            raise ConfigError(f"the guidance scale must be >= 0, got {self.guidance}")
        if not 0 <= self.p_uncond < 1:
            raise ConfigError(f"p_uncond must lie in [0, 1), got {self.p_uncond}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must lie in [0, 1), got {self.ema}")
        if self.width < 8 or self.width % 8:
            raise ConfigError(f"the U-Net width must be a multiple of 8 (its group norm), got {self.width}")
        return self

    def fingerprint(self) -> str:
        return _fingerprint(self)
