"""A GAN as one module trained by the engine: G and D, two Adam optimizers, one manual step.

Per iteration, with a batch x of real images (labels y) and z ~ N(0, I) (Goodfellow et al. 2014,
Alg. 1 with k = 1):

1. D step: minimise  L_D = −log D(x) − log(1 − D(G(z)))  with G(z) detached (Adam, lr_d, β1_d);
2. G step: minimise the non-saturating −log D(G(z)) or the minimax log(1 − D(G(z)))
   on the updated D (Adam, lr_g, β1_g).

A conditional G draws its labels y_gen uniformly; D sees the real labels with x and y_gen with
G(z) (neither in the cD(x) ablation). Logged per iteration: loss_d, loss_g, d_x = mean D(x),
d_g_z = mean D(G(z)) before the D step and d_g_z2 after it.

:class:`GAN` is the module :class:`~dlapps.engine.Trainer` steps in its manual mode
(``step.optimize("d", ...)`` then ``step.optimize("g", ...)``), so the engine gives it what every
training gets: batches whose order is a function of (seed, epoch), a non-finite loss refused
before the update it would feed (naming the step; the last checkpoint kept), ``metrics.jsonl``
and TensorBoard, and an atomic checkpoint per epoch (the module's state — ``g.*`` and ``d.*`` —
both optimizers, every RNG state) from which a killed run resumes to the weights an uninterrupted
run gives. Per epoch :func:`gan_trainer` also writes a grid of G's samples from a fixed noise
(rows = classes for a conditional G) and the run's ``config.json``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlapps.config import load_config, save_config
from dlapps.engine.batches import Labelled, PairedBatches, eval_mode, frozen
from dlapps.engine.checkpoint import load_checkpoint
from dlapps.engine.seeding import seed_everything
from dlapps.engine.trainer import Step, Trainer
from dlapps.errors import ConfigError, DataError
from dlapps.generate.config import GanConfig
from dlapps.generate.data import GanData, to_signed, to_uint8
from dlapps.generate.dcgan import Discriminator, Generator, build_gan
from dlapps.generate.losses import discriminator_loss, generator_loss, is_nonsaturating
from dlapps.io import atomic_write_bytes

CONFIG = "config.json"
GRID_COLUMNS = 10


class GAN(nn.Module):
    """G and D of one run, stepped D then G (see the module's docstring)."""

    manual_optimization = True

    def __init__(self, config: GanConfig, n_classes: int = 0) -> None:
        super().__init__()
        self.nz, self.n_classes, self.d_conditional = config.nz, n_classes, config.d_conditional
        self.nonsaturating = is_nonsaturating(config.loss)
        self.g, self.d = build_gan(config.nz, config.ngf, config.ndf, config.channels, config.size,
                                   n_classes, config.d_conditional, config.init)

    def optimizers(self, config: GanConfig) -> dict[str, torch.optim.Optimizer]:
        """Adam for D and for G, with their own learning rates and β1 (β2 = 0.999)."""
        return {"d": torch.optim.Adam(self.d.parameters(), config.lr_d, betas=(config.beta1_d, 0.999)),
                "g": torch.optim.Adam(self.g.parameters(), config.lr_g, betas=(config.beta1_g, 0.999))}

    def training_step(self, batch: tuple, progress: float, step: Step) -> dict[str, float]:
        """One D step and one G step on a batch ``(x in [0, 1], y, None, None)``."""
        x, y = to_signed(batch[0]), batch[1]
        cond = self.n_classes > 0
        y_real = y if cond and self.d_conditional else None
        y_gen = torch.randint(self.n_classes, (len(x),), device=x.device) if cond else None
        y_fake = y_gen if y_real is not None else None
        z = torch.randn(len(x), self.nz, device=x.device)
        fake = self.g(z, y_gen)

        d_real, d_fake = self.d(x, y_real), self.d(fake.detach(), y_fake)
        loss_d = discriminator_loss(d_real, d_fake)
        step.optimize("d", loss_d, loss_d=loss_d)

        with frozen(self.d):  # G's loss needs ∂D/∂x only: D's weight gradients are not computed
            d_fake2 = self.d(fake, y_fake)
        loss_g = generator_loss(d_fake2, self.nonsaturating)
        step.optimize("g", loss_g, loss_d=loss_d, loss_g=loss_g)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_x": d_real.mean().item(),
                "d_g_z": d_fake.mean().item(), "d_g_z2": d_fake2.mean().item()}


