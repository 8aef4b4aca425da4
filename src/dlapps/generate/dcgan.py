"""DCGAN (Radford, Metz & Chintala 2016) and its conditional form, at 32x32 and 64x64.

The generator maps z ~ N(0, I) (nz values, seen as an nz x 1 x 1 image) to an image in [-1, 1]
through transposed convolutions that double the side at each block; the discriminator mirrors it
with strided convolutions down to one probability D(x) = P(x is real). At 32x32 (docs/PAPERS.md §5)::

    G: ConvT(nz→4ngf,4,1,0)+BN+ReLU → ConvT(→2ngf,4,2,1)+BN+ReLU → ConvT(→ngf,4,2,1)+BN+ReLU
       → ConvT(→nc,4,2,1)+Tanh
    D: Conv(nc→ndf,4,2,1)+LReLU(0.2) → Conv(→2ndf)+BN+LReLU → Conv(→4ndf)+BN+LReLU
       → Conv(→1,4,1,0)+Sigmoid

The 64x64 variant has one more block in each (G starts at 8ngf, D ends at 8ndf).

Conditional DCGAN (Mirza & Osindero 2014, in DCGAN form): G receives [z, onehot(y)] (nz + K
values); D receives x stacked with K constant maps, map k being 1 where k = y and 0 elsewhere
(nc + K channels). ``d_conditional=False`` gives the cD(x) ablation: G still gets y, but D never
sees it, so nothing pushes G(z, y) to look like class y.

Initialisation (``init="dcgan"``): every conv weight ~ N(0, 0.02), BatchNorm γ ~ N(1, 0.02),
β = 0, as in the paper; ``init="default"`` keeps PyTorch's (Kaiming-uniform, γ = 1) for the
ablation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError, UnknownNameError

SIZES = (32, 64)
INITS = ("dcgan", "default")


def _check(size: int, init: str | None = None) -> None:
    if size not in SIZES:
        raise ConfigError(f"DCGAN image size must be one of {SIZES}, got {size}")
    if init is not None and init not in INITS:
        raise UnknownNameError("init", init, INITS)


def generator_net(nz_in: int, ngf: int, nc: int, size: int = 32) -> nn.Sequential:
    """G's layers; s = size. Channels x side after each layer in the comments."""
    _check(size)
    top = 8 * ngf if size == 64 else 4 * ngf
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz_in, top, 4, 1, 0, bias=False),  # nz_in x 1 x 1 -> top x 4 x 4
        nn.BatchNorm2d(top), nn.ReLU(True),
    ]
    if size == 64:  # the extra block of the 64x64 variant
        layers += [
            nn.ConvTranspose2d(8 * ngf, 4 * ngf, 4, 2, 1, bias=False),  # 8ngf x 4 x 4 -> 4ngf x 8 x 8
            nn.BatchNorm2d(4 * ngf), nn.ReLU(True),
        ]
    layers += [
        nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),  # 4ngf x s/8 x s/8 -> 2ngf x s/4 x s/4
        nn.BatchNorm2d(2 * ngf), nn.ReLU(True),
        nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False),  # 2ngf x s/4 x s/4 -> ngf x s/2 x s/2
        nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # ngf x s/2 x s/2 -> nc x s x s
        nn.Tanh(),  # pixels in [-1, 1]
    ]
    return nn.Sequential(*layers)


def discriminator_net(nc_in: int, ndf: int, size: int = 32) -> nn.Sequential:
    """D's layers; s = size. Channels x side after each layer in the comments."""
    _check(size)
    layers: list[nn.Module] = [
        nn.Conv2d(nc_in, ndf, 4, 2, 1, bias=False),  # nc_in x s x s -> ndf x s/2 x s/2
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False),  # ndf x s/2 x s/2 -> 2ndf x s/4 x s/4
        nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=False),  # 2ndf x s/4 x s/4 -> 4ndf x s/8 x s/8
        nn.BatchNorm2d(4 * ndf), nn.LeakyReLU(0.2, True),
    ]
    last = 4 * ndf
    if size == 64:  # the extra block of the 64x64 variant
        layers += [
            nn.Conv2d(4 * ndf, 8 * ndf, 4, 2, 1, bias=False),  # 4ndf x 8 x 8 -> 8ndf x 4 x 4
            nn.BatchNorm2d(8 * ndf), nn.LeakyReLU(0.2, True),
        ]
        last = 8 * ndf
    layers += [
        nn.Conv2d(last, 1, 4, 1, 0, bias=False),  # last x 4 x 4 -> 1 x 1 x 1
        nn.Sigmoid(),  # D(x) = P(real)
    ]
    return nn.Sequential(*layers)


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Conv weights ~ N(0, 0.02); BatchNorm γ ~ N(1, 0.02), β = 0 (in place)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class Generator(nn.Module):
    """G(z[, y]): ``z`` (B, nz) -> images (B, nc, size, size) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 32, nc: int = 1, size: int = 32,
                 n_classes: int = 0) -> None:
        super().__init__()
        self.nz, self.nc, self.size, self.n_classes = nz, nc, size, n_classes
        self.net = generator_net(nz + n_classes, ngf, nc, size)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if y is None:
                raise ConfigError("this generator is conditional: give class labels y")
            z = torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], 1)
        return self.net(z.view(len(z), -1, 1, 1))


class Discriminator(nn.Module):
    """D(x[, y]): images (B, nc, size, size) in [-1, 1] -> P(real), shape (B,)."""

    def __init__(self, ndf: int = 32, nc: int = 1, size: int = 32, n_classes: int = 0) -> None:
        super().__init__()
        self.nc, self.size, self.n_classes = nc, size, n_classes
        self.net = discriminator_net(nc + n_classes, ndf, size)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if y is None:
                raise ConfigError("this discriminator is conditional: give class labels y")
            maps = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], 1)
        return self.net(x).view(-1)


def build_gan(nz: int = 100, ngf: int = 32, ndf: int = 32, nc: int = 1, size: int = 32,
              n_classes: int = 0, d_conditional: bool = True,
              init: str = "dcgan") -> tuple[Generator, Discriminator]:
    """G and D, conditional on ``n_classes`` labels when it is > 0 (D too unless ``d_conditional``
    is False: the cD(x) ablation), initialised by ``init`` (``dcgan`` or PyTorch's ``default``)."""
    _check(size, init)
    for name, v in (("nz", nz), ("ngf", ngf), ("ndf", ndf)):
        if v < 1:
            raise ConfigError(f"{name} must be at least 1, got {v}")
    g = Generator(nz, ngf, nc, size, n_classes)
    d = Discriminator(ndf, nc, size, n_classes if d_conditional else 0)
    if init == "dcgan":
        dcgan_init_(g)
        dcgan_init_(d)
    return g, d
