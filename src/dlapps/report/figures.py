"""What every area's figures share: matplotlib on the Agg backend (set once, here), one way to
save a figure, one colour cycle, and tiling images into a grid."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def pyplot():
    """matplotlib.pyplot, on the Agg backend (no display needed)."""
    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Save ``fig`` as a PNG at ``path`` (folders made as needed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def grid_image(x: np.ndarray, rows: int) -> np.ndarray:
    """Tile uint8 images (N,C,H,W) into one HxWxC image with ``rows`` rows."""
    n, c, h, w = x.shape
    cols = -(-n // rows)
    pad = np.zeros((rows * cols - n, c, h, w), dtype=x.dtype)
    tiles = np.concatenate([x, pad]).reshape(rows, cols, c, h, w)
    img = tiles.transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return img[..., 0] if c == 1 else img
