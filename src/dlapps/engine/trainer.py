"""The one training loop of the project.

:class:`Trainer` runs every training in dlapps: the domain adaptation methods and their
baselines, the GANs (G and D), transfer learning's heads and fine-tuning, the GAN judge, and
every area to come. A step may drive one model with one optimizer or several models with
several optimizers (the shape of Lightning's manual optimisation, with Dassl's named
optimizers):

* **automatic** — the module's ``forward(*batch, progress)`` returns a dict of losses;
  ``"loss"`` is minimised with the only optimizer, the rest is logged. Every domain adaptation
  method is such a module, so the engine can wrap it in DistributedDataParallel.
* **manual** — the module sets ``manual_optimization = True`` and defines
  ``training_step(batch, progress, step)``; it calls ``step.optimize(name, loss)`` for each
  update (zero the grads, backward, step the optimizer called ``name``) and returns the numbers
  to log. A GAN updates D then G; ADDA's stages or a teacher's EMA fit the same shape.

Either way, per step the engine sets every optimizer's learning rate from its schedule (times a
group's ``lr_mult``; no schedule leaves the rates as they are), runs the step under autocast
(CUDA; with ``cpu_amp``, bf16 on a CPU that has it natively), refuses a non-finite loss *before*
the update it would feed (:class:`NonFiniteLossError` naming the step; the last checkpoint is
left as it was), and logs. Per epoch it evaluates, calls
``epoch_end``, logs, and writes ``checkpoint.pt`` atomically (module, every optimizer, position,
RNG, history). ``fit()`` on a run directory that holds a checkpoint continues from it and reaches
the same final numbers as an uninterrupted run (the batch order is a function of (seed, epoch)
and the RNG state is restored). ``run_dir=None`` trains in memory: no log, no checkpoint (a
linear probe's 200 full-batch epochs need neither).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from dlapps.engine.checkpoint import load_checkpoint, save_checkpoint
from dlapps.engine.device import autocast
from dlapps.engine.distributed import Dist, barrier
from dlapps.engine.runlog import RunLog
from dlapps.engine.schedules import Schedule
from dlapps.engine.seeding import rng_state, set_rng_state
from dlapps.errors import ConfigError, NonFiniteLossError

MAIN = "main"


class Step:
    """What a manual ``training_step`` is handed: the optimizers by name and ``optimize``."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        self.index = 0  # global step, 1-based while a step runs
        self.epoch = 0  # 1-based

    def optimize(self, name: str, loss: torch.Tensor, /, **logged: torch.Tensor | float) -> None:
        """One update of optimizer ``name`` on ``loss``: refused when ``loss`` is not finite
        (before any gradient reaches the weights), else zero grads, backward, step."""
        if not torch.isfinite(loss):
            values = logged or {name: loss}
            raise NonFiniteLossError(self.index, self.epoch, {
                k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in values.items()})
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def _upgrade(state: dict, names: list[str]) -> tuple[dict, dict]:
    """The module and optimizer states of a checkpoint, also from the layouts dlapps wrote before
    one engine ran every training: one plain optimizer state (the only optimizer, now ``main``)
    and a module state nested by sub-module (the GAN's ``{"g": ..., "d": ...}``, now ``g.*``)."""
    module, optimizers = state["module"], state["optimizer"]
    if names == [MAIN] and "param_groups" in optimizers:
        optimizers = {MAIN: optimizers}
    if module and all(isinstance(v, dict) for v in module.values()):
        module = {f"{part}.{key}": value for part, sub in module.items() for key, value in sub.items()}
    return module, optimizers


