r"""The variational auto-encoder (Kingma & Welling 2014), its β and conditional forms, and the
IWAE bound (Burda, Grosse & Salakhutdinov 2016) on the test log-likelihood.

A latent variable model p(x, z) = p(x | z) p(z) with prior p(z) = N(0, I) (nz dimensions) and a
decoder p(x | z) — here every pixel Bernoulli, p(x_j = 1 | z) = sigmoid(logit_j(z)). The
posterior p(z | x) is intractable; an encoder q(z | x) = N(μ(x), diag σ²(x)) approximates it,
and both are trained on the evidence lower bound (ELBO)::

    log p(x) ≥ ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ N(0, I))
    KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)                 (closed form, summed over the nz dims)
    −log p(x | z) = Σ_pixels BCE(logit(z), x)               (the reconstruction term "rec")

The expectation is estimated with one sample drawn by the reparameterisation
z = μ + σ · ε, ε ~ N(0, I), so the gradient reaches μ and σ through z. The loss of one image is
rec + β · KL: β = 1 is the negative ELBO, β > 1 the β-VAE (Higgins et al. 2017), which pulls q
harder towards the prior (smoother, more disentangled latents, blurrier reconstructions).

The conditional VAE (Sohn et al. 2015) conditions both sides on the class y: the encoder sees x
stacked with K constant one-hot maps (like the conditional DCGAN discriminator), the decoder
[z, onehot(y)], so p(x | z, y) and q(z | x, y); z is left to carry the style.

Test log-likelihood: the importance-weighted bound with k samples z_i ~ q(z | x),

    L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i | x)],   L_1 = ELBO ≤ L_k ≤ L_{k+1} ≤ log p(x),

computed with log-sum-exp over log w_i = log p(x | z_i) + log p(z_i) − log q(z_i | x); L_k tends
to log p(x) as k grows.

Pixels are dynamically binarised (Salakhutdinov & Murray 2008): each training step draws fresh
binary images x ~ Bernoulli(pixel intensity in [0, 1]), so the Bernoulli likelihood is a proper
discrete one and the ELBO and L_k are log-probabilities in nats per image (a 32x32 image coded
at 1 bit per pixel costs 1024 · ln 2 ≈ 710 nats). The test images are binarised once, with a
seeded generator, so every bound of a model is measured on the same binary images.

Networks (w = ``width``; no batch norm, so train and eval mode compute the same function)::

    encoder: [x, onehot maps] → Conv(→w,4,2,1)+LReLU(0.2) → Conv(→2w)+LReLU → Conv(→4w)+LReLU
             [→ Conv(→4w)+LReLU at 64x64] → flatten → Linear(→2nz) = (μ, log σ²)
    decoder: [z, onehot(y)] → Linear(→4w·4·4)+ReLU → ConvT(→2w,4,2,1)+ReLU → ConvT(→w)+ReLU
             [→ ConvT(→w)+ReLU at 64x64] → ConvT(→nc) = logits

:func:`vae_trainer` trains it on the engine like :func:`~dlapps.generate.gan.gan_trainer` a GAN
(resumable checkpoint per epoch, per-epoch sample grid, ``config.json``), and
:meth:`VAE.generator` wraps the decoder as a generator z ↦ 2·sigmoid(logits) − 1 (the Bernoulli
mean in [-1, 1]), so the GAN's sampling, interpolation and quality metrics apply unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.engine.batches import eval_mode, to_float
from dlapps.engine.trainer import Step, Trainer
from dlapps.errors import ConfigError
from dlapps.generate.config import VaeConfig
from dlapps.generate.data import GanData, to_uint8
from dlapps.generate.gan import fixed_inputs, model_trainer, read_run

IWAE_BATCH = 2048  # (image, z) pairs per decoder pass at 32x32 (peak ~310 MB at width 32); 1/4 at 64x64


def binarize(x01: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli draw of every pixel: 1 with probability x (float in [0, 1], or uint8 / 255)."""
    return torch.bernoulli(to_float(x01), generator=generator)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = μ + σ · ε with σ = exp(½ log σ²) and ε ~ N(0, I) (drawn unless given)."""
    return mu + (0.5 * logvar).exp() * (torch.randn_like(mu) if eps is None else eps)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ² + σ² − 1 − log σ²) per row: shape (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def _onehot(y: torch.Tensor | None, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    if y is None:
        raise ConfigError("this VAE is conditional: give class labels y")
    return F.one_hot(y, n_classes).to(dtype)


def _widths(width: int, size: int) -> list[int]:
    """The encoder's channels per stride-2 block, down to a 4x4 map (the decoder's reversed)."""
    return [width, 2 * width, 4 * width] + [4 * width] * (size == 64)


class Encoder(nn.Module):
    """q(z | x[, y]): images in [0, 1] (B, nc, s, s) -> (μ, log σ²), each (B, nz)."""

    def __init__(self, nz: int, width: int, nc: int, size: int, n_classes: int = 0) -> None:
        super().__init__()
        self.n_classes = n_classes
        layers: list[nn.Module] = []
        c = nc + n_classes
        for w in _widths(width, size):
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # side halves
            c = w
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 4 * 4, 2 * nz))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_classes:
            maps = _onehot(y, self.n_classes, x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], 1)
        mu, logvar = self.net(x).chunk(2, 1)
        return mu, logvar


class Decoder(nn.Module):
    """p(x | z[, y]): z (B, nz) -> Bernoulli logits (B, nc, s, s)."""

    def __init__(self, nz: int, width: int, nc: int, size: int, n_classes: int = 0) -> None:
        super().__init__()
        self.nz, self.n_classes = nz, n_classes
        widths = _widths(width, size)[::-1]
        layers: list[nn.Module] = [nn.Linear(nz + n_classes, widths[0] * 4 * 4), nn.ReLU(True),
                                   nn.Unflatten(1, (widths[0], 4, 4))]
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU(True)]  # side doubles
        self.net = nn.Sequential(*layers, nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, _onehot(y, self.n_classes, z.dtype)], 1)
        return self.net(z)


class BernoulliMean(nn.Module):
    """The decoder as a generator: G(z[, y]) = 2·sigmoid(logits) − 1 in [-1, 1] (the Bernoulli
    mean), with the ``nz`` and ``n_classes`` a DCGAN Generator has. Holds the VAE's own decoder."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder
        self.nz, self.n_classes = decoder.nz, decoder.n_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z, y)).mul(2).sub(1)


