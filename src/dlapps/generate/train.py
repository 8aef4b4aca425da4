"""The GAN training loop, built from the engine's shared parts.

The engine's :class:`~dlapps.engine.Trainer` steps one optimizer on one loss; a GAN alternates two
(Goodfellow et al. 2014, Alg. 1 with k = 1), so this module has its own loop over the same parts:
batches drawn by :class:`~dlapps.engine.PairedBatches` (order = f(seed, epoch)), RNG capture from
:mod:`~dlapps.engine.seeding`, atomic checkpoints from :mod:`~dlapps.engine.checkpoint`, the
``metrics.jsonl`` + TensorBoard log of :mod:`~dlapps.engine.runlog`, and
:class:`~dlapps.errors.NonFiniteLossError` naming the step.

Per iteration, with a batch x of real images (labels y) and z ~ N(0, I):

1. D step: minimise  L_D = −log D(x) − log(1 − D(G(z)))  with G(z) detached (Adam, lr_d, β1_d);
2. G step: minimise the non-saturating −log D(G(z)) or the minimax log(1 − D(G(z)))
   on the updated D (Adam, lr_g, β1_g).

Logged per iteration: loss_d, loss_g, d_x = mean D(x), d_g_z = mean D(G(z)) before the D step
and d_g_z2 after it. Per epoch: a grid of G's samples from a fixed noise (rows = classes for a
conditional G), and an atomic checkpoint holding G, D, both optimizers and every RNG state. A run
killed at any point resumes from its last checkpoint and ends with the weights an uninterrupted
run gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dlapps.engine.batches import Labelled, PairedBatches
from dlapps.engine.checkpoint import load_checkpoint, save_checkpoint
from dlapps.engine.runlog import RunLog
from dlapps.engine.seeding import rng_state, seed_everything, set_rng_state
from dlapps.errors import ConfigError, DataError, NonFiniteLossError
from dlapps.generate.data import GanData, to_signed, to_uint8
from dlapps.generate.dcgan import INITS, SIZES, Discriminator, Generator, build_gan
from dlapps.generate.losses import discriminator_loss, generator_loss, is_nonsaturating
from dlapps.io import atomic_write_bytes, atomic_write_json

CONFIG = "config.json"
GRID_COLUMNS = 10


@dataclass
class GanConfig:
    """Everything that defines one GAN training run (saved as ``config.json``)."""

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
        return self

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: everything but the number of epochs."""
        fields = {k: v for k, v in asdict(self).items() if k != "epochs"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: Path) -> Path:
        return atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> GanConfig:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read GAN config {path}: {exc}") from exc
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known}).validate()


