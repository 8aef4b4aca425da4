"""Schedules as functions of training progress p ∈ [0, 1] (step / total steps).

* Learning rate, DANN paper: μ_p = μ0 / (1 + α p)^β with α = 10, β = 0.75 (``anneal``).
* Learning rate, the course reports: step decay, μ0 · factor^(number of milestones passed) (``step``).
* Adaptation weight, DANN paper: λ_p = λ_max · (2 / (1 + exp(-γ p)) - 1) with γ = 10 (``sigmoid``),
  which rises from 0 to ~λ_max so the domain classifier's noisy early signal does not disturb the
  features; or a constant λ (``constant``).

Each factory returns a plain ``progress -> value`` callable; the engine calls them every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from dlapps.errors import ConfigError, UnknownNameError

Schedule = Callable[[float], float]


def annealed(mu0: float, alpha: float = 10.0, beta: float = 0.75) -> Schedule:
    """μ_p = μ0 / (1 + α p)^β."""
    return lambda p: mu0 / (1.0 + alpha * p) ** beta


def step_decay(mu0: float, milestones: Sequence[float] = (0.5, 0.75), factor: float = 0.1) -> Schedule:
    """μ0 times ``factor`` for every milestone (a fraction of training) already passed."""
    return lambda p: mu0 * factor ** sum(p >= m for m in milestones)


def constant(value: float) -> Schedule:
    return lambda p: value


def sigmoid_ramp(gamma: float = 10.0, maximum: float = 1.0) -> Schedule:
    """λ_p = maximum · (2 / (1 + exp(-γ p)) - 1): 0 at p = 0, → maximum as p → 1."""
    return lambda p: maximum * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


LR_SCHEDULES = ("anneal", "step", "constant")
LAMBDA_SCHEDULES = ("sigmoid", "constant")


def lr_schedule(name: str, mu0: float, alpha: float = 10.0, beta: float = 0.75) -> Schedule:
    if mu0 <= 0 or not math.isfinite(mu0):
        raise ConfigError(f"the learning rate must be a positive number, got {mu0}")
    if name == "anneal":
        return annealed(mu0, alpha, beta)
    if name == "step":
        return step_decay(mu0)
    if name == "constant":
        return constant(mu0)
    raise UnknownNameError("learning-rate schedule", name, LR_SCHEDULES)


def lambda_schedule(name: str, gamma: float = 10.0, maximum: float = 1.0) -> Schedule:
    if name == "sigmoid":
        return sigmoid_ramp(gamma, maximum)
    if name == "constant":
        return constant(maximum)
    raise UnknownNameError("lambda schedule", name, LAMBDA_SCHEDULES)