def fixed_inputs(config, n_classes: int, nz: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels) of the per-epoch sample grid: 10 columns of shared z (``nz`` values
    each, default ``config.nz``; a DDPM's x_T has C·H·W); for a conditional model, row k is class
    k, so the grid shows classes (rows) x style (columns)."""
    nz = config.nz if nz is None else nz
    g = torch.Generator().manual_seed(10_000 + config.seed)
    if not config.conditional:
        return torch.randn(GRID_COLUMNS * GRID_COLUMNS, nz, generator=g), None
    z = torch.randn(GRID_COLUMNS, nz, generator=g).repeat(n_classes, 1)
    return z, torch.arange(n_classes).repeat_interleave(GRID_COLUMNS)


@torch.no_grad()
def sample_grid(g: Generator, z: torch.Tensor, y: torch.Tensor | None,
                columns: int = GRID_COLUMNS) -> np.ndarray:
    """G's images for (z, y) tiled into one uint8 HxW(xC) image, ``columns`` per row."""
    from dlapps.report import grid_image

    with eval_mode(g):
        x = to_uint8(g(z, y)).numpy()
    return grid_image(x, rows=-(-len(x) // columns))


def save_png(img: np.ndarray, path: Path, scale: int = 2) -> Path:
    """A uint8 image as a PNG, each pixel drawn ``scale`` x ``scale`` (written atomically)."""
    from PIL import Image

    pil = Image.fromarray(img)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def n_classes_of(config: GanConfig, data: GanData) -> int:
    """The classes G is conditioned on (0 for a DCGAN); refuses what ``data`` cannot train."""
    config.validate()
    if config.conditional and not data.labelled:
        raise DataError(f"a conditional model needs labelled data, but {data.name} has no class labels; "
                        "train an unconditional one on it (dcgan, vae, ddpm; or drop --conditional)")
    if len(data.x) < config.batch_size:
        raise ConfigError(f"batch size {config.batch_size} is larger than {data.name}'s "
                          f"{len(data.x)} training images")
    if tuple(data.x.shape[1:]) != (config.channels, config.size, config.size):
        raise DataError(f"images are {tuple(data.x.shape[1:])}, the config asks for "
                        f"{(config.channels, config.size, config.size)}")
    return len(data.classes) if config.conditional else 0


def model_trainer(build: Callable[[int], nn.Module], config, data: GanData, run_dir: Path,
                  sampler: Callable[[nn.Module, int], nn.Module | None], fixed: Callable, *,
                  progress: bool = True, device: torch.device | None = None,
                  tensorboard: bool = True, channels_last: bool = False) -> Trainer:
    """The engine's :class:`~dlapps.engine.Trainer` for one generative model (GAN, VAE, DDPM) on
    ``data`` into ``run_dir``; ``fit()`` resumes from its checkpoint, ``.module`` is the model.

    The model is ``build(n_classes)`` once :func:`n_classes_of` accepted the data, built after
    seeding with ``config.seed``: its initial weights, the batch order and every draw in training
    are functions of the seed. Batches are ``(x in [0, 1], y, None, None)``. Per epoch the run's
    ``config.json`` is written beside the checkpoint and, when ``sampler(model, epoch)`` gives a
    G(z, y), the grid of its images of the fixed inputs ``fixed(config, n_classes)`` (rows =
    classes for a conditional model) as ``figures/epochs/epoch_XXX.png``. ``channels_last`` puts
    the model's weights in NHWC (the GAN's, where it was measured to pay)."""
    n_classes = n_classes_of(config, data)
    run_dir = Path(run_dir)
    seed_everything(config.seed)
    model = build(n_classes)
    y = data.y if data.y is not None else torch.zeros(len(data.x), dtype=torch.int64)
    batches = PairedBatches(Labelled(data.x, y), None, config.batch_size, config.seed)
    z_fixed, y_fixed = fixed(config, n_classes)

    def epoch_end(epoch: int, module: nn.Module) -> None:
        g = sampler(module, epoch)
        if g is not None:
            dev = next(g.parameters()).device
            grid = sample_grid(g, z_fixed.to(dev), None if y_fixed is None else y_fixed.to(dev))
            save_png(grid, run_dir / "figures" / "epochs" / f"epoch_{epoch:03d}.png")
        save_config(config, run_dir / CONFIG)

    return Trainer(model, batches, model.optimizers(config), None, config.epochs, run_dir,
                   epoch_end=epoch_end, device=device, amp=False, channels_last=channels_last,
                   fingerprint=config.fingerprint(),
                   log_every=1, progress=progress, desc=run_dir.name, tensorboard=tensorboard)


def gan_trainer(config: GanConfig, data: GanData, run_dir: Path, *, progress: bool = True,
                device: torch.device | None = None, tensorboard: bool = True) -> Trainer:
    """:func:`model_trainer` for one GAN (per epoch: G's grid)."""
    return model_trainer(lambda n: GAN(config, n), config, data, run_dir, lambda gan, _: gan.g, fixed_inputs,
                         progress=progress, device=device, tensorboard=tensorboard,
                         channels_last=config.channels_last)


def read_run(run_dir: Path, cls: type, what: str) -> tuple:
    """The config (a ``cls``) and the checkpoint of a trained cell; one line when either is missing."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise DataError(f"{run_dir} holds no {CONFIG}: not a dlapps {what} run")
    config = load_config(cls, run_dir / CONFIG)
    state = load_checkpoint(run_dir, config.fingerprint())
    if state is None:
        raise DataError(f"{run_dir} holds no checkpoint.pt yet (the run has not finished an epoch)")
    return config, state


def load_gan(run_dir: Path) -> tuple[GAN, GanConfig, dict]:
    """The GAN of a trained cell (its ``config.json`` + ``checkpoint.pt``), in eval mode, on the
    CPU, with the config and the checkpoint."""
    config, state = read_run(run_dir, GanConfig, "GAN")
    weights = state["module"]
    if isinstance(weights.get("g"), dict):  # written by dlapps 0.2's own GAN loop
        weights = {f"{net}.{k}": v for net in ("g", "d") for k, v in weights[net].items()}
    n_classes = weights["g.net.0.weight"].shape[0] - config.nz  # G's input is [z, onehot(y)]
    gan = GAN(config, n_classes)
    gan.load_state_dict({k: v.cpu() for k, v in weights.items()})
    return gan.eval(), config, state


def load_generator(run_dir: Path) -> tuple[Generator, Discriminator, GanConfig, dict]:
    """G and D of a trained cell (see :func:`load_gan`)."""
    gan, config, state = load_gan(run_dir)
    return gan.g, gan.d, config, state
