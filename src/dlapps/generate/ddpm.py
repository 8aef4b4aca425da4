"""Denoising diffusion (Ho et al. 2020): destroy images with Gaussian noise, learn to undo it.

**Forward process.** A fixed Markov chain adds a little noise per step, with variances β_1 < … < β_T:

    q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I),

and, with α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s, any step in closed form:

    q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I),   i.e.   x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε,  ε ~ N(0, I).

ᾱ_T ≈ 0, so x_T is (almost) pure noise whatever x_0 was.

**Algorithm 1 (training).** x_0 ~ data, t ~ U{1..T}, ε ~ N(0, I); a step of gradient descent on the
simplified loss  ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²:  the network predicts the noise in x_t.

**Algorithm 2 (ancestral sampling).** x_T ~ N(0, I); for t = T … 1, z ~ N(0, I) (z = 0 at t = 1):

    x_{t−1} = 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)) + σ_t z,
    σ_t² = β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t,

the mean and variance of the posterior q(x_{t−1} | x_t, x_0) with x_0 predicted from ε_θ. T steps.

**DDIM** (Song et al. 2021). The same trained ε_θ, a non-Markovian process with the same marginals;
with x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t, from t to any earlier t′:

    x_{t′} = √ᾱ_{t′} x̂_0 + √(1 − ᾱ_{t′} − σ²) ε_θ + σ z,   σ = η √((1 − ᾱ_{t′})/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_{t′})).

η = 0 is deterministic (x_T ↦ x_0 is a function, so interpolating x_T interpolates images), η = 1
with t′ = t − 1 is Algorithm 2; a subsequence of 50 of the 1000 steps gives nearly the same images.

**Schedules.** Linear: β_t from β_1 = 10⁻⁴ to β_T = 0.02 (Ho et al.). Cosine (Nichol & Dhariwal
2021): ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, β_t = 1 − ᾱ_t/ᾱ_{t−1}
clipped at 0.999; it destroys information more evenly over t, where the linear one leaves the last
quarter of the steps nearly pure noise.

**Classifier-free guidance** (Ho & Salimans 2022). One network learns ε(x, y) and ε(x, ∅) (the label
replaced by a null class ∅ with probability p_uncond in training); sampling uses

    ε̃ = ε(x, ∅) + s · (ε(x, y) − ε(x, ∅)),

s = 1 the plain conditional model, s = 0 the unconditional one, s > 1 trades diversity for fidelity.

**The Fourier view.** Natural images' power falls with spatial frequency (≈ 1/f^2); white noise's is
flat. x_t's spectrum is ᾱ_t S(f) + (1 − ᾱ_t), so the signal-to-noise ratio ᾱ_t S(f)/(1 − ᾱ_t) drops
below 1 at high frequencies first: noise drowns fine detail first, and sampling, which runs the
chain backwards, paints coarse shapes first and detail last — an approximate spectral
autoregression (:func:`power_spectrum`).

Timesteps in code are 0-based indices 0..T−1 as in diffusers: index t is the paper's step t + 1
(``alpha_bars[t]`` = Π_{s≤t} α_s); the data x_0 sits before index 0, where ᾱ = 1.

:class:`DDPM` is the module the engine's :class:`~dlapps.engine.Trainer` steps (manual mode: one
Adam update, then the EMA of the weights that sampling uses); :meth:`DDPM.generator` wraps it as a
G(z, y) with z = x_T, so the GAN's metrics and sampling figures work on it unchanged.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.engine.trainer import Step, Trainer
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.generate.config import DDPM_SAMPLERS, DDPM_SCHEDULES, DdpmConfig
from dlapps.generate.data import GanData, to_uint8
from dlapps.generate.gan import fixed_inputs, model_trainer, read_run

COSINE_S = 0.008
MAX_BETA = 0.999
TRAJECTORY_FRAMES = 10
EPOCH_GRIDS = 10  # per-epoch sample grids of a run, at most (about)
EPOCH_GRID_STEPS = 10  # DDIM steps of those grids


# --- the noise schedule and the forward process ----------------------------------------------


def betas(schedule: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t for t = 0..T−1 (float64): ``linear`` from beta_start to beta_end, or ``cosine``."""
    if T < 2:
        raise ConfigError(f"a diffusion needs T >= 2 steps, got {T}")
    if not 0 < beta_start <= beta_end < 1:
        raise ConfigError(f"β endpoints must satisfy 0 < beta_start <= beta_end < 1, got "
                          f"{beta_start}, {beta_end}")
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    if schedule == "cosine":
        t = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((t + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)
    raise UnknownNameError("noise schedule", schedule, DDPM_SCHEDULES)


class NoiseSchedule(nn.Module):
    """β_t, α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s as float64 buffers (``.to(device)`` moves them)."""

    def __init__(self, betas: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas", 1 - betas, persistent=False)
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, 0), persistent=False)

    @classmethod
    def from_config(cls, config: DdpmConfig) -> NoiseSchedule:
        return cls(betas(config.schedule, config.timesteps, config.beta_start, config.beta_end))

    @property
    def T(self) -> int:  # noqa: N802 (the paper's name)
        return len(self.betas)

    def alpha_bar(self, t: int) -> float:
        """ᾱ at index t; 1 before the first step (t < 0: the data itself)."""
        return float(self.alpha_bars[t]) if t >= 0 else 1.0


