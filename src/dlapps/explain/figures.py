"""Figures of the explain commands (matplotlib, Agg), written as PNGs.

Images are tensors (3,H,W) in [0,1]; maps (H,W) are shown scaled to their own maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _rgb(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _unit(m: torch.Tensor) -> np.ndarray:
    m = m.detach().cpu().float()
    return (m / m.max().clamp_min(1e-12)).numpy()


def _panel_grid(rows: int, cols: int, size: float = 2.2):
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def saliency_figure(
    images: torch.Tensor, maps: dict[str, torch.Tensor], titles: Sequence[str], path: Path
) -> Path:
    """One row per image: the image, then for each method its map and the map over the image."""
    fig, axes = _panel_grid(len(images), 1 + 2 * len(maps))
    for i, img in enumerate(images):
        axes[i, 0].imshow(_rgb(img))
        axes[i, 0].set_title(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items()):
            axes[i, 1 + 2 * j].imshow(_unit(m[i]), cmap="hot")
            axes[i, 1 + 2 * j].set_title(name, fontsize=8)
            axes[i, 2 + 2 * j].imshow(_rgb(img))
            axes[i, 2 + 2 * j].imshow(_unit(m[i]), cmap="jet", alpha=0.45)
            axes[i, 2 + 2 * j].set_title(f"{name} overlay", fontsize=8)
    return _save(fig, path)


def fooling_figure(
    original: torch.Tensor,
    adversarial: torch.Tensor,
    titles: Sequence[str],
    path: Path,
    magnify: float = 10.0,
) -> Path:
    """Per image: original, modified, difference (mid-grey = 0) and difference × ``magnify``."""
    fig, axes = _panel_grid(len(original), 4)
    for i, (x, xa) in enumerate(zip(original, adversarial, strict=True)):
        d = xa - x
        panels = [
            (x, titles[i]),
            (xa, "modified"),
            (0.5 + d / (2 * d.abs().max().clamp_min(1e-12)), "difference (scaled to range)"),
            (0.5 + magnify * d, f"difference × {magnify:g}"),
        ]
        for j, (im, title) in enumerate(panels):
            axes[i, j].imshow(_rgb(im))
            axes[i, j].set_title(title, fontsize=7)
    return _save(fig, path)


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, cols: int = 6) -> Path:
    """Images (3,H,W) or single-channel maps (H,W) in a grid with a title each."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = _panel_grid(rows, min(cols, len(images)))
    for ax, im, title in zip(axes.flat, images, titles, strict=False):
        if im.ndim == 2:
            ax.imshow(im.detach().cpu().numpy(), cmap="viridis")
        else:
            ax.imshow(_rgb(im))
        ax.set_title(title, fontsize=7)
    return _save(fig, path)


def labelled_grid(rows: dict[str, Sequence[tuple[str, torch.Tensor]]], path: Path, title: str = "") -> Path:
    """A grid with one labelled row per key (the class-visualisation parameter sweep)."""
    cols = max(len(r) for r in rows.values())
    fig, axes = _panel_grid(len(rows), cols)
    for i, (name, cells) in enumerate(rows.items()):
        for j, (label, im) in enumerate(cells):
            axes[i, j].imshow(_rgb(im))
            axes[i, j].set_title(f"{name} = {label}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = (0, 1.02),
) -> Path:
    """Line plot of named (x, y) series."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
