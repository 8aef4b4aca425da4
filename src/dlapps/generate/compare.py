"""``dlapps gan compare``: the course's questions as a grid of runs, answered by numbers.

``--grid ngf=8,32,128 ndf=8,32,128 nz=10,100,1000 init=dcgan,default loss=nonsat,minimax
lr_d=2e-4,1e-3 beta1=0.5,0.9`` names the values to try per factor. By default each factor is
varied on its own around the base configuration (one cell per value: ``base``, ``ngf=8``,
``ngf=128``, ...), which answers "what does this factor do" at a cost that adds up; ``product=True``
trains the full Cartesian product instead (multiplies up: 3·3·3·2·2·2·2 = 432 cells above).
``beta1`` sets β1 of both optimizers, ``lr`` both learning rates; every other key is a field of
:class:`~dlapps.generate.config.GanConfig`. The grid is resumable like any run (same ``--out``).
"""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from pathlib import Path

import torch

from dlapps.errors import ConfigError, UnknownNameError
from dlapps.generate.config import GanConfig
from dlapps.generate.experiment import DEFAULT_N_SAMPLES, run_variants

ALIASES = {"beta1": ("beta1_g", "beta1_d"), "lr": ("lr_g", "lr_d")}
FIXED = ("data", "size", "channels", "seed", "epochs")  # set by options, not varied in a grid


def _types() -> dict[str, type]:
    types = {f.name: type(getattr(GanConfig(), f.name)) for f in fields(GanConfig) if f.name not in FIXED}
    return {**types, **{alias: float for alias in ALIASES}}


def _value(key: str, text: str, kind: type):
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
    except ValueError:
        raise ConfigError(f"grid value {text!r} for {key} is not a {kind.__name__}") from None


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["ngf=8,32", "loss=nonsat,minimax"]`` -> ``{"ngf": [8, 32], "loss": ["nonsat", "minimax"]}``."""
    types = _types()
    grid: dict[str, list] = {}
    for item in items:
        for part in item.split():
            key, sep, values = part.partition("=")
            if not sep or not values:
                raise ConfigError(f"grid entries look like ngf=8,32,128; got {part!r}")
            if key not in types:
                raise UnknownNameError("grid factor", key, types)
            grid[key] = [_value(key, v.strip(), types[key]) for v in values.split(",") if v.strip()]
    if not grid:
        raise ConfigError("give at least one grid factor, e.g. --grid ngf=8,32,128")
    return grid


def _apply(config: GanConfig, key: str, value) -> GanConfig:
    return replace(config, **{k: value for k in ALIASES.get(key, (key,))})


def cells(base: GanConfig, grid: dict[str, list], product: bool = False) -> dict[str, GanConfig]:
    """Named configurations: ``base`` + one per (factor, value), or the full product."""
    out: dict[str, GanConfig] = {}
    if product:
        for combo in itertools.product(*grid.values()):
            cfg = base
            for key, value in zip(grid, combo, strict=True):
                cfg = _apply(cfg, key, value)
            out[",".join(f"{k}={v}" for k, v in zip(grid, combo, strict=True))] = cfg.validate()
        return out
    out["base"] = base.validate()
    for key, values in grid.items():
        for value in values:
            cfg = _apply(base, key, value).validate()
            if cfg.fingerprint() != base.fingerprint():  # the base value is the base cell
                out[f"{key}={value}"] = cfg
    return out


def run_compare(base: GanConfig, grid: dict[str, list], out: Path, seeds: list[int] | None = None,
                product: bool = False, n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True,
                workers: int | None = None, device: torch.device | None = None, launcher=None) -> dict:
    """Train and measure every cell of the grid into ``out`` (seeds default to ``base.seed``);
    returns results.json's content."""
    variants = cells(base, grid, product)
    return run_variants(variants, seeds or [base.seed], out, n_samples=n_samples, progress=progress,
                        title=f"dlapps gan compare: {len(variants)} cells",
                        extra={"grid": {"factors": grid, "product": product}}, workers=workers,
                        device=device, launcher=launcher, base=base)