def _at(values: torch.Tensor, t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (B, 1, 1, 1) to scale x (B, C, H, W) row by row, in x's dtype."""
    return values[torch.as_tensor(t, device=values.device)].reshape(-1, *[1] * (x.ndim - 1)).to(x)


def q_sample(x0: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor,
             schedule: NoiseSchedule) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: t forward steps at once (t per row or one for all)."""
    ab = schedule.alpha_bars
    return _at(ab.sqrt(), t, x0) * x0 + _at((1 - ab).sqrt(), t, x0) * eps


def q_step(x_prev: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor,
           schedule: NoiseSchedule) -> torch.Tensor:
    """One forward step x_t = √(1 − β_t) x_{t−1} + √β_t ε."""
    b = schedule.betas
    return _at((1 - b).sqrt(), t, x_prev) * x_prev + _at(b.sqrt(), t, x_prev) * eps


def ddpm_loss(net: nn.Module, x0: torch.Tensor, y: torch.Tensor | None,
              schedule: NoiseSchedule) -> torch.Tensor:
    """Algorithm 1's loss, mean over pixels of ‖ε − ε_θ(x_t, t, y)‖²; t and ε from torch's global RNG
    (which the engine's checkpoint holds, so a resumed run draws what an uninterrupted one would)."""
    t = torch.randint(schedule.T, (len(x0),), device=x0.device)
    eps = torch.randn_like(x0)
    return F.mse_loss(net(q_sample(x0, t, eps, schedule), t, y), eps)


# --- the reverse process ---------------------------------------------------------------------


def predict_x0(eps: torch.Tensor, x_t: torch.Tensor, ab: float, clip: bool) -> torch.Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t, clipped to the data's [-1, 1] when ``clip``."""
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    return x0.clamp(-1, 1) if clip else x0


def ancestral_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, schedule: NoiseSchedule,
                   noise: torch.Tensor | None, clip: bool = False) -> torch.Tensor:
    """Algorithm 2: x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) ε)/√α_t + σ_t z with σ_t² = β̃_t (no z at t = 0).

    ``clip``: the same mean written as the posterior's, √ᾱ_{t−1}β_t/(1 − ᾱ_t) x̂_0 + √α_t(1 −
    ᾱ_{t−1})/(1 − ᾱ_t) x_t, with x̂_0 clipped to [-1, 1] (Ho et al.'s code and diffusers' default):
    a young network's errors, divided by √ᾱ_t ≈ 0.006 near t = T, cannot push a sample off range."""
    a, ab, b = float(schedule.alphas[t]), schedule.alpha_bar(t), float(schedule.betas[t])
    ab_prev = schedule.alpha_bar(t - 1)
    if clip:
        x0 = predict_x0(eps, x_t, ab, clip)
        mean = math.sqrt(ab_prev) * b / (1 - ab) * x0 + math.sqrt(a) * (1 - ab_prev) / (1 - ab) * x_t
    else:
        mean = (x_t - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
    if t == 0:
        return mean
    return mean + math.sqrt((1 - ab_prev) / (1 - ab) * b) * noise


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The indices DDIM visits, T//steps apart from 0 up (diffusers' "leading" spacing), last first."""
    if not 1 <= steps <= T:
        raise ConfigError(f"DDIM steps must lie in [1, T={T}], got {steps}")
    return list(range(0, steps * (T // steps), T // steps))[::-1]


def ddim_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
              eta: float = 0.0, noise: torch.Tensor | None = None, clip: bool = False) -> torch.Tensor:
    """x_{t′} = √ᾱ_{t′} x̂_0 + √(1 − ᾱ_{t′} − σ²) ε + σ z (ᾱ = 1 for t′ < 0); z from the global RNG
    when η > 0 and no ``noise`` is given.

    ``clip``: x̂_0 clipped to [-1, 1] *and* ε recomputed from it, ε = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t)
    (diffusers' ``use_clipped_model_output=True``), so that the two stay one consistent
    prediction. Clipping x̂_0 alone (diffusers' default) lets them disagree: with guidance the
    samples drift to fat strokes as steps are added (measured: the judge read 21% of a cDDPM's
    labels at 50 steps, 88% at 10, 100% with ε recomputed at either)."""
    ab, ab_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
    x0 = predict_x0(eps, x_t, ab, clip)
    if clip:
        eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        x = x + sigma * (torch.randn_like(x_t) if noise is None else noise)
    return x


def guided_eps(net: nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float,
               null_class: int) -> torch.Tensor:
    """ε̃ = ε(x, ∅) + s·(ε(x, y) − ε(x, ∅)), conditional and null rows in one forward pass;
    y None: the unconditional ε(x, ∅); s = 1: the conditional ε(x, y) alone."""
    if y is None:
        return net(x, t, None)
    if guidance == 1:
        return net(x, t, y)
    null = torch.full_like(y, null_class)
    eps_y, eps_null = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return eps_null + guidance * (eps_y - eps_null)


def _noise(shape: tuple, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, I) from ``generator`` (on its own device, as diffusers draws it), or the global RNG."""
    where = device if generator is None else generator.device
    return torch.randn(shape, generator=generator, device=where).to(device)


@torch.no_grad()
def sample(net: nn.Module, shape: tuple, schedule: NoiseSchedule, *, y: torch.Tensor | None = None,
           guidance: float = 1.0, sampler: str = "ddim", steps: int = 50, x_T: torch.Tensor | None = None,
           generator: torch.Generator | None = None, frames: int = 0,
           clip: bool = True) -> torch.Tensor | tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
    """Images (B, C, H, W) in [-1, 1] from x_T (drawn from ``generator`` when not given) by DDIM
    (η = 0, ``steps`` steps: a function of x_T) or Algorithm 2 (all T steps, z from ``generator``),
    x̂_0 clipped to [-1, 1] at every step unless ``clip`` is False.

    ``frames > 0`` also returns about that many snapshots ``(t, x_t)`` along the way, t counted as in
    the paper (T: the noise x_T, 0: the sample x_0), for a figure of the trajectory."""
    if sampler not in DDPM_SAMPLERS:
        raise UnknownNameError("sampler", sampler, DDPM_SAMPLERS)
    device = schedule.betas.device
    x = _noise(shape, generator, device) if x_T is None else x_T.to(device)
    null_class = getattr(net, "n_classes", 0)
    ts = ddim_timesteps(schedule.T, steps) if sampler == "ddim" else list(range(schedule.T))[::-1]
    keep = set(torch.linspace(0, len(ts), frames).round().long().tolist()) if frames > 0 else set()
    snapshots = [(ts[0] + 1, x.cpu())] if 0 in keep else []
    for i, (t, t_prev) in enumerate(zip(ts, [*ts[1:], -1], strict=True), start=1):
        eps = guided_eps(net, x, torch.full((len(x),), t, device=device), y, guidance, null_class)
        if sampler == "ddim":
            x = ddim_step(eps, x, t, t_prev, schedule, clip=clip)
        else:
            z = _noise(x.shape, generator, device) if t > 0 else None
            x = ancestral_step(eps, x, t, schedule, z, clip=clip)
        if i in keep:
            snapshots.append((t_prev + 1, x.cpu()))
    x = x.clamp(-1, 1)
    return (x, snapshots) if frames > 0 else x


# --- the network -----------------------------------------------------------------------------


class EpsNet(nn.Module):
    """ε_θ(x_t, t, y): diffusers' U-Net with a sinusoidal embedding of t, channels (w, 2w, 2w) at
    three resolutions, one residual block per level, self-attention only in the middle block (at
    the lowest resolution), and, when conditional, an embedding of y added to t's (``n_classes +
    1`` rows, the last one the null label ∅).

    ``patch`` > 1 folds each patch × patch block of pixels into channels first (pixel unshuffle:
    1×32×32 → 4×16×16 for patch 2) and unfolds the prediction after: the U-Net then works on a
    quarter of the positions, about 2× faster on a CPU for the same width, as DiT's patches do."""

    def __init__(self, channels: int, size: int, width: int, n_classes: int = 0, patch: int = 1) -> None:
        super().__init__()
        if patch < 1 or size % (4 * patch) or size // patch < 8:
            raise ConfigError(f"the U-Net halves images twice after folding {patch}x{patch} patches: "
                              f"the size must be a multiple of {4 * patch} and at least {8 * patch}, "
                              f"got {size}")
        try:
            from diffusers import UNet2DModel
        except ModuleNotFoundError as exc:
            raise ConfigError("the DDPM's U-Net comes from diffusers: pip install diffusers") from exc
        self.n_classes, self.patch = n_classes, patch
        folded = channels * patch * patch
        self.unet = UNet2DModel(
            sample_size=size // patch, in_channels=folded, out_channels=folded, layers_per_block=1,
            block_out_channels=(width, 2 * width, 2 * width), norm_num_groups=8,
            down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
            num_class_embeds=n_classes + 1 if n_classes else None)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted noise; a conditional net given no y predicts ε(x, ∅)."""
        if self.n_classes and y is None:
            y = torch.full((len(x),), self.n_classes, device=x.device)
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        eps = self.unet(x, t, class_labels=y).sample
        return F.pixel_shuffle(eps, self.patch) if self.patch > 1 else eps


# --- the module the engine trains ------------------------------------------------------------


class DdpmGenerator(nn.Module):
    """A trained DDPM as a G(z, y): z (B, C·H·W) is x_T, the output the sampled images in [-1, 1]."""

    def __init__(self, net: EpsNet, schedule: NoiseSchedule, shape: tuple[int, int, int], sampler: str,
                 steps: int, guidance: float, seed: int) -> None:
        super().__init__()
        self.net, self.schedule, self.shape = net, schedule, shape
        self.nz, self.n_classes = math.prod(shape), net.n_classes
        self.sampler, self.steps, self.guidance, self.seed = sampler, steps, guidance, seed

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoise(z, y).to(z.device)

    def denoise(self, z: torch.Tensor, y: torch.Tensor | None = None,
                frames: int = 0) -> torch.Tensor | tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """:func:`sample` from x_T = z on the net's device (with ``frames`` snapshots when > 0)."""
        device = self.schedule.betas.device
        generator = torch.Generator(device).manual_seed(self.seed)
        return sample(self.net, (len(z), *self.shape), self.schedule, y=None if y is None else y.to(device),
                      guidance=self.guidance, sampler=self.sampler, steps=self.steps,
                      x_T=z.reshape(len(z), *self.shape), generator=generator, frames=frames)


class DDPM(nn.Module):
    """ε_θ, its exponential moving average and the schedule of one run (see the module's docstring)."""

    manual_optimization = True

    def __init__(self, config: DdpmConfig, n_classes: int = 0) -> None:
        super().__init__()
        self.config, self.n_classes = config, n_classes
        self.schedule = NoiseSchedule.from_config(config)
        self.net = EpsNet(config.channels, config.size, config.width, n_classes, config.patch)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False) if config.ema > 0 else None

    def optimizers(self, config: DdpmConfig) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.net.parameters(), config.lr)}

    def training_step(self, batch: tuple, progress: float, step: Step) -> dict[str, float]:
        """Algorithm 1 on a batch ``(x in [0, 1], y, None, None)`` (y dropped to ∅ with probability
        p_uncond), then the EMA update θ_ema ← d·θ_ema + (1 − d)·θ, d = min(ema, (1 + n)/(10 + n))
        at step n (the usual warm-up: a short run's average is not stuck at the initial weights)."""
        x0, y = 2 * batch[0] - 1, batch[1] if self.n_classes else None
        if y is not None:
            y = y.masked_fill(torch.rand(len(y), device=y.device) < self.config.p_uncond, self.n_classes)
        loss = ddpm_loss(self.net, x0, y, self.schedule)
        step.optimize("main", loss, loss=loss)
        if self.ema_net is not None:
            self._update_ema(min(self.config.ema, (1 + step.index) / (10 + step.index)))
        return {"loss": loss.item()}

    @torch.no_grad()
    def _update_ema(self, d: float) -> None:
        for p_ema, p in zip(self.ema_net.parameters(), self.net.parameters(), strict=True):
            p_ema.mul_(d).add_(p, alpha=1 - d)
        for b_ema, b in zip(self.ema_net.buffers(), self.net.buffers(), strict=True):
            b_ema.copy_(b)

    def generator(self, sampler: str | None = None, steps: int | None = None, guidance: float | None = None,
                  seed: int = 0) -> DdpmGenerator:
        """This DDPM as a G(z, y) (the EMA net when there is one); sampler, steps and guidance default
        to the config's, ``seed`` seeds the ancestral sampler's noise z_t."""
        c = self.config
        return DdpmGenerator(self.net if self.ema_net is None else self.ema_net, self.schedule,
                             (c.channels, c.size, c.size), sampler or c.sampler,
                             c.sample_steps if steps is None else steps,
                             c.guidance if guidance is None else guidance, seed)

    @property
    def trajectory_frames(self) -> int:
        """Snapshots per row of :meth:`trajectory`: 10, or x_T and every step when sampling takes fewer."""
        steps = self.config.sample_steps if self.config.sampler == "ddim" else self.config.timesteps
        return min(TRAJECTORY_FRAMES, steps + 1)

    @torch.no_grad()
    def trajectory(self, n: int = 8, seed: int = 0) -> torch.Tensor:
        """``n`` denoising trajectories x_T → x_0 as uint8 images (N·frames, C, H, W), one row of
        :attr:`trajectory_frames` per sample, sampled as :meth:`generator` samples (x_T drawn with
        ``seed``; classes 0..K−1 in turn when conditional)."""
        g = self.generator(seed=seed)
        z = torch.randn(n, g.nz, generator=torch.Generator().manual_seed(seed))
        _, frames = g.denoise(z, torch.arange(n) % self.n_classes if self.n_classes else None,
                              frames=self.trajectory_frames)
        return to_uint8(torch.stack([x for _, x in frames], 1).flatten(0, 1))