def _rec(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x | z) of binary images: the pixels' BCE summed per image (nats), shape (B,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _normal(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator).to(like)


class VAE(nn.Module):
    """Encoder and decoder of one (conditional when ``n_classes`` > 0) VAE; see the module's docstring."""

    manual_optimization = True

    def __init__(self, config: VaeConfig, n_classes: int = 0) -> None:
        super().__init__()
        config.validate()
        self.nz, self.n_classes, self.beta = config.nz, n_classes, config.beta
        args = (config.nz, config.width, config.channels, config.size, n_classes)
        self.encoder, self.decoder = Encoder(*args), Decoder(*args)

    def encode(self, x01: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z | x[, y])."""
        return self.encoder(x01, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The Bernoulli logits of p(x | z[, y])."""
        return self.decoder(z, y)

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(rec, KL) per image of binary images ``x``, with one z = μ + σ·ε (ε from ``generator``
        when given, else the global RNG): −ELBO = rec + KL."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, _normal(mu.shape, mu, generator))
        return _rec(self.decode(z, y), x), kl_standard_normal(mu, logvar)

    def optimizers(self, config: VaeConfig) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.parameters(), config.lr)}

    def training_step(self, batch: tuple, progress: float, step: Step) -> dict[str, float]:
        """One Adam step on mean(rec + β·KL) of a freshly binarised batch ``(x in [0, 1], y, ...)``."""
        x = binarize(batch[0])  # the global RNG, which the checkpoint carries
        rec, kl = self.terms(x, batch[1])
        loss = (rec + self.beta * kl).mean()
        step.optimize("main", loss, loss=loss)
        rec, kl = rec.mean().item(), kl.mean().item()
        return {"loss": loss.item(), "rec": rec, "kl": kl, "elbo": -(rec + kl)}

    def generator(self) -> BernoulliMean:
        """z[, y] ↦ the Bernoulli mean in [-1, 1], on this VAE's own decoder (shared weights)."""
        return BernoulliMean(self.decoder)


def _test_images(x01: torch.Tensor, y: torch.Tensor | None,
                 seed: int) -> tuple[torch.Generator, torch.Tensor]:
    """The seeded generator and the test images binarised with it (the same for every bound)."""
    if y is not None and len(y) != len(x01):
        raise ConfigError(f"{len(x01)} images but {len(y)} labels")
    generator = torch.Generator().manual_seed(seed)
    return generator, binarize(x01.cpu(), generator)


def _chunks(x: torch.Tensor, y: torch.Tensor | None, size: int, device: torch.device):
    for i in range(0, len(x), size):
        yield x[i:i + size].to(device), None if y is None else y[i:i + size].to(device)


