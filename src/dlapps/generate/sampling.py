"""Looking into a trained generator: samples, latent interpolation, the class x style grid.

* Linear interpolation  z(α) = (1 − α) z₁ + α z₂.  For z ~ N(0, I) in high dimension the norm
  concentrates at √nz, and the midpoint of two independent draws has norm ≈ √(nz/2): the path
  cuts through a region the generator never saw in training.
* Spherical interpolation (slerp, White 2016)  z(α) = sin((1 − α)θ)/sin θ · z₁ + sin(αθ)/sin θ · z₂,
  θ = angle(z₁, z₂), follows the great circle and keeps the norm near √nz all along.
* The class grid of a conditional G: rows = class y, columns = one shared z each. What stays
  constant along a column (slant, thickness) is the style z encodes once y carries the class.

Every function takes a generator (see :func:`dlapps.generate.gan.load_generator`) and returns
uint8 images (N,C,H,W); :func:`dlapps.generate.gan.save_png` writes a tiled grid.
"""

from __future__ import annotations

import torch

from dlapps.errors import ConfigError
from dlapps.generate.data import to_uint8
from dlapps.generate.dcgan import Generator


def check_class(g: Generator, cls: int | None, classes: list[str] | None = None) -> None:
    """A class index must be one the generator was trained on, and only a conditional G takes one."""
    if cls is None:
        return
    if not g.n_classes:
        raise ConfigError("--class needs a conditional generator (train with --conditional)")
    if not 0 <= cls < g.n_classes:
        names = f" ({', '.join(classes)})" if classes else ""
        raise ConfigError(f"class {cls} is out of range: this generator knows classes "
                          f"0-{g.n_classes - 1}{names}")


def _labels(g: Generator, n: int, cls: int | None, gen: torch.Generator) -> torch.Tensor | None:
    if not g.n_classes:
        return None
    if cls is not None:
        return torch.full((n,), cls, dtype=torch.int64)
    return torch.arange(n) % g.n_classes


@torch.no_grad()
def sample(g: Generator, n: int = 100, cls: int | None = None, seed: int = 0) -> torch.Tensor:
    """``n`` samples (all of class ``cls`` when given, else classes 0..K-1 in turn)."""
    check_class(g, cls)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.nz, generator=gen)
    return to_uint8(g.eval()(z, _labels(g, n, cls, gen)))


def slerp(z1: torch.Tensor, z2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z1 and z2 for each α: (P, A, nz)."""
    cos = torch.nn.functional.cosine_similarity(z1, z2, dim=-1).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos)[:, None, None]
    a = alpha[None, :, None]
    return (torch.sin((1 - a) * theta) * z1[:, None] + torch.sin(a * theta) * z2[:, None]) / torch.sin(theta)


def lerp(z1: torch.Tensor, z2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1 − α) z1 + α z2 for each α: (P, A, nz)."""
    a = alpha[None, :, None]
    return (1 - a) * z1[:, None] + a * z2[:, None]


@torch.no_grad()
def interpolate(g: Generator, pairs: int = 8, steps: int = 10, spherical: bool = False,
                cls: int | None = None, seed: int = 0) -> torch.Tensor:
    """``pairs`` rows of ``steps`` images from G(z₁) to G(z₂) (one class per row when conditional)."""
    check_class(g, cls)
    if steps < 2 or pairs < 1:
        raise ConfigError(f"need at least 2 steps and 1 pair, got {steps} and {pairs}")
    gen = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(pairs, g.nz, generator=gen), torch.randn(pairs, g.nz, generator=gen)
    z = (slerp if spherical else lerp)(z1, z2, torch.linspace(0, 1, steps)).reshape(-1, g.nz)
    y = _labels(g, pairs, cls, gen)
    y = None if y is None else y.repeat_interleave(steps)
    return to_uint8(g.eval()(z, y))


@torch.no_grad()
def class_grid(g: Generator, columns: int = 10, seed: int = 0) -> torch.Tensor:
    """Rows = class 0..K-1, columns = one shared z each (a conditional G only)."""
    if not g.n_classes:
        raise ConfigError("the class grid needs a conditional generator (train with --conditional)")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(columns, g.nz, generator=gen).repeat(g.n_classes, 1)
    y = torch.arange(g.n_classes).repeat_interleave(columns)
    return to_uint8(g.eval()(z, y))