def ddpm_trainer(config: DdpmConfig, data: GanData, run_dir: Path, *, progress: bool = True,
                 device: torch.device | None = None, tensorboard: bool = True) -> Trainer:
    """:func:`~dlapps.generate.gan.model_trainer` for one DDPM (the checkpoint holds the EMA too).

    On about :data:`EPOCH_GRIDS` evenly spaced epochs (the last among them) a grid sampled from a
    fixed x_T with :data:`EPOCH_GRID_STEPS` DDIM steps: a grid of 100 samples at 50 steps would
    cost a third of a CPU epoch."""
    every = -(-config.epochs // EPOCH_GRIDS)

    def grid_sampler(ddpm: DDPM, epoch: int) -> DdpmGenerator | None:
        if epoch % every and epoch != config.epochs:
            return None
        return ddpm.generator(sampler="ddim", steps=min(EPOCH_GRID_STEPS, config.sample_steps))

    def fixed_x_T(c: DdpmConfig, n_classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return fixed_inputs(c, n_classes, nz=c.channels * c.size * c.size)

    return model_trainer(lambda n: DDPM(config, n), config, data, run_dir, grid_sampler, fixed_x_T,
                         progress=progress, device=device, tensorboard=tensorboard)


def load_ddpm(run_dir: Path) -> tuple[DDPM, DdpmConfig, dict]:
    """The DDPM of a trained run (its ``config.json`` + ``checkpoint.pt``), in eval mode, on the CPU,
    with the config and the checkpoint."""
    config, state = read_run(run_dir, DdpmConfig, "DDPM")
    weights = state["module"]
    classes = weights.get("net.unet.class_embedding.weight")
    ddpm = DDPM(config, 0 if classes is None else len(classes) - 1)
    ddpm.load_state_dict({k: v.cpu() for k, v in weights.items()})
    return ddpm.eval(), config, state


# --- the Fourier view ------------------------------------------------------------------------


def power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The radially averaged power spectrum of images (B, C, H, W): frequencies (cycles per pixel,
    1/N … 1/2 for N = min(H, W)) and the mean |DFT|² over images, channels and each ring (orthonormal
    DFT, so white noise of variance σ² is flat at σ²; the mean, frequency 0, is left out)."""
    h, w = x.shape[-2:]
    n = min(h, w)
    power = torch.fft.fft2(x.double(), norm="ortho").abs().square().mean(dim=tuple(range(x.ndim - 2)))
    radius = torch.hypot(torch.fft.fftfreq(h, dtype=torch.float64)[:, None],
                         torch.fft.fftfreq(w, dtype=torch.float64)[None, :])
    ring = (radius * n).round().long().to(power.device)
    inside = (ring >= 1) & (ring <= n // 2)
    total = torch.bincount(ring[inside], power[inside], minlength=n // 2 + 1)
    count = torch.bincount(ring[inside], minlength=n // 2 + 1)
    return torch.arange(1, n // 2 + 1, dtype=torch.float64) / n, (total / count)[1:]
