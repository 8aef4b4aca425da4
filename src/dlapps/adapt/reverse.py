r"""Reverse validation as the papers define it (Zhong et al., ECML 2010; Ganin et al., JMLR 2016,
§5.1.3): a label-free score of a domain adaptation model η.

Split the labelled source into S' (training) and S_V (held out) and take unlabelled target
images T'. Then

1. label T' with the model: T̂' = {(x, η(x)) : x ∈ T'} (pseudo-labels; no target label is used);
2. train a *reverse* classifier η_r from scratch with the same algorithm (DANN) on the reversed
   problem: T̂' is its labelled source, the images of S' (labels withheld) its unlabelled target;
3. score η by the accuracy of η_r on the labelled held-out source,
   R(η) = (1/|S_V|) Σ_{(x,y)∈S_V} 1[η_r(x) = y]   (higher is better).

If η labels the target well and the two domains' features are aligned, η_r learns the task back
and transfers to the source; wrong or inconsistent pseudo-labels leave η_r near chance.

η_r trains for ``steps`` optimizer steps (whole epochs over T̂', as close to ``steps`` as they
come) with the run's optimizer, learning-rate schedule and λ_p schedule, progress p running
0 → 1 over them. The default 150 steps cost about 1.2 training epochs of the default experiment
(4,000 + 4,000 images at batch 32 + 32: 125 steps), so scoring every epoch more than doubles a
DANN run's time. With the same ``seed`` the score is the same number on the CPU; the random state
of the caller (the training being scored) is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from dlapps.adapt.methods.base import make_optimizer
from dlapps.adapt.methods.dann import DANN
from dlapps.engine import Labelled, PairedBatches, Trainer
from dlapps.engine.batches import batched
from dlapps.engine.schedules import lr_schedule
from dlapps.engine.seeding import rng_state, seed_everything, set_rng_state
from dlapps.errors import ConfigError, NonFiniteLossError
from dlapps.models.digits import DomainAdaptationNet


def reverse_batches(target_x: torch.Tensor, pseudo: torch.Tensor, source_x: torch.Tensor,
                    batch_size: int, seed: int) -> PairedBatches:
    """η_r's batches ``(xt, η(xt), xs, None)``: the pseudo-labelled target as the labelled side,
    the source images as the unlabelled side (their placeholder labels, −1, never leave)."""
    unlabelled = Labelled(source_x, torch.full((len(source_x),), -1, dtype=torch.long))
    return PairedBatches(Labelled(target_x, pseudo), unlabelled, batch_size, seed)


def reverse_validation(config, make_net: Callable[[], DomainAdaptationNet], target_x: torch.Tensor,
                       pseudo: torch.Tensor, source_x: torch.Tensor, val_x: torch.Tensor,
                       val_y: torch.Tensor, seed: int, steps: int = 150,
                       device: torch.device = torch.device("cpu")) -> float | None:
    """Accuracy on (``val_x``, ``val_y``) of DANN trained from ``make_net()`` on the target images
    ``target_x`` labelled ``pseudo`` (the model's predictions) → the unlabelled ``source_x``.

    ``config`` is the run's :class:`~dlapps.adapt.config.AdaptConfig` (batch size, optimizer,
    schedules, λ); images are uint8 (N,C,H,W). None when that DANN's loss turns NaN or infinite
    (the criterion is then missing for the epoch; the model being judged is not at fault)."""
    if steps < 1:
        raise ConfigError(f"reverse validation needs at least 1 training step, got {steps}")
    batches = reverse_batches(target_x, pseudo, source_x, config.batch_size, seed)
    epochs = max(1, round(steps / batches.steps_per_epoch))
    caller = rng_state()
    try:
        seed_everything(seed)
        method = DANN(make_net(), replace(config, warmup_acc=0.0))  # no evaluation opens a gate here
        optimizer = make_optimizer(config, method)
        schedule = lr_schedule(config.lr_schedule, config.lr, config.lr_alpha, config.lr_beta)
        Trainer(method, batches, optimizer, schedule, epochs, None, device=device, amp=config.amp,
                cpu_amp=config.cpu_bf16, channels_last=config.channels_last, progress=False,
                tensorboard=False).fit()
        method.eval()
        predicted = batched(method.predict, val_x, device).argmax(1)
    except NonFiniteLossError:
        return None
    finally:
        set_rng_state(caller)
    return float((predicted == val_y.cpu()).float().mean())
