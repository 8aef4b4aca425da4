"""The one training loop.

:class:`Trainer` runs any module whose ``forward(*batch, progress)`` returns a dict of losses
(``"loss"`` is minimised; everything else is logged): every domain adaptation method, and the
supervised baselines. Per step it sets the learning rate from the schedule, runs the step under
autocast (CUDA), checks the loss is finite (else :class:`NonFiniteLossError` naming the step; the
last checkpoint is left as it was), and steps the optimizer. Per epoch it evaluates, logs, and
writes ``checkpoint.pt`` atomically. ``fit()`` on a run directory that holds a checkpoint
continues from it and reaches the same final numbers as an uninterrupted run (the batch order is a
function of (seed, epoch) and the RNG state is restored).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from dlapps.engine.batches import PairedBatches
from dlapps.engine.checkpoint import load_checkpoint, save_checkpoint
from dlapps.engine.device import autocast
from dlapps.engine.distributed import Dist, barrier
from dlapps.engine.runlog import RunLog
from dlapps.engine.seeding import rng_state, set_rng_state
from dlapps.errors import ConfigError, NonFiniteLossError

Schedule = Callable[[float], float]


class Trainer:
    """Train ``module`` on ``batches`` for ``epochs`` epochs, checkpointing into ``run_dir``.

    ``optimizer``'s param groups may carry an ``lr_mult``; the schedule gives the base rate.
    ``evaluate(module)`` returns a dict of numbers at the end of every epoch.
    """

    def __init__(
        self,
        module: nn.Module,
        batches: PairedBatches,
        optimizer: torch.optim.Optimizer,
        lr_schedule: Schedule,
        epochs: int,
        run_dir: Path,
        *,
        evaluate: Callable[[nn.Module], dict] | None = None,
        device: torch.device | None = None,
        amp: bool = True,
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
        self.batches = batches.to(self.device)
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.epochs = epochs
        self.run_dir = Path(run_dir)
        self.evaluate = evaluate
        self.amp = amp
        self.fingerprint = fingerprint
        self.log_every = max(1, log_every)
        self.progress = progress and self.dist.main
        self.desc = desc
        self.tensorboard = tensorboard
        self.total_steps = epochs * batches.steps_per_epoch
        self.history: list[dict] = []

    def _step_module(self) -> nn.Module:
        if not self.dist.active:
            return self.module
        from torch.nn.parallel import DistributedDataParallel

        module = self.module
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def fit(self) -> list[dict]:
        """Train (or continue training) to the last epoch; returns the per-epoch history."""
        state = load_checkpoint(self.run_dir, self.fingerprint)  # refuses bad files before any write
        start_epoch, step, seconds = 0, 0, 0.0
        if state is not None:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
            start_epoch, step, seconds = state["epoch"], state["step"], state["seconds"]
            self.history = list(state["history"])
        if start_epoch >= self.epochs:
            return self.history
        log = RunLog(self.run_dir, self.dist.main, resume_step=step if state else None,
                     tensorboard=self.tensorboard)
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
                self.history.append(record)
                log.write("epoch", record)
                log.flush()
                if self.dist.main:
                    save_checkpoint(self.run_dir, {
                        "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
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

    def _train_epoch(self, step_module, epoch: int, step: int, log: RunLog, bar) -> int:
        self.module.train()
        window: dict[str, torch.Tensor | float] = {}
        count = 0
        for batch in self.batches.epoch(epoch):
            progress = step / self.total_steps
            lr = self.lr_schedule(progress)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            with autocast(self.device, self.amp):
                out = step_module(*batch, progress)
            loss = out["loss"]
            if not torch.isfinite(loss):
                values = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
                raise NonFiniteLossError(step + 1, epoch + 1, values)  # 1-based, as in the log
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            step += 1
            count += 1
            for k, v in out.items():
                v = v.detach() if isinstance(v, torch.Tensor) else v
                window[k] = window[k] + v if k in window else v
            if step % self.log_every == 0 or step == self.total_steps:
                record = {k: float(v) / count for k, v in window.items()}
                log.write("step", {"step": step, "epoch": epoch + 1, "progress": progress,
                                   "lr": lr, **record})
                bar.update(count)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                window, count = {}, 0
        bar.update(count)
        return step