@torch.no_grad()
def test_elbo(vae: VAE, x01: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0,
              batch: int = 500) -> float:
    """The mean ELBO (nats per image) of the test images binarised with ``seed``: one z each,
    the KL in closed form."""
    generator, x = _test_images(x01, y, seed)
    device = next(vae.parameters()).device
    total = 0.0
    with eval_mode(vae):
        for xb, yb in _chunks(x, y, batch, device):
            rec, kl = vae.terms(xb, yb, generator)
            total -= (rec + kl).sum().item()
    return total / len(x)


test_elbo.__test__ = False  # a metric, not a test: pytest must not collect it where it is imported


@torch.no_grad()
def iwae_bound(vae: VAE, x01: torch.Tensor, y: torch.Tensor | None = None, k: int = 1000, seed: int = 0,
               batch: int | None = None) -> float:
    """The mean L_k (nats per image) of the test images binarised with ``seed`` (the images
    :func:`test_elbo` scores), decoding at most ``batch`` (image, z) pairs at a time (default
    :data:`IWAE_BATCH` scaled to the image area)."""
    if batch is None:
        batch = max(1, IWAE_BATCH * 32 * 32 // (x01.shape[-1] * x01.shape[-2]))
    if k < 1 or batch < 1:
        raise ConfigError(f"need k >= 1 samples and a batch >= 1, got {k} and {batch}")
    generator, x = _test_images(x01, y, seed)
    device = next(vae.parameters()).device
    total = 0.0
    with eval_mode(vae):
        for xb, yb in _chunks(x, y, max(1, batch // k), device):
            mu, logvar = vae.encode(xb, yb)
            eps_all = _normal((k, *mu.shape), mu, generator)  # (k, b, nz): b·k ≤ max(batch, k)
            log_w = []
            for eps in eps_all.split(max(1, batch // len(xb))):  # (s, b, nz) per decoder pass
                z = reparameterize(mu, logvar, eps)
                ys = None if yb is None else yb.repeat(len(z))
                rec = _rec(vae.decode(z.flatten(0, 1), ys), xb.repeat(len(z), 1, 1, 1)).view(len(z), -1)
                # log p(z) − log q(z | x) = Σ_j ½ (ε_j² − z_j² + log σ_j²)
                log_w.append(0.5 * (eps.pow(2) - z.pow(2) + logvar).sum(2) - rec)
            total += (torch.logsumexp(torch.cat(log_w), 0) - math.log(k)).sum().item()
    return total / len(x)


@torch.no_grad()
def reconstruction_grid(vae: VAE, x01: torch.Tensor, y: torch.Tensor | None = None, n: int = 10,
                        seed: int = 0) -> torch.Tensor:
    """uint8 (2n, C, H, W): ``n`` test images binarised with ``seed``, then their reconstructions
    sigmoid(decode(μ)) (the Bernoulli mean at the posterior mean)."""
    if not 1 <= n <= len(x01):
        raise ConfigError(f"n must lie in [1, {len(x01)}] (the images given), got {n}")
    _, x = _test_images(x01[:n], None if y is None else y[:n], seed)
    device = next(vae.parameters()).device
    yb = None if y is None else y[:n].to(device)
    with eval_mode(vae):
        mu, _ = vae.encode(x.to(device), yb)
        mean = torch.sigmoid(vae.decode(mu, yb)).cpu()
    return to_uint8(torch.cat([x, mean]).mul(2).sub(1))


def vae_trainer(config: VaeConfig, data: GanData, run_dir: Path, *, progress: bool = True,
                device: torch.device | None = None, tensorboard: bool = True) -> Trainer:
    """:func:`~dlapps.generate.gan.model_trainer` for one VAE: every binarisation and every ε is a
    function of the seed; per epoch a grid of the decoder's samples of a fixed noise."""
    return model_trainer(lambda n: VAE(config, n), config, data, run_dir, lambda vae, _: vae.generator(),
                         fixed_inputs, progress=progress, device=device, tensorboard=tensorboard)


def load_vae(run_dir: Path) -> tuple[VAE, VaeConfig, dict]:
    """The VAE of a trained run (its ``config.json`` + ``checkpoint.pt``), in eval mode, on the
    CPU, with the config and the checkpoint."""
    config, state = read_run(run_dir, VaeConfig, "VAE")
    weights = state["module"]
    n_classes = weights["decoder.net.0.weight"].shape[1] - config.nz  # the decoder reads [z, onehot(y)]
    vae = VAE(config, n_classes)
    vae.load_state_dict({k: v.cpu() for k, v in weights.items()})
    return vae.eval(), config, state