class Trainer:
    """Train ``module`` on ``batches`` for ``epochs`` epochs, checkpointing into ``run_dir``.

    ``optimizer`` is one optimizer or a dict of named ones (a manual module's ``step.optimize``
    names them); ``lr_schedule`` likewise one schedule for every optimizer, a dict by name, or
    None (constant rates). Param groups may carry an ``lr_mult`` on the schedule's rate.
    ``evaluate(module)`` returns a dict of numbers at the end of every epoch;
    ``epoch_end(epoch, module)`` (1-based epoch) may write figures.
    """

    def __init__(
        self,
        module: nn.Module,
        batches,
        optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        lr_schedule: Schedule | Mapping[str, Schedule] | None,
        epochs: int,
        run_dir: Path | None,
        *,
        evaluate: Callable[[nn.Module], dict] | None = None,
        epoch_end: Callable[[int, nn.Module], None] | None = None,
        device: torch.device | None = None,
        amp: bool = True,
        cpu_amp: bool = False,
        channels_last: bool = False,
        dist: Dist | None = None,
        fingerprint: str = "",
        log_every: int = 10,
        progress: bool = True,
        desc: str = "train",
        tensorboard: bool = True,
    ) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {epochs}")
        self.device = device or torch.device("cpu")
        self.dist = dist or Dist()
        self.module = module.to(self.device)
        if channels_last:  # convolutions then run NHWC, the layout oneDNN's CPU kernels prefer
            self.module.to(memory_format=torch.channels_last)
        self.manual = bool(getattr(module, "manual_optimization", False))
        if self.manual and self.dist.active:
            raise ConfigError("a step that drives several optimizers does not run under torchrun yet; "
                              "run it in one process")
        self.batches = batches.to(self.device)
        self.optimizers = dict(optimizer) if isinstance(optimizer, Mapping) else {MAIN: optimizer}
        if not self.manual and list(self.optimizers) != [MAIN]:
            raise ConfigError("a module that returns one loss trains with exactly one optimizer")
        if lr_schedule is None or isinstance(lr_schedule, Mapping):
            self.schedules = dict(lr_schedule or {})
        else:
            self.schedules = dict.fromkeys(self.optimizers, lr_schedule)
        unknown = set(self.schedules) - set(self.optimizers)
        if unknown:
            raise ConfigError(f"schedules for optimizers that do not exist: {sorted(unknown)}")
        self.epochs = epochs
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.evaluate = evaluate
        self.epoch_end = epoch_end
        self.amp, self.cpu_amp = amp, cpu_amp
        self.fingerprint = fingerprint
        self.log_every = max(1, log_every)
        self.progress = progress and self.dist.main
        self.desc = desc
        self.tensorboard = tensorboard
        self.total_steps = epochs * batches.steps_per_epoch
        self.history: list[dict] = []

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The only optimizer of an automatic module."""
        return self.optimizers[MAIN]

    def _step_module(self) -> nn.Module:
        if not self.dist.active:
            return self.module
        from torch.nn.parallel import DistributedDataParallel

        module = self.module
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def _optimizer_states(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def fit(self) -> list[dict]:
        """Train (or continue training) to the last epoch; returns the per-epoch history."""
        saving = self.run_dir is not None
        # refuses bad files before any write
        state = load_checkpoint(self.run_dir, self.fingerprint) if saving else None
        start_epoch, step, seconds = 0, 0, 0.0
        if state is not None:
            module_state, optimizer_states = _upgrade(state, list(self.optimizers))
            self.module.load_state_dict(module_state)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(optimizer_states[name])
            set_rng_state(state["rng"])
            start_epoch, step, seconds = state["epoch"], state["step"], state["seconds"]
            self.history = list(state["history"])
        if start_epoch >= self.epochs:
            return self.history
        log = RunLog(self.run_dir or Path("."), saving and self.dist.main,
                     resume_step=step if state else None, tensorboard=self.tensorboard)
        step_module = self._step_module()
        bar = tqdm(total=self.total_steps, initial=step, disable=not self.progress, desc=self.desc,
                   leave=False, dynamic_ncols=True)
        try:
            for epoch in range(start_epoch, self.epochs):
                began = time.perf_counter()
                step = self._train_epoch(step_module, epoch, step, log, bar)
                seconds += time.perf_counter() - began
                record = {"epoch": epoch + 1, "step": step, "seconds": round(seconds, 3)}
                if self.evaluate is not None:
                    self.module.eval()
                    record.update(self.evaluate(self.module))
                    self.module.train()
                if self.epoch_end is not None:
                    self.epoch_end(epoch + 1, self.module)
                self.history.append(record)
                log.write("epoch", record)
                log.flush()
                if saving and self.dist.main:
                    save_checkpoint(self.run_dir, {
                        "module": self.module.state_dict(), "optimizer": self._optimizer_states(),
                        "epoch": epoch + 1, "step": step, "rng": rng_state(),
                        "history": self.history, "fingerprint": self.fingerprint, "seconds": seconds,
                    })
                barrier(self.dist)
                shown = {k: v for k, v in record.items() if k.endswith("acc") and v is not None}
                bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
        finally:
            bar.close()
            log.close()
        return self.history

    def _set_rates(self, progress: float) -> float | None:
        lr = None
        for name, schedule in self.schedules.items():
            lr = schedule(progress)
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    def _train_epoch(self, step_module, epoch: int, step: int, log: RunLog, bar) -> int:
        self.module.train()
        window: dict[str, torch.Tensor | float] = {}
        count = 0
        ctx = Step(self.optimizers)
        ctx.epoch = epoch + 1
        for batch in self.batches.epoch(epoch):
            progress = step / self.total_steps
            lr = self._set_rates(progress)
            ctx.index = step + 1
            if self.manual:
                with autocast(self.device, self.amp, self.cpu_amp):
                    out = step_module.training_step(batch, progress, ctx)
            else:
                with autocast(self.device, self.amp, self.cpu_amp):
                    out = step_module(*batch, progress)
                ctx.optimize(MAIN, out["loss"], **out)
            step += 1
            count += 1
            for k, v in out.items():
                v = v.detach() if isinstance(v, torch.Tensor) else v
                window[k] = window[k] + v if k in window else v
            if step % self.log_every == 0 or step == self.total_steps:
                record = {k: float(v) / count for k, v in window.items()}
                extra = {} if lr is None else {"lr": lr}
                log.write("step", {"step": step, "epoch": epoch + 1, "progress": progress, **extra,
                                   **record})
                bar.update(count)
                if "loss" in record:
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                window, count = {}, 0
        bar.update(count)
        return step
