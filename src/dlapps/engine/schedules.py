"""Schedules as functions of training progress p ∈ [0, 1] (step / total steps).

* Learning rate, DANN paper: μ_p = μ0 / (1 + α p)^β with α = 10, β = 0.75 (``anneal``).
* Learning rate, the course reports: step decay, μ0 · factor^(number of milestones passed) (``step``).
* Learning rate, fine-tuning (Loshchilov & Hutter's cosine, no restarts): μ_p = μ0 · ½(1 + cos πp)
  (``cosine``).
* Adaptation weight, DANN paper: λ_p = λ_max · (2 / (1 + exp(-γ p)) - 1) with γ = 10 (``sigmoid``),
  which rises from 0 to ~λ_max so the domain classifier's noisy early signal does not disturb the
  features; or a constant λ (``constant``).

Each factory returns a plain ``progress -> value`` callable; the engine calls them every step.
They live in the engine because every area schedules by progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from dlapps.errors import ConfigError
from dlapps.registry import Registry

Schedule = Callable[[float], float]


def annealed(mu0: float, alpha: float = 10.0, beta: float = 0.75) -> Schedule:
    """μ_p = μ0 / (1 + α p)^β."""
    return lambda p: mu0 / (1.0 + alpha * p) ** beta


def step_decay(mu0: float, milestones: Sequence[float] = (0.5, 0.75), factor: float = 0.1) -> Schedule:
    """μ0 times ``factor`` for every milestone (a fraction of training) already passed."""
    return lambda p: mu0 * factor ** sum(p >= m for m in milestones)


def constant(value: float) -> Schedule:
    return lambda p: value


def cosine(mu0: float) -> Schedule:
    """μ_p = μ0 · ½(1 + cos πp): from μ0 to 0 over training."""
    return lambda p: mu0 * 0.5 * (1.0 + math.cos(math.pi * p))


def sigmoid_ramp(gamma: float = 10.0, maximum: float = 1.0) -> Schedule:
    """λ_p = maximum · (2 / (1 + exp(-γ p)) - 1): 0 at p = 0, → maximum as p → 1."""
    return lambda p: maximum * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


LR = Registry[Callable[..., Schedule]]("learning-rate schedule")
LR.register("anneal", annealed)
LR.register("step", lambda mu0, alpha=10.0, beta=0.75: step_decay(mu0))
LR.register("constant", lambda mu0, alpha=10.0, beta=0.75: constant(mu0))
LR.register("cosine", lambda mu0, alpha=10.0, beta=0.75: cosine(mu0))
LAMBDA = Registry[Callable[..., Schedule]]("lambda schedule")
LAMBDA.register("sigmoid", sigmoid_ramp)
LAMBDA.register("constant", lambda gamma=10.0, maximum=1.0: constant(maximum))
LR_SCHEDULES = tuple(LR.names())
LAMBDA_SCHEDULES = tuple(LAMBDA.names())


def lr_schedule(name: str, mu0: float, alpha: float = 10.0, beta: float = 0.75) -> Schedule:
    """The learning-rate schedule ``name`` (anneal, step, constant, cosine) starting at ``mu0``."""
    if mu0 <= 0 or not math.isfinite(mu0):
        raise ConfigError(f"the learning rate must be a positive number, got {mu0}")
    return LR[name](mu0, alpha, beta)


def lambda_schedule(name: str, gamma: float = 10.0, maximum: float = 1.0) -> Schedule:
    """The adaptation-weight schedule ``name`` (sigmoid, constant)."""
    return LAMBDA[name](gamma, maximum)
