"""``dlapps data show NAME``: a preview grid of a domain, one row per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlapps.data.domains import load_domain
from dlapps.errors import DataError


def preview(name: str, out: Path, per_class: int = 8, photos: str | None = None) -> Path:
    """Write a PNG with ``per_class`` training images of every class of domain ``name``."""
    from dlapps.report import grid_image, pyplot, save_figure

    plt = pyplot()

    domain = load_domain(name, photos=photos)
    if domain.train_x.ndim != 4:
        raise DataError(f"{name}: unexpected image shape {tuple(domain.train_x.shape)}")
    g = torch.Generator().manual_seed(0)
    rows = []
    for c in range(len(domain.classes)):
        idx = torch.nonzero(domain.train_y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        x = domain.train_x[idx].numpy()
        if len(x) < per_class:
            x = np.concatenate([x, np.zeros((per_class - len(x), *x.shape[1:]), dtype=x.dtype)])
        rows.append(x)
    img = grid_image(np.concatenate(rows), rows=len(rows))
    h, w = img.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3, w / 28 * 0.6) + 1.5, max(2, h / 28 * 0.6)))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    size = domain.train_x.shape[-1]
    ax.set_yticks([size * (i + 0.5) for i in range(len(domain.classes))], domain.classes, fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"{name}: {len(domain.train_y):,} train / {len(domain.test_y):,} test, "
                 f"{'x'.join(map(str, domain.shape))}", fontsize=9)
    return save_figure(fig, Path(out))
