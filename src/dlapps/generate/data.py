"""What a GAN trains on: any dlapps domain, or a flat folder of unlabelled images.

``load_gan_data("mnist5k", size=32, channels=1)`` gives uint8 images (N,C,size,size) with their
labels (None for an unlabelled folder) and the domain's test split, which the quality metrics use
as a second real sample. Images are resized (bilinear, antialiased) to the square side DCGAN
needs; a non-square image from a folder is centre-cropped to a square first, so digits and faces
keep their proportions. Images smaller than :data:`MIN_SIDE` pixels carry too little to upsample
and are refused. Pixels become floats in [-1, 1] (the range of G's tanh) one batch at a time.

``folder:PATH`` reads every image under PATH (recursively) as one unlabelled set; 10% of it
(fixed seed) is held out as the "test" sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlapps.data import load_domain, to_shape
from dlapps.data.domains import SPLIT_SEED
from dlapps.errors import ConfigError, DataError

MIN_SIDE = 8
FOLDER = "folder:"


@dataclass
class GanData:
    """Training images (uint8 N,C,H,W), labels or None, a held-out real sample and class names."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor | None
    classes: list[str]

    @property
    def labelled(self) -> bool:
        return self.y is not None and len(self.classes) >= 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]; a float tensor is taken to be in [0, 1]."""
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    return x.mul(2.0).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return x.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def _check_side(side: int, what: str) -> None:
    if side < MIN_SIDE:
        raise DataError(f"{what} is {side} pixels on its short side; a GAN needs at least "
                        f"{MIN_SIDE} (use larger images)")


def _folder(path: Path, size: int, channels: int) -> GanData:
    from PIL import Image

    from dlapps.data.sources import IMAGE_SUFFIXES, list_images, read_image

    path = path.expanduser()
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    files = list_images(path)
    if len(files) < 2:
        raise DataError(f"{path} holds {len(files)} images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                        "a GAN needs many")
    images = []
    for f in files:
        a = read_image(f, "L" if channels == 1 else "RGB")
        h, w = a.shape[:2]
        _check_side(min(h, w), f"image {f}")
        top, left = (h - min(h, w)) // 2, (w - min(h, w)) // 2  # centre crop to a square
        img = Image.fromarray(a[top:top + min(h, w), left:left + min(h, w)])
        images.append(np.asarray(img.resize((size, size), Image.Resampling.BILINEAR)))
    x = torch.from_numpy(np.stack(images))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    k = max(1, len(x) // 10)
    return GanData(f"{FOLDER}{path}", x[order[k:]], None, x[order[:k]], None, [])


def load_gan_data(name: str, size: int = 32, channels: int = 1) -> GanData:
    """A domain (see ``dlapps data list``) or ``folder:PATH``, as ``channels`` x ``size`` x ``size``."""
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if name.startswith(FOLDER):
        return _folder(Path(name[len(FOLDER):]), size, channels)
    domain = load_domain(name)  # native size first, to refuse tiny images before upsampling them
    _check_side(min(domain.train_x.shape[-2:]), f"domain {name!r}")
    return GanData(name, to_shape(domain.train_x, size, channels), domain.train_y,
                   to_shape(domain.test_x, size, channels), domain.test_y, list(domain.classes))
