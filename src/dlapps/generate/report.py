"""Figures and the report of a GAN run: training curves, sample grids, the GIF over epochs, the
confusion matrix of a conditional G, the quality table, and ``report.html``.

Three kinds of run directory hold a ``results.json`` of kind ``generate``: a grid of variants x
seeds (``variants`` in it), one trained cell, and a drawing from a trained G (``what`` in it).
:func:`render` writes the page of any of them from its results.json and the PNGs beside it;
:func:`section` gives the same content as a fragment for a page over several runs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from dlapps.engine.runlog import read_metrics
from dlapps.report import embed_png, html_table, markdown_table, pyplot, save_figure, write_page
from dlapps.runs import load_results

CURVES = (("loss_d", "loss(D)"), ("loss_g", "loss(G)"), ("d_x", "D(x)"), ("d_g_z", "D(G(z))"))
METRIC_COLUMNS = (("fid", "FID ↓"), ("kid", "KID ↓"), ("is", "IS ↑"), ("label_acc", "label acc ↑"),
                  ("seconds_per_epoch", "s/epoch"))
# The figures a run directory may hold, with their captions, in the order the page shows them.
GRID_FIGURES = (("figures/curves.png", "training curves (first seed)"),
                ("figures/samples.png", "samples (first seed, fixed noise)"))
CELL_FIGURES = (("figures/samples.png", "samples (fixed noise, last epoch)"),
                ("figures/curves.png", "training curves"),
                ("figures/interpolation.png", "interpolation"),
                ("figures/interpolation_slerp.png", "interpolation slerp"),
                ("figures/class_grid.png", "class x shared z"),
                ("figures/confusion.png", "confusion of G(z, y)"))
DPI = 100


def training_curves(cells: dict[str, Path], path: Path) -> Path:
    """loss(D), loss(G), D(x) and D(G(z)) per iteration, one line per cell (label -> cell dir)."""
    fig, axes = pyplot().subplots(1, 4, figsize=(16, 3.4))
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
    return save_figure(fig, path, dpi=DPI)


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
    m = np.array(confusion, dtype=float)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = pyplot().subplots(figsize=(4.6, 4.2))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(m.shape):
        ax.text(j, i, f"{m[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                color="white" if m[i, j] > 0.5 else "black")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, fontsize=7, rotation=90)
    ax.set_yticks(ticks, classes, fontsize=7)
    ax.set(xlabel="class read back by the judge", ylabel="class y given to G", title=title)
    return save_figure(fig, path, dpi=DPI)


def panels(images: dict[str, Path], path: Path, columns: int = 4) -> Path:
    """Several saved grids side by side with their titles (one per variant)."""
    from PIL import Image

    rows = -(-len(images) // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, p) in zip(axes.flat, images.items(), strict=False):
        ax.imshow(np.asarray(Image.open(p)), cmap="gray")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)


def fmt(value) -> str:
    if isinstance(value, dict):  # mean ± std over seeds
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def quality_rows(results: dict) -> dict[str, dict]:
    """The rows of the quality table: one per variant (or the cell itself), then the floor."""
    if "variants" in results:
        rows = dict(results["variants"])
    elif "what" in results:
        rows = {}
    else:
        rows = {results.get("name", "run"): results}
    if results.get("floor"):
        rows["real vs real (floor)"] = results["floor"]
    return rows


def metrics_table(rows: dict[str, dict], markdown: bool = False) -> str:
    """One row per run/cell, the metrics as columns (HTML, or Markdown with ``markdown``)."""
    cols = [(k, t) for k, t in METRIC_COLUMNS if any(k in r for r in rows.values())]
    body = [[name, *(fmt(r.get(k)) for k, _ in cols)] for name, r in rows.items()]
    columns = ["run", *(t for _, t in cols)]
    return markdown_table(columns, body) + "\n" if markdown else html_table(columns, body, "quality")


def _note(results: dict) -> str:
    if "what" in results:
        return f"{results['images']} images, seed {results['seed']}, from {results['run']}"
    if "variants" not in results:
        cfg = results.get("config", {})
        return f"{cfg.get('data')}, {results.get('epochs')} epochs"
    data, judge = results["data"], results.get("judge")
    acc = "–" if judge is None else f"{judge['test_acc']:.4f}"
    return (f"{data['name']} {tuple(data['shape'])}, seeds {results['seeds']}, n = {results['n_samples']} "
            f"generated samples vs {data['train']} real; judge test accuracy {acc}; floor = "
            f"{data['test']} held-out real images vs the training images")


def _figures(run_dir: Path, results: dict) -> tuple[tuple[str, str], ...]:
    if "what" in results:
        return ((results["figure"], results["figure"][:-len(".png")].replace("_", " ")),)
    return GRID_FIGURES if "variants" in results else CELL_FIGURES


def _body(run_dir: Path, results: dict, h: str) -> str:
    rows = quality_rows(results)
    parts = [f"<p class=muted>{html.escape(_note(results))}</p>"]
    if rows:
        parts.append(f"<{h}>Quality</{h}>{metrics_table(rows)}")
    for name, caption in _figures(run_dir, results):
        if (run_dir / name).is_file():
            parts.append(f"<{h}>{html.escape(caption)}</{h}>{embed_png(run_dir / name, caption)}")
    return "".join(parts)


def title_of(run_dir: Path, results: dict) -> str:
    return results.get("title") or f"dlapps gan: {Path(run_dir).name}"


def title(results: dict) -> str:
    """The heading of a run on a page over several runs."""
    return results.get("title") or "dlapps gan"


def section(run_dir: Path, results: dict) -> str:
    """An HTML fragment for a page over several runs (under its :func:`title`): the quality
    table and figures, h3 headings."""
    return _body(Path(run_dir), results, "h3")


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` from its results.json and figures (self-contained)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "generate")
    title = title_of(run_dir, results)
    raw = html.escape(json.dumps(results, indent=1)[:20000])
    body = (f"<h1>{html.escape(title)}</h1>" + _body(run_dir, results, "h2")
            + f"<h2>results.json</h2><pre>{raw}</pre>")
    return write_page(run_dir / "report.html", title, body)
