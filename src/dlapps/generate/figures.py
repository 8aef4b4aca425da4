"""Figures and the report of a GAN run: training curves, sample grids, the GIF over epochs, the
confusion matrix of a conditional G, and the self-contained ``report.html``."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from dlapps.engine.runlog import read_metrics
from dlapps.io import atomic_write_bytes
from dlapps.report.html import embed_png, page

CURVES = (("loss_d", "loss(D)"), ("loss_g", "loss(G)"), ("d_x", "D(x)"), ("d_g_z", "D(G(z))"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def training_curves(cells: dict[str, Path], path: Path) -> Path:
    """loss(D), loss(G), D(x) and D(G(z)) per iteration, one line per cell (label -> cell dir)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for label, cell in cells.items():
        recs = [r for r in read_metrics(cell) if r["kind"] == "step"]
        steps = [r["step"] for r in recs]
        for ax, (key, title) in zip(axes, CURVES, strict=True):
            ax.plot(steps, [r[key] for r in recs], lw=0.8, label=label)
            ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in axes[2:]:
        ax.set_ylim(-0.02, 1.02)
    if len(cells) > 1:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def epochs_gif(cell: Path, path: Path, ms: int = 400) -> Path | None:
    """The per-epoch fixed-noise grids as one animated GIF."""
    from PIL import Image

    frames = [Image.open(p) for p in sorted((cell / "figures" / "epochs").glob("epoch_*.png"))]
    if not frames:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    tmp.replace(path)
    return path


def confusion_figure(confusion: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    """Rows = class asked of G, columns = class the judge reads back (row-normalised)."""
    plt = _plt()
    m = np.array(confusion, dtype=float)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(m.shape):
        ax.text(j, i, f"{m[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                color="white" if m[i, j] > 0.5 else "black")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, fontsize=7, rotation=90)
    ax.set_yticks(ticks, classes, fontsize=7)
    ax.set(xlabel="class read back by the judge", ylabel="class y given to G", title=title)
    return _save(fig, path)


def panels(images: dict[str, Path], path: Path, columns: int = 4) -> Path:
    """Several saved grids side by side with their titles (one per ablation cell)."""
    from PIL import Image

    plt = _plt()
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, p) in zip(axes.flat, images.items(), strict=False):
        ax.imshow(np.asarray(Image.open(p)), cmap="gray")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


METRIC_COLUMNS = (("fid", "FID ↓"), ("kid", "KID ↓"), ("is", "IS ↑"), ("label_acc", "label acc ↑"),
                  ("sec_per_epoch", "s/epoch"))


def fmt(value) -> str:
    if isinstance(value, dict):  # mean ± std over seeds
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_table(rows: dict[str, dict], markdown: bool = False) -> str:
    """One row per run/cell, the metrics as columns (HTML, or Markdown with ``markdown``)."""
    cols = [(k, t) for k, t in METRIC_COLUMNS if any(k in r for r in rows.values())]
    if markdown:
        head = "| run | " + " | ".join(t for _, t in cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
        return head + "".join(f"| {name} | " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |\n"
                              for name, r in rows.items())
    head = "<tr><th>run</th>" + "".join(f"<th>{html.escape(t)}</th>" for _, t in cols) + "</tr>"
    body = "".join(f"<tr><td>{html.escape(name)}</td>"
                   + "".join(f"<td>{html.escape(fmt(r.get(k)))}</td>" for k, _ in cols) + "</tr>"
                   for name, r in rows.items())
    return f"<table>{head}{body}</table>"


def write_report(out: Path, title: str, summary: str, table_rows: dict[str, dict],
                 figures: dict[str, Path], results: dict) -> Path:
    """``out/report.html``: the metrics table, the figures (embedded) and the raw results."""
    sections = "".join(f"<h2>{html.escape(name)}</h2>{embed_png(p, name)}"
                       for name, p in figures.items() if p is not None and p.suffix == ".png")
    body = (f"<h1>{html.escape(title)}</h1><p class=muted>{html.escape(summary)}</p>"
            f"<h2>Quality</h2>{metrics_table(table_rows)}{sections}"
            f"<h2>results.json</h2><pre>{html.escape(json.dumps(results, indent=1)[:20000])}</pre>")
    return atomic_write_bytes(Path(out) / "report.html", page(title, body))