def fixed_inputs(config: GanConfig, n_classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels) of the per-epoch sample grid: 10 columns of shared z; for a
    conditional G, row k is class k, so the grid shows classes (rows) x style (columns)."""
    g = torch.Generator().manual_seed(10_000 + config.seed)
    if not config.conditional:
        return torch.randn(GRID_COLUMNS * GRID_COLUMNS, config.nz, generator=g), None
    z = torch.randn(GRID_COLUMNS, config.nz, generator=g).repeat(n_classes, 1)
    return z, torch.arange(n_classes).repeat_interleave(GRID_COLUMNS)


@torch.no_grad()
def sample_grid(g: Generator, z: torch.Tensor, y: torch.Tensor | None,
                columns: int = GRID_COLUMNS) -> np.ndarray:
    """G's images for (z, y) tiled into one uint8 HxW(xC) image, ``columns`` per row."""
    from dlapps.report.figures import grid_image

    was = g.training
    g.eval()
    x = to_uint8(g(z, y)).numpy()
    g.train(was)
    return grid_image(x, rows=-(-len(x) // columns))


def save_png(img: np.ndarray, path: Path, scale: int = 2) -> Path:
    from PIL import Image

    pil = Image.fromarray(img)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


class GanTrainer:
    """Train one GAN (G, D, two Adam optimizers) on ``data`` into ``run_dir``; resumable.

    ``fit()`` continues from ``run_dir/checkpoint.pt`` when there is one (refusing one written
    for another configuration) and returns the per-epoch history.
    """

    def __init__(self, config: GanConfig, data: GanData, run_dir: Path, *, progress: bool = True,
                 device: torch.device | None = None, tensorboard: bool = True) -> None:
        config.validate()
        if config.conditional and not data.labelled:
            raise DataError(f"--conditional needs labelled data, but {data.name} has no class labels; "
                            "train an unconditional DCGAN on it (drop --conditional)")
        if len(data.x) < config.batch_size:
            raise ConfigError(f"batch size {config.batch_size} is larger than {data.name}'s "
                              f"{len(data.x)} training images")
        if tuple(data.x.shape[1:]) != (config.channels, config.size, config.size):
            raise DataError(f"images are {tuple(data.x.shape[1:])}, the config asks for "
                            f"{(config.channels, config.size, config.size)}")
        self.config, self.data, self.run_dir = config, data, Path(run_dir)
        self.device = device or torch.device("cpu")
        self.progress, self.tensorboard = progress, tensorboard
        self.n_classes = len(data.classes) if config.conditional else 0
        seed_everything(config.seed)
        g, d = build_gan(config.nz, config.ngf, config.ndf, config.channels, config.size,
                         self.n_classes, config.d_conditional, config.init)
        self.g, self.d = g.to(self.device), d.to(self.device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), config.lr_g, betas=(config.beta1_g, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), config.lr_d, betas=(config.beta1_d, 0.999))
        y = data.y if data.y is not None else torch.zeros(len(data.x), dtype=torch.int64)
        batches = PairedBatches(Labelled(data.x, y), None, config.batch_size, config.seed)
        self.batches = batches.to(self.device)
        self.nonsaturating = is_nonsaturating(config.loss)
        self.history: list[dict] = []

    def state(self, epoch: int, step: int, seconds: float) -> dict:
        return {"module": {"g": self.g.state_dict(), "d": self.d.state_dict()},
                "optimizer": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
                "epoch": epoch, "step": step, "rng": rng_state(), "history": self.history,
                "fingerprint": self.config.fingerprint(), "seconds": seconds,
                "n_classes": self.n_classes}

    def fit(self) -> list[dict]:
        cfg = self.config
        state = load_checkpoint(self.run_dir, cfg.fingerprint())
        start, step, seconds = 0, 0, 0.0
        if state is not None:
            self.g.load_state_dict(state["module"]["g"])
            self.d.load_state_dict(state["module"]["d"])
            self.opt_g.load_state_dict(state["optimizer"]["g"])
            self.opt_d.load_state_dict(state["optimizer"]["d"])
            set_rng_state(state["rng"])
            start, step, seconds = state["epoch"], state["step"], state["seconds"]
            self.history = list(state["history"])
        if start >= cfg.epochs:
            return self.history
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(self.run_dir / CONFIG)
        log = RunLog(self.run_dir, resume_step=step if state else None, tensorboard=self.tensorboard)
        total = cfg.epochs * self.batches.steps_per_epoch
        bar = tqdm(total=total, initial=step, disable=not self.progress, leave=False,
                   desc=self.run_dir.name, dynamic_ncols=True)
        z_fixed, y_fixed = fixed_inputs(cfg, self.n_classes)
        try:
            for epoch in range(start, cfg.epochs):
                began = time.perf_counter()
                for xs, ys, _, _ in self.batches.epoch(epoch):
                    step += 1
                    record = self.train_step(to_signed(xs), ys, step, epoch)
                    log.write("step", {"step": step, "epoch": epoch + 1, **record})
                    bar.update(1)
                    bar.set_postfix(D=f"{record['loss_d']:.2f}", G=f"{record['loss_g']:.2f}")
                seconds += time.perf_counter() - began
                grid = sample_grid(self.g, z_fixed.to(self.device),
                                   None if y_fixed is None else y_fixed.to(self.device))
                save_png(grid, self.run_dir / "figures" / "epochs" / f"epoch_{epoch + 1:03d}.png")
                record = {"epoch": epoch + 1, "step": step, "seconds": round(seconds, 3)}
                self.history.append(record)
                log.write("epoch", record)
                log.flush()
                save_checkpoint(self.run_dir, self.state(epoch + 1, step, seconds))
        finally:
            bar.close()
            log.close()
        return self.history

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int) -> dict:
        """One D step and one G step; raises NonFiniteLossError (naming the step) before any
        update from a non-finite loss, so the last checkpoint stays the last good state."""
        cond = self.n_classes > 0
        y_real = y if cond and self.config.d_conditional else None
        y_gen = torch.randint(self.n_classes, (len(x),), device=self.device) if cond else None
        y_fake = y_gen if y_real is not None else None
        z = torch.randn(len(x), self.config.nz, device=self.device)
        fake = self.g(z, y_gen)

        d_real, d_fake = self.d(x, y_real), self.d(fake.detach(), y_fake)
        loss_d = discriminator_loss(d_real, d_fake)
        self._check(step, epoch, loss_d=loss_d)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        d_fake2 = self.d(fake, y_fake)
        loss_g = generator_loss(d_fake2, self.nonsaturating)
        self._check(step, epoch, loss_d=loss_d, loss_g=loss_g)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_x": d_real.mean().item(),
                "d_g_z": d_fake.mean().item(), "d_g_z2": d_fake2.mean().item()}

    @staticmethod
    def _check(step: int, epoch: int, **losses: torch.Tensor) -> None:
        if not all(torch.isfinite(v) for v in losses.values()):
            raise NonFiniteLossError(step, epoch + 1, {k: float(v.detach()) for k, v in losses.items()})


def load_generator(run_dir: Path) -> tuple[Generator, Discriminator, GanConfig, dict]:
    """G and D of a trained cell (its ``config.json`` + ``checkpoint.pt``), in eval mode."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise DataError(f"{run_dir} holds no {CONFIG}: not a dlapps GAN run")
    config = GanConfig.load(run_dir / CONFIG)
    state = load_checkpoint(run_dir, config.fingerprint())
    if state is None:
        raise DataError(f"{run_dir} holds no checkpoint.pt yet (the run has not finished an epoch)")
    n_classes = int(state.get("n_classes", 0))
    g, d = build_gan(config.nz, config.ngf, config.ndf, config.channels, config.size, n_classes,
                     config.d_conditional, config.init)
    g.load_state_dict(state["module"]["g"])
    d.load_state_dict(state["module"]["d"])
    return g.eval(), d.eval(), config, state
